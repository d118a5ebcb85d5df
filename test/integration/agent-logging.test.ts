// The agent's batched logger, in a real child process: lines arrive while it runs, and none are lost at exit.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";

const LOGGING = path.join(REPO_ROOT, "agent", "logging", "index.ts");
const node = (script: string) =>
  execa(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { createLogger } from ${JSON.stringify(LOGGING)};\nconst log = createLogger({ base: { component: "test" } });\n${script}`,
    ],
    { reject: false, timeout: 20_000 },
  );
const lines = (stdout: string) =>
  stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; component: string; n?: number });

describe("agent logger", () => {
  it("writes what is buffered when the process exits at once", async () => {
    const child = await node(`for (let n = 0; n < 3; n++) log.info({ n }, "connection closed");\nprocess.exit(0);`);
    expect(lines(child.stdout).map((l) => [l.component, l.msg, l.n])).toEqual([
      ["test", "connection closed", 0],
      ["test", "connection closed", 1],
      ["test", "connection closed", 2],
    ]);
  });

  it("writes what is buffered when the process dies of an uncaught error", async () => {
    const child = await node(`log.warn("about to fail");\nsetTimeout(() => { throw new Error("boom"); }, 0);`);
    expect(child.exitCode).not.toBe(0);
    expect(child.stderr).toContain("boom");
    expect(lines(child.stdout).map((l) => l.msg)).toEqual(["about to fail"]);
  });

  it("writes a line within the flush period while the process keeps running", async () => {
    const child = execa(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { createLogger } from ${JSON.stringify(LOGGING)};\nconst log = createLogger({});\nlog.info("first");\nsetTimeout(() => {}, 5000);`,
      ],
      { reject: false, buffer: false },
    );
    try {
      const first = await new Promise<string>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(d.toString())));
      expect(JSON.parse(first).msg).toBe("first");
      // Arrived while the child still runs (it sleeps 5 s), so not from the exit flush.
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill("SIGKILL");
      await child;
    }
  });

  /** Runs `script` under strace and returns its stdout and its write(2) calls to stdout. */
  async function tracedWrites(script: string): Promise<{ stdout: string; writes: string[] }> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-log-"));
    try {
      const trace = path.join(dir, "strace.txt");
      const traced = await execa(
        "strace",
        [
          "-f",
          "-e",
          "trace=write",
          "-o",
          trace,
          process.execPath,
          "--input-type=module",
          "-e",
          `import { createLogger } from ${JSON.stringify(LOGGING)};\nconst log = createLogger({});\n${script}`,
        ],
        { reject: false, timeout: 20_000 },
      );
      return { stdout: traced.stdout, writes: (await fs.readFile(trace, "utf8")).split("\n").filter((l) => /write\(1,/.test(l)) };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  it("batches a burst of lines into far fewer writes", async () => {
    // 500 lines must not mean 500 writes.
    const { stdout, writes } = await tracedWrites(
      `for (let n = 0; n < 500; n++) log.info({ n }, "connection opened");\nsetTimeout(() => process.exit(0), 100);`,
    );
    expect(lines(stdout)).toHaveLength(500);
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.length).toBeLessThan(50);
  });

  it("makes no writes while there is nothing to log", async () => {
    // One line, then a second of quiet: its flush is the only write. A periodic flush would write (an empty
    // buffer) every flush period, waking an idle agent for nothing.
    const { stdout, writes } = await tracedWrites(`log.info("only line");\nsetTimeout(() => process.exit(0), 1000);`);
    expect(lines(stdout).map((l) => l.msg)).toEqual(["only line"]);
    expect(writes).toHaveLength(1);
  });
});
