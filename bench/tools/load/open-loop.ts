// What every open-loop mode shares: the accounting of outcomes against the schedule, waiting for stragglers, and the JSON report.
import { type Released, type ScheduleResult } from "./schedule.ts";
import { type LatencySummary, Samples, Tally, prefixed, round } from "./stats.ts";

/** The report of an open-loop run (HTTP/1.1 keep-alive, connection per request, gRPC unary). */
export interface OpenLoopReport extends LatencySummary {
  mode: string;
  /** Latencies (p50Ms ... meanMs) count from each request's intended send time (see schedule.ts). */
  latencyFrom: "intended";
  /** Every latency is kept: percentiles are exact. */
  recording: "exact";
  targetRate: number;
  /** Successful requests per second over durationS. */
  achievedRate: number;
  /** Requests the schedule released: round(rate * seconds). */
  scheduled: number;
  /** Successful requests (2xx; gRPC: HTTP 200 and grpc-status 0). */
  requests: number;
  /** Failed requests, unfinished ones included: requests + errors = scheduled. */
  errors: number;
  /** Requests with no answer when the run ended (the last one due plus timeoutMs); counted in errors too. */
  unfinished: number;
  /** Always 0: requests that find every connection busy wait in a queue instead (kept for older callers). */
  dropped: number;
  /** From the schedule's start to the last answer (or failure), in seconds. */
  durationS: number;
  uncorrectedP50Ms: number;
  uncorrectedP90Ms: number;
  uncorrectedP99Ms: number;
  uncorrectedP999Ms: number;
  uncorrectedMaxMs: number;
  uncorrectedMeanMs: number;
  /** How late the generator released requests after their due time: its own lag, p99 and max. */
  schedulerLateP99Ms: number;
  schedulerLateMaxMs: number;
  /** Failures by kind: `HTTP <status>`, `grpc-status <n>`, errno codes (ECONNREFUSED ...), `timeout`, `closed`, `unfinished`. */
  errorKinds: Record<string, number>;
}

/** A run's report and its raw samples (for in-process callers such as tests). */
export interface RunResult<R> {
  report: R;
  /** From each request's intended send time (the report's p50Ms ...). */
  latency: Samples;
  /** From when each request was actually written (what a closed-loop generator would have measured). */
  uncorrected: Samples;
}

/** Outcomes of released requests as they come in. */
export class Accounting {
  readonly latency = new Samples();
  readonly uncorrected = new Samples();
  readonly errorKinds = new Tally();
  ok = 0;
  failed = 0;
  /** `performance.now()` of the last outcome. */
  lastAt = 0;
  #frozen = false;
  #waiter: (() => void) | undefined;
  #expected = Infinity;

  get settled(): number {
    return this.ok + this.failed;
  }

  success(job: Pick<Released, "intended">, sentAt: number, at: number): void {
    if (this.#frozen) return;
    this.ok++;
    this.lastAt = Math.max(this.lastAt, at);
    this.latency.add(at - job.intended);
    this.uncorrected.add(at - sentAt);
    this.#check();
  }

  failure(kind: string, at: number): void {
    if (this.#frozen) return;
    this.failed++;
    this.lastAt = Math.max(this.lastAt, at);
    this.errorKinds.add(kind);
    this.#check();
  }

  /** Resolves once `expected` outcomes are in, or at `deadline` (performance.now() milliseconds). */
  async settle(expected: number, deadline: number): Promise<void> {
    this.#expected = expected;
    if (this.settled >= expected) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#waiter = resolve;
      timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
    });
    clearTimeout(timer);
    this.#waiter = undefined;
  }

  /** Ignores outcomes from now on (the connections are being torn down). */
  freeze(): void {
    this.#frozen = true;
  }

  #check(): void {
    if (this.settled >= this.#expected) this.#waiter?.();
  }
}

/** The report of an open-loop run once it is over. */
export function openLoopReport(mode: string, targetRate: number, schedule: ScheduleResult, acct: Accounting): RunResult<OpenLoopReport> {
  acct.freeze();
  const unfinished = schedule.released - acct.settled;
  if (unfinished > 0) acct.errorKinds.add("unfinished", unfinished);
  const end = acct.lastAt > 0 ? acct.lastAt : performance.now();
  const durationS = Math.max(1e-9, (end - schedule.start) / 1000);
  const report: OpenLoopReport = {
    mode,
    latencyFrom: "intended",
    recording: "exact",
    targetRate,
    achievedRate: round(acct.ok / durationS, 1),
    scheduled: schedule.released,
    requests: acct.ok,
    errors: acct.failed + unfinished,
    unfinished,
    dropped: 0,
    durationS: round(durationS, 3),
    ...acct.latency.summary(),
    ...prefixed("uncorrected", acct.uncorrected.summary()),
    schedulerLateP99Ms: round(schedule.lateness.percentile(99)),
    schedulerLateMaxMs: round(schedule.lateness.count ? schedule.lateness.percentile(100) : NaN),
    errorKinds: acct.errorKinds.counts,
  };
  return { report, latency: acct.latency, uncorrected: acct.uncorrected };
}
