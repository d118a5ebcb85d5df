// The comparison's loads, run as the client pod's app, and what each proxy spends on them (CPU per 1,000 req/s, RSS).
import { execa } from "execa";
import type { LoadKind, RoundResult } from "../report/index.ts";
import { LOAD, NODE } from "../tools/bench-sandbox.ts";
import { cpuTimes, rssKiB } from "../tools/process-stats.ts";
import { BULK, type ScenarioTarget } from "./scenarios.ts";

export interface LoadSpec {
  name: string;
  description: string;
  kind: LoadKind;
  /** The load tool's arguments for one run of `seconds` against `target`. */
  args(target: ScenarioTarget, seconds: number): string[];
  /** Which program runs it: the HTTP/gRPC load tool or the bulk TCP client. */
  tool: "load" | "bulk";
}

const keepalive = (connections: number, rate: number): LoadSpec => ({
  name: `keepalive-${connections}c`,
  description: `HTTP/1.1 keep-alive, 1 KiB responses, ${rate.toLocaleString("en-US")} req/s open loop over ${connections} connection${connections > 1 ? "s" : ""}`,
  kind: "latency",
  tool: "load",
  args: (t, s) => ["--mode", "rate", "--target", t.targets.http, "--rate", String(rate), "--seconds", String(s), "--connections", String(connections)],
});

/** Every load of a full run; `--quick` runs only the first. The first is the one the goals are judged on. */
export function loads(rate: number): LoadSpec[] {
  return [
    keepalive(16, rate),
    keepalive(1, rate),
    keepalive(4, rate),
    keepalive(64, rate),
    {
      name: "connect-per-request",
      description: "a new TCP connection per HTTP/1.1 request, 500 per second open loop",
      kind: "latency",
      tool: "load",
      args: (t, s) => ["--mode", "connect", "--target", t.targets.http, "--rate", "500", "--seconds", String(s)],
    },
    {
      name: "max-throughput",
      description: "HTTP/1.1 keep-alive, 1 KiB responses, as fast as answers come (closed loop, 32 connections)",
      kind: "throughput",
      tool: "load",
      args: (t, s) => ["--mode", "max", "--target", t.targets.http, "--seconds", String(s), "--connections", "32"],
    },
    {
      name: "bulk-tcp",
      description: "one TCP connection sending as fast as it can to a sink (MB = 10^6 bytes)",
      kind: "bulk",
      tool: "bulk",
      args: (t, s) => ["client", "--target", t.targets.bulk, "--direction", "send", "--seconds", String(s)],
    },
    {
      name: "grpc-unary",
      description: `gRPC unary (1 KiB answers), ${rate.toLocaleString("en-US")} calls/s open loop over 4 HTTP/2 connections`,
      kind: "latency",
      tool: "load",
      args: (t, s) => ["--mode", "grpc", "--target", t.targets.grpc, "--rate", String(rate), "--seconds", String(s), "--connections", "4"],
    },
  ];
}

/** Runs one load as the client pod's app (in its netns, as root: captured by an agent or its sidecar alike); the tool's JSON. */
export async function runLoad(spec: LoadSpec, target: ScenarioTarget, seconds: number): Promise<Record<string, unknown>> {
  const program = spec.tool === "bulk" ? BULK : LOAD;
  const { stdout } = await execa("nsenter", [`--net=/run/netns/${target.clientNetns}`, "--", NODE, program, ...spec.args(target, seconds)], {
    timeout: (seconds + 60) * 1000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** The load tool's report as one round of the results format. */
export function toRound(spec: LoadSpec, round: number, out: Record<string, unknown>): RoundResult {
  const latency =
    num(out.p50Ms) !== undefined
      ? { p50: num(out.p50Ms)!, p90: num(out.p90Ms)!, p99: num(out.p99Ms)!, p999: num(out.p999Ms)!, max: num(out.maxMs)! }
      : undefined;
  const r: RoundResult = { round, errors: Math.round(num(out.errors) ?? 0), durationS: num(out.durationS) ?? 0 };
  if (spec.kind === "bulk") {
    r.bulkMBps = num(out.mbPerSecond) ?? 0;
    return r;
  }
  if (latency && latency.p90 !== undefined && latency.p999 !== undefined) r.latencyMs = latency;
  if (num(out.requests) !== undefined) r.requests = num(out.requests)!;
  if (spec.kind === "throughput") {
    r.throughputRps = num(out.requestsPerSecond) ?? num(out.achievedRate) ?? 0;
    return r;
  }
  if (num(out.targetRate) !== undefined) r.targetRate = num(out.targetRate)!;
  if (num(out.achievedRate) !== undefined) r.achievedRate = num(out.achievedRate)!;
  return r;
}

/** CPU seconds (user + kernel) of each role's processes, summed per role. */
export async function cpuByRole(pids: Partial<Record<string, number[]>>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [role, list] of Object.entries(pids)) {
    let total = 0;
    for (const pid of list ?? []) {
      const t = await cpuTimes(pid).catch(() => ({ user: 0, kernel: 0 }));
      total += t.user + t.kernel;
    }
    out[role] = total;
  }
  return out;
}

/** RSS in MiB of each role's processes, summed per role. */
export async function rssByRole(pids: Partial<Record<string, number[]>>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [role, list] of Object.entries(pids)) {
    let total = 0;
    for (const pid of list ?? []) total += await rssKiB(pid).catch(() => 0);
    out[role] = total / 1024;
  }
  return out;
}
