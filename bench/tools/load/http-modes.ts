// The HTTP/1.1 load modes: open loop over keep-alive connections (rate), open loop with a new connection per request (connect), closed loop (max, connect without a rate), idle connections held open (hold).
import { Accounting, type OpenLoopReport, type RunResult, openLoopReport } from "./open-loop.ts";
import { Http1Connection, type Outcome, errorKind, httpRequest } from "./http1.ts";
import { Fifo, type Released, runSchedule } from "./schedule.ts";
import { type LatencySummary, Samples, Tally, round } from "./stats.ts";

export interface HttpTarget {
  host: string;
  port: number;
  /** The request's host header (default: host). */
  hostHeader?: string;
  /** The request's path (default `/`). */
  path?: string;
}

/**
 * How rate mode spreads requests over its connections:
 * - `pool` (default): one queue for all connections, as a client's connection pool. A due request goes to the next
 *   idle connection in round-robin order; when every connection is busy it waits in the queue, and the wait counts.
 * - `pinned`: request i always goes to connection i mod N, each connection with its own queue (rate / N each, as
 *   wrk2's per-connection schedule). A stalled connection delays its own share even when others are idle.
 */
export type Dispatch = "pool" | "pinned";

export interface RateOptions extends HttpTarget {
  rate: number;
  seconds: number;
  connections: number;
  dispatch?: Dispatch;
  /** A request unanswered this long after it was written fails (`timeout`) and its connection is replaced; also how long the run waits for stragglers. Default 10,000. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const RECONNECT_BACKOFF_MS = 100;

/**
 * N keep-alive connections, kept open for the run: a connection that closes is replaced (at once if it had
 * connected, else after a back-off), and a request unanswered for `timeoutMs` fails and its connection is replaced.
 */
class ConnectionSet {
  readonly slots: Array<Http1Connection | undefined>;
  readonly target: HttpTarget;
  readonly onIdle: (slot: number, c: Http1Connection) => void;
  /** Connection attempts that failed, by kind (ECONNREFUSED ...). */
  readonly connectErrors = new Tally();
  #active = true;
  #timeoutMs: number;
  #sweep: NodeJS.Timeout;
  #timers = new Set<NodeJS.Timeout>();

  constructor(target: HttpTarget, n: number, onIdle: (slot: number, c: Http1Connection) => void, timeoutMs: number) {
    this.target = target;
    this.onIdle = onIdle;
    this.#timeoutMs = timeoutMs;
    this.slots = new Array<Http1Connection | undefined>(n);
    this.#sweep = setInterval(
      () => {
        const now = performance.now();
        for (const c of this.slots) if (c?.busy && now - c.sentAt > timeoutMs) c.abort("timeout");
      },
      Math.min(100, timeoutMs / 4),
    );
  }

