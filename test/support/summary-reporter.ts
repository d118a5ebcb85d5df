// Vitest reporter that ends the run with one plain line, "vitest: N passed, N failed, N skipped", for CI logs.
import type { Reporter, TestCase, TestModule } from "vitest/node";

/**
 * A test that was meant to run (not written as skipped) but did not, because a beforeAll of its suite, an enclosing
 * suite or the file threw, did not pass: it failed.
 */
const meantToRunButDidNot = (test: TestCase): boolean => test.result().state === "skipped" && test.options.mode === "run";

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown> = []): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    for (const mod of testModules) {
      let failedHere = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") counts.passed++;
        else if (state === "failed" || meantToRunButDidNot(test)) failedHere++;
        else counts.skipped++;
      }
      // A file that failed to load (no tests collected) is a failure too.
      if (mod.state() === "failed" && failedHere === 0) failedHere = 1;
      counts.failed += failedHere;
    }
    counts.failed += unhandledErrors.length;
    console.log(`\nvitest: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  }
}
