// Runs host commands (ip, iptables-restore, CNI plugins) as plain child processes, optionally inside a network namespace.
import { spawn } from "node:child_process";
import path from "node:path";
import { AmbitError } from "../contract/errors.ts";
import { SANDBOX_ERRORS } from "../contract/error-codes.ts";

/** Where `ip netns add` mounts named network namespaces. */
export const NETNS_DIR = "/run/netns";

/** Accepts a netns name (`ambit-dev-node-1`) or an absolute path to a netns file. */
export function netnsPath(netns: string): string {
  return netns.startsWith("/") ? netns : path.join(NETNS_DIR, netns);
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Network namespace (name or path) to run the command in, entered with nsenter. */
  netns?: string;
  /** Environment; with `cleanEnv` it replaces the inherited environment instead of extending it. */
  env?: Record<string, string>;
  cleanEnv?: boolean;
  /** Killed (SIGKILL) after this long; default 30 s, so a wedged command cannot hang the sandbox. */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A command that could not be started, exited non-zero, or timed out. */
export class SandboxCommandError extends AmbitError<typeof SANDBOX_ERRORS.code.command> {
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;

  constructor(command: string, exitCode: number | undefined, stdout: string, stderr: string, reason: string) {
    const detail = stderr.trim() || stdout.trim() || reason;
    super(SANDBOX_ERRORS.code.command, `command failed (${exitCode === undefined ? reason : `exit ${exitCode}`}): ${command}${detail ? `: ${detail}` : ""}`);
    this.name = "SandboxCommandError";
    this.command = command;
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/**
 * Runs `cmd args` and resolves with its output, or rejects with a SandboxCommandError.
 * With `netns`, runs it through `nsenter --net=<path> --` rather than `ip netns exec`, which would
 * also unshare the mount namespace and remount /sys for every call.
 * node:child_process rather than execa: the agent runs its iptables through here, and execa's module graph cost
 * the idle agent 2 MiB of RSS (6.6 MiB on its own next to the built-ins the agent loads).
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = opts.netns === undefined ? [cmd, [...args]] : ["nsenter", [`--net=${netnsPath(opts.netns)}`, "--", cmd, ...args]];
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env: opts.cleanEnv ? (opts.env ?? {}) : { ...process.env, ...opts.env }, stdio: "pipe" });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let failure: Error | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (c: Buffer) => stdout.push(c));
    child.stderr.on("data", (c: Buffer) => stderr.push(c));
    // A command that exits without reading its input: EPIPE on stdin, which its exit status reports better.
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
    child.on("error", (err) => (failure = err));
    // After "error" too when the command could not be started.
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout).toString("utf8");
      const err = Buffer.concat(stderr).toString("utf8");
      if (code === 0 && !failure && !timedOut) return resolve({ stdout: out, stderr: err });
      const reason = timedOut ? `timed out after ${timeoutMs} ms` : failure ? failure.message : signal ? `killed by ${signal}` : `exit ${code}`;
      reject(new SandboxCommandError([file, ...argv].join(" "), failure || timedOut ? undefined : (code ?? undefined), out, err, reason));
    });
  });
}