  /** Opens every connection; resolves when each has connected or failed once (failed ones keep retrying), or after `timeoutMs`. */
  async open(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(Array.from(this.slots, (_, i) => this.#connect(i).ready())),
      new Promise((resolve) => (timer = setTimeout(resolve, this.#timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  #connect(slot: number): Http1Connection {
    const c = new Http1Connection(this.target.host, this.target.port, {
      onIdle: (conn) => this.onIdle(slot, conn),
      onClosed: (conn, err) => {
        if (this.slots[slot] === conn) this.slots[slot] = undefined;
        if (!conn.connected) this.connectErrors.add(err ? errorKind(err) : "closed");
        if (!this.#active) return;
        const timer = setTimeout(
          () => {
            this.#timers.delete(timer);
            if (this.#active) this.#connect(slot);
          },
          conn.connected ? 0 : RECONNECT_BACKOFF_MS,
        );
        this.#timers.add(timer);
      },
    });
    this.slots[slot] = c;
    return c;
  }

  close(): void {
    this.#active = false;
    clearInterval(this.#sweep);
    for (const t of this.#timers) clearTimeout(t);
    for (const c of this.slots) c?.socket.destroy();
  }
}

/**
 * Open loop over keep-alive connections: round(rate * seconds) requests at fixed intervals (1 / rate), whatever
 * happened to earlier ones; each one's latency counts from its intended send time, queueing for a connection included.
 */
export type RateReport = OpenLoopReport & {
  dispatch: Dispatch;
  connections: number;
  /** Failed connection attempts by kind; the connections keep retrying while the run lasts. */
  connectErrors: Record<string, number>;
};

export async function runRate(o: RateOptions): Promise<RunResult<RateReport>> {
  const n = Math.max(1, o.connections);
  const dispatch = o.dispatch ?? "pool";
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const payload = httpRequest(o.hostHeader ?? o.host, o.path);
  const acct = new Accounting();
  const lanes = Array.from({ length: dispatch === "pinned" ? n : 1 }, () => new Fifo<Released>());
  const laneOf = (slot: number) => lanes[dispatch === "pinned" ? slot : 0]!;

  const send = (c: Http1Connection, job: Released) =>
    c.send(payload, (out: Outcome) => {
      if (out.ok) acct.success(job, out.sentAt, out.at);
      else acct.failure(out.error ?? "error", out.at);
    });
  const set = new ConnectionSet(
    o,
    n,
    (slot, c) => {
      const job = laneOf(slot).shift();
      if (job) send(c, job);
    },
    timeoutMs,
  );
  await set.open();

  let next = 0;
  const release = (job: Released) => {
    if (dispatch === "pinned") {
      const slot = job.index % n;
      const c = set.slots[slot];
      if (c?.idle && laneOf(slot).length === 0) send(c, job);
      else laneOf(slot).push(job);
      return;
    }
    for (let k = 0; k < n; k++) {
      const slot = (next + k) % n;
      const c = set.slots[slot];
      if (c?.idle) {
        next = slot + 1;
        send(c, job);
        return;
      }
    }
    lanes[0]!.push(job);
  };

  try {
    const schedule = await runSchedule({ rate: o.rate, count: Math.round(o.rate * o.seconds) }, release);
    await acct.settle(schedule.released, performance.now() + timeoutMs);
    const result = openLoopReport("rate", o.rate, schedule, acct);
    return { ...result, report: { ...result.report, dispatch, connections: n, connectErrors: set.connectErrors.counts } };
  } finally {
    set.close();
  }
}

export interface ConnectOptions extends HttpTarget {
  rate: number;
  seconds: number;
  timeoutMs?: number;
}

/**
 * Open loop with a new TCP connection per request: at each due time, connect, send one request, read the answer,
 * close. Latency counts from the intended send time (connecting included); `uncorrected` from the connect call.
 */
export type ConnectReport = OpenLoopReport & { loop: "open"; connectionsPerSecond: number; connectionsMade: number };

export async function runConnect(o: ConnectOptions): Promise<RunResult<ConnectReport>> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const payload = httpRequest(o.hostHeader ?? o.host, o.path);
  const acct = new Accounting();
  const live = new Set<Http1Connection>();

  const release = (job: Released) => {
    const started = performance.now();
    let settled = false;
    const finish = (out: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (out.ok) acct.success(job, started, out.at);
      else acct.failure(out.error ?? "error", out.at);
      c.socket.destroy();
      live.delete(c);
    };
    const c = new Http1Connection(o.host, o.port, {
      onIdle: (conn) => {
        if (!conn.busy && !settled) conn.send(payload, finish);
      },
      onClosed: (_conn, err) => finish({ ok: false, status: 0, sentAt: 0, at: performance.now(), error: err ? errorKind(err) : "closed" }),
    });
    live.add(c);
    const timer = setTimeout(() => c.abort("timeout"), timeoutMs);
  };

  const schedule = await runSchedule({ rate: o.rate, count: Math.round(o.rate * o.seconds) }, release);
  try {
    await acct.settle(schedule.released, performance.now() + timeoutMs);
    const result = openLoopReport("connect", o.rate, schedule, acct);
    // connectionsPerSecond and connectionsMade: the closed loop's names for the same figures, for callers reading either.
    const { achievedRate, requests } = result.report;
    return { ...result, report: { ...result.report, loop: "open", connectionsPerSecond: achievedRate, connectionsMade: requests } };
  } finally {
    for (const c of live) c.abort("unfinished");
  }
}

export interface ClosedLoopReport extends LatencySummary {
  mode: string;
  loop: "closed";
  /** Latencies count from when each request was written: in a closed loop nothing waits for a send slot. */
  latencyFrom: "send";
  recording: "exact";
  requests: number;
  errors: number;
  /** Successful requests per second over durationS. */
  achievedRate: number;
  durationS: number;
  errorKinds: Record<string, number>;
}

export interface MaxOptions extends HttpTarget {
  seconds: number;
  connections: number;
  timeoutMs?: number;
}

/** Closed loop: every connection sends its next request as soon as the previous answer arrives, for `seconds`. */
export async function runMax(o: MaxOptions): Promise<RunResult<ClosedLoopReport & { requestsPerSecond: number; connections: number }>> {
  const n = Math.max(1, o.connections);
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const payload = httpRequest(o.hostHeader ?? o.host, o.path);
  const latency = new Samples();
  const errors = new Tally();
  let ok = 0;
  let failed = 0;
  let running = false;
  let deadline = Infinity;
  let inflight = 0;
  let drained: (() => void) | undefined;
  const set = new ConnectionSet(
    o,
    n,
    (_slot, c) => {
      if (!running || performance.now() >= deadline) return;
      inflight++;
      c.send(payload, (out) => {
        inflight--;
        if (out.ok) {
          ok++;
          latency.add(out.at - out.sentAt);
        } else {
          failed++;
          errors.add(out.error ?? "error");
        }
        if (inflight === 0 && performance.now() >= deadline) drained?.();
      });
    },
    timeoutMs,
  );
  // Connecting is not part of the measurement: the clock starts once every connection is open.
  await set.open();
  const start = performance.now();
  deadline = start + o.seconds * 1000;
  running = true;
  for (const [slot, c] of set.slots.entries()) if (c?.idle) set.onIdle(slot, c);
  try {
    await new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())));
    if (inflight > 0) {
      await new Promise<void>((resolve) => {
        drained = resolve;
        setTimeout(resolve, timeoutMs);
      });
    }
    const durationS = (performance.now() - start) / 1000;
    const rps = round(ok / durationS, 1);
    return {
      report: {
        mode: "max",
        loop: "closed",
        latencyFrom: "send",
        recording: "exact",
        connections: n,
        requestsPerSecond: rps,
        achievedRate: rps,
        requests: ok,
        errors: failed + inflight,
        durationS: round(durationS, 3),
        ...latency.summary(),
        errorKinds: inflight ? { ...errors.counts, unfinished: inflight } : errors.counts,
      },
      latency,
      uncorrected: latency,
    };
  } finally {
    set.close();
  }
}

/** Closed loop of connect, one request, close over `workers` concurrent workers: the most new connections per second. */
export async function runConnectClosed(
  o: HttpTarget & { seconds: number; workers: number; timeoutMs?: number },
): Promise<RunResult<ClosedLoopReport & { workers: number; connectionsPerSecond: number; connectionsMade: number }>> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const payload = httpRequest(o.hostHeader ?? o.host, o.path);
  const latency = new Samples();
  const errors = new Tally();
  let ok = 0;
  const start = performance.now();
  const deadline = start + o.seconds * 1000;
  const one = () =>
    new Promise<Outcome>((resolve) => {
      let sent = false;
      const c = new Http1Connection(o.host, o.port, {
        onIdle: (conn) => {
          if (sent) return;
          sent = true;
          conn.send(payload, (out) => {
            resolve(out);
            conn.socket.destroy();
          });
        },
        onClosed: (_conn, err) => resolve({ ok: false, status: 0, sentAt: 0, at: performance.now(), error: err ? errorKind(err) : "closed" }),
      });
      const timer = setTimeout(() => c.abort("timeout"), timeoutMs);
      c.socket.once("close", () => clearTimeout(timer));
    });
  await Promise.all(
    Array.from({ length: Math.max(1, o.workers) }, async () => {
      while (performance.now() < deadline) {
        const began = performance.now();
        const out = await one();
        if (out.ok) {
          ok++;
          latency.add(out.at - began);
        } else errors.add(out.error ?? "error");
      }
    }),
  );
  const durationS = (performance.now() - start) / 1000;
  const failed = Object.values(errors.counts).reduce((a, b) => a + b, 0);
  const cps = round(ok / durationS, 1);
  return {
    report: {
      mode: "connect",
      loop: "closed",
      latencyFrom: "send",
      recording: "exact",
      workers: o.workers,
      connectionsPerSecond: cps,
      connectionsMade: ok,
      achievedRate: cps,
      requests: ok,
      errors: failed,
      durationS: round(durationS, 3),
      ...latency.summary(),
      errorKinds: errors.counts,
    },
    latency,
    uncorrected: latency,
  };
}

/**
 * Opens `connections` keep-alive connections and makes one request on each, 200 at a time (what is measured is idle
 * connections, not a burst of thousands of requests at once, which an L7 proxy refuses past its limit); the caller
 * holds or closes them.
 */
export async function openHeld(o: HttpTarget & { connections: number }): Promise<{ connections: Http1Connection[]; open: number; ok: number }> {
  const payload = httpRequest(o.hostHeader ?? o.host, o.path);
  const connections: Http1Connection[] = [];
  let ok = 0;
  for (let i = 0; i < o.connections; i += 200) {
    const batch = Array.from({ length: Math.min(200, o.connections - i) }, () => new Http1Connection(o.host, o.port));
    await Promise.all(batch.map((c) => c.ready()));
    ok += (await Promise.all(batch.map((c) => c.request(payload)))).filter((x) => x.ok).length;
    connections.push(...batch);
  }
  return { connections, open: connections.filter((c) => !c.closed).length, ok };
}
