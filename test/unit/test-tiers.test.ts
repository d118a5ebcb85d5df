// The suite's own honesty: under CI=true a tier that cannot run fails the run, and a failed beforeAll counts its tests.
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";

const runFixture = (ci: boolean) =>
  execa(
    path.join(REPO_ROOT, "node_modules", ".bin", "vitest"),
    ["run", "--root", REPO_ROOT, "--config", path.join(REPO_ROOT, "test", "fixtures", "tiers", "vitest.config.ts")],
    {
      cwd: REPO_ROOT,
      reject: false,
      timeout: 60_000,
      env: { ...process.env, CI: ci ? "true" : "", VITEST: "", VITEST_POOL_ID: "", VITEST_WORKER_ID: "" },
    },
  );

describe("test tiers", () => {
  it("under CI=true, a tier that cannot run fails, and both tests of the suite whose beforeAll threw count as failed", async () => {
    const r = await runFixture(true);
    expect(r.exitCode, r.stdout).not.toBe(0);
    expect(r.stdout).toContain("vitest: 1 passed, 3 failed, 0 skipped");
    expect(r.stdout + r.stderr).toContain("CI=true and this tier cannot run: the fixture's prerequisite is missing");
  });

  it("outside CI the tier is skipped with the reason in its title; the beforeAll failure still fails", async () => {
    const r = await runFixture(false);
    expect(r.exitCode, r.stdout).not.toBe(0);
    expect(r.stdout).toContain("vitest: 1 passed, 2 failed, 1 skipped");
  });
});
