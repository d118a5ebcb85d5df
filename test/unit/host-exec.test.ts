// host/exec.ts run(): output, input, environment, and every way a command can fail, as SandboxCommandError.
import { describe, expect, it } from "vitest";
import { SandboxCommandError, run } from "../../host/exec.ts";

const failure = (p: Promise<unknown>) =>
  p.then(
    () => expect.unreachable("the command succeeded"),
    (err: unknown) => err as SandboxCommandError,
  );

describe("run", () => {
  it("writes the input to stdin and resolves with stdout and stderr as they are", async () => {
    expect(await run("sh", ["-c", "cat; echo err >&2"], { input: "hello\n" })).toEqual({ stdout: "hello\n", stderr: "err\n" });
  });

  it("extends the inherited environment, or replaces it with cleanEnv", async () => {
    process.env.AMBIT_RUN_TEST_INHERITED = "inherited";
    try {
      expect((await run("sh", ["-c", "echo $FOO $AMBIT_RUN_TEST_INHERITED"], { env: { FOO: "x" } })).stdout).toBe("x inherited\n");
      expect((await run("/bin/sh", ["-c", "echo [$FOO] [$AMBIT_RUN_TEST_INHERITED]"], { env: { FOO: "y" }, cleanEnv: true })).stdout).toBe("[y] []\n");
    } finally {
      delete process.env.AMBIT_RUN_TEST_INHERITED;
    }
  });

  it("a non-zero exit rejects with the exit code and what the command printed", async () => {
    const err = await failure(run("sh", ["-c", "echo partial; echo bad >&2; exit 3"]));
    expect(err).toBeInstanceOf(SandboxCommandError);
    expect(err).toMatchObject({ code: "AMBIT_E_SANDBOX_COMMAND", exitCode: 3, stdout: "partial\n", stderr: "bad\n" });
    expect(err.message).toBe("command failed (exit 3): sh -c echo partial; echo bad >&2; exit 3: bad");
  });

  it("a command that cannot start rejects without an exit code", async () => {
    const err = await failure(run("ambit-no-such-command", ["x"]));
    expect(err).toMatchObject({ exitCode: undefined });
    expect(err.message).toContain("ENOENT");
  });

  it("a command past its timeout is killed and rejects as timed out", async () => {
    const started = Date.now();
    const err = await failure(run("sleep", ["10"], { timeoutMs: 200 }));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).toMatchObject({ exitCode: undefined });
    expect(err.message).toContain("timed out after 200 ms");
  });

  it("input a command does not read is not an error", async () => {
    expect(await run("true", [], { input: "x".repeat(1 << 20) })).toEqual({ stdout: "", stderr: "" });
  });
});
