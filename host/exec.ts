// Runs host commands (ip, iptables-restore, CNI plugins) as plain child processes, optionally inside a network namespace.
import path from "node:path";
import { execa } from "execa";
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
 */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = opts.netns === undefined ? [cmd, [...args]] : ["nsenter", [`--net=${netnsPath(opts.netns)}`, "--", cmd, ...args]];
  const result = await execa(file, argv, {
    input: opts.input ?? "",
    env: opts.env,
    extendEnv: !opts.cleanEnv,
    timeout: opts.timeoutMs ?? 30_000,
    killSignal: "SIGKILL",
    reject: false,
    stripFinalNewline: false,
  });
  if (result.failed) {
    const reason = result.timedOut ? `timed out after ${opts.timeoutMs ?? 30_000} ms` : (result.shortMessage ?? "failed");
    throw new SandboxCommandError([file, ...argv].join(" "), result.exitCode, String(result.stdout ?? ""), String(result.stderr ?? ""), reason);
  }
  return { stdout: String(result.stdout), stderr: String(result.stderr) };
}
