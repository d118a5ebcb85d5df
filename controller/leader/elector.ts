// Lease-based leader election with client-go's rules: acquire an absent, released or expired lease, renew it, step down when renewal fails.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import { type KubeClient, type KubeObject, isConflict, isNotFound, pathFor } from "../../kube/client.ts";
import { LEASE_API_VERSION, type LeaseRecord, microTime, readRecord, recordKey } from "./record.ts";
import { AmbitError } from "../../contract/errors.ts";
import type { CONTROLLER_ERRORS } from "../../contract/error-codes.ts";

/** The part of KubeClient the elector uses; a narrow type so tests can put a fault-injecting wrapper in front. */
export type LeaseClient = Pick<KubeClient, "request">;

export type LeaderElectionErrorCode = (typeof CONTROLLER_ERRORS.code)["leaderConfig" | "leaderLease" | "leaderTimeout" | "leaderRelease" | "leaderCallback"];

export class LeaderElectionError extends AmbitError<LeaderElectionErrorCode> {
  constructor(code: LeaderElectionErrorCode, message: string) {
    super(code, message);
    this.name = "LeaderElectionError";
  }
}

export const LEADER_DEFAULTS = {
  namespace: "ambit-system",
  name: "ambit-controller",
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
} as const;

/** client-go's rule: the renew deadline must leave room for more than one retry (its JitterFactor). */
const RETRY_FACTOR = 1.2;
/** Candidates wait retryPeriod plus up to this fraction more, so replicas started together do not poll in lockstep. */
const CANDIDATE_JITTER = 0.2;

export interface LeaderElectorOptions {
  client: LeaseClient;
  /** Namespace of the Lease (default ambit-system). */
  namespace?: string;
  /** Name of the Lease (default ambit-controller). */
  name?: string;
  /** Unique per process; default `leaderIdentity()` (POD_NAME or host name, plus a random suffix). */
  identity?: string;
  /** How long others wait, from when they saw the record last change, before taking over (default 15 s; stored in whole seconds, rounded up). */
  leaseDurationMs?: number;
  /** A leader that has not renewed successfully for this long steps down (default 10 s). Must be below leaseDurationMs. */
  renewDeadlineMs?: number;
  /** Interval between attempts, for candidates and for the leader's renewals (default 2 s). */
  retryPeriodMs?: number;
  /** On stop(), a leader writes an empty holder so another replica takes over at once (default true). */
  releaseOnCancel?: boolean;
  log: Logger;
  /** When given, the elector registers the `ambit_controller_leader` gauge (1 while leading) in it. */
  registry?: Registry;
  /** Called on becoming leader; `signal` aborts when leadership ends (step-down or stop). */
  onStartedLeading?(signal: AbortSignal): void | Promise<void>;
  /** Called once for every onStartedLeading, when leadership ends. */
  onStoppedLeading?(): void;
  /** Called when the observed holder changes, ourselves included; "" means nobody holds the lease. */
  onNewLeader?(identity: string): void;
  /** Monotonic clock in ms (default performance.now); tests substitute a fake one. */
  now?: () => number;
}

export interface LeaderStatus {
  identity: string;
  lease: string;
  isLeader: boolean;
  /** The holder as last observed; "" when nobody holds it or nothing has been read yet. */
  leader: string;
  leaseTransitions: number;
}

/** An identity unique to this process: client-go uses host name plus a UUID, for the same reason. */
export function leaderIdentity(base: string = process.env.POD_NAME || os.hostname()): string {
  return `${base}_${randomBytes(4).toString("hex")}`;
}

type Outcome = "held" | "other" | "retry";

interface Resolved {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  leaseSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  releaseOnCancel: boolean;
}

function resolve(opts: LeaderElectorOptions): Resolved {
  const r = {
    namespace: opts.namespace ?? LEADER_DEFAULTS.namespace,
    name: opts.name ?? LEADER_DEFAULTS.name,
    identity: opts.identity ?? leaderIdentity(),
    leaseDurationMs: opts.leaseDurationMs ?? LEADER_DEFAULTS.leaseDurationMs,
    renewDeadlineMs: opts.renewDeadlineMs ?? LEADER_DEFAULTS.renewDeadlineMs,
    retryPeriodMs: opts.retryPeriodMs ?? LEADER_DEFAULTS.retryPeriodMs,
    releaseOnCancel: opts.releaseOnCancel ?? true,
  };
  const problems: string[] = [];
  if (!r.identity) problems.push("identity must not be empty");
  if (!r.namespace || !r.name) problems.push("namespace and name of the Lease must not be empty");
  for (const key of ["leaseDurationMs", "renewDeadlineMs", "retryPeriodMs"] as const) {
    if (!Number.isFinite(r[key]) || r[key] <= 0) problems.push(`${key} must be a positive number of milliseconds (got ${r[key]})`);
  }
  if (r.leaseDurationMs < 1000) problems.push(`leaseDurationMs must be at least 1000: the Lease stores whole seconds (got ${r.leaseDurationMs})`);
  // Safety: others may take over leaseDuration after the last renewal; the leader must have stepped down by then.
  if (r.leaseDurationMs <= r.renewDeadlineMs)
    problems.push(`leaseDurationMs (${r.leaseDurationMs}) must be greater than renewDeadlineMs (${r.renewDeadlineMs})`);
  if (r.renewDeadlineMs <= RETRY_FACTOR * r.retryPeriodMs)
    problems.push(`renewDeadlineMs (${r.renewDeadlineMs}) must be greater than ${RETRY_FACTOR} × retryPeriodMs (${r.retryPeriodMs})`);
  if (problems.length) throw new LeaderElectionError("AMBIT_E_LEADER_CONFIG", `invalid leader election settings: ${problems.join("; ")}`);
  return { ...r, leaseSeconds: Math.ceil(r.leaseDurationMs / 1000) };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((done) => {
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", finish);
      done();
    };
    const timer = setTimeout(finish, ms);
    signal.addEventListener("abort", finish, { once: true });
  });
}

/**
 * Bounds an API call: KubeClient's own timeout is 30 s, far beyond a renew deadline, and a hung connection must
 * not keep a leader leading. The request itself carries on in the background; every write is conditional on
 * the resourceVersion, so a late one can only succeed if nothing else changed the Lease in between.
 */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolveP, reject) => {
    const timer = setTimeout(
      () => reject(new LeaderElectionError("AMBIT_E_LEADER_TIMEOUT", `${what}: no answer within ${Math.round(ms)} ms`)),
      Math.max(0, ms),
    );
    p.then(
      (v) => {
        clearTimeout(timer);
        resolveP(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class LeaderElector {
  readonly identity: string;
  readonly #o: Resolved;
  readonly #cb: LeaderElectorOptions;
  readonly #client: LeaseClient;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #path: string;
  readonly #collection: string;
  readonly #gauge: Gauge | undefined;

  /** Set while leading; aborting it ends the leader's work (the signal given to onStartedLeading). */
  #leading: AbortController | undefined;
  /** When (monotonic, at send time) the last successful write of ours was issued: the renew deadline counts from it. */
  #lastRenew = Number.NEGATIVE_INFINITY;
  /** The Lease as last returned by the server: the fast renewal path and release write on top of it. */
  #lease: KubeObject | undefined;
  /** The record as last seen and when it last changed, by our own clock: expiry never trusts the writer's clock. */
  #observed: { record: LeaseRecord; key: string; at: number } | undefined;
  #reported: string | undefined;
  /** Attempts may overlap when one times out; results of an older attempt never overwrite a newer one's. */
  #attemptSeq = 0;
  #appliedSeq = 0;
  #run: { controller: AbortController; done: Promise<void> } | undefined;
  #stopping: Promise<void> | undefined;

  constructor(opts: LeaderElectorOptions) {
    this.#o = resolve(opts);
    this.#cb = opts;
    this.#client = opts.client;
    this.identity = this.#o.identity;
    this.#now = opts.now ?? (() => performance.now());
    this.#log = opts.log.child({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.identity });
    this.#path = pathFor(LEASE_API_VERSION, "leases", this.#o.namespace, this.#o.name);
    this.#collection = pathFor(LEASE_API_VERSION, "leases", this.#o.namespace);
    if (opts.registry) {
      this.#gauge = new Gauge({
        name: "ambit_controller_leader",
        help: "1 while this controller replica holds the leader lease, else 0",
        registers: [opts.registry],
      });
      this.#gauge.set(0);
    }
  }

  /**
   * True while leading and within the renew deadline of the last successful renewal. The deadline is checked
   * here too, not only by the renew loop, so a stalled event loop cannot leave this true past the point where
   * another replica may legitimately take over.
   */
  isLeader(): boolean {
    return this.#leading !== undefined && this.#now() < this.#lastRenew + this.#o.renewDeadlineMs;
  }

  /** The holder as last observed ("" when nobody holds the lease or it has not been read yet). */
  leader(): string {
    return this.#observed?.record.holderIdentity ?? "";
  }

  status(): LeaderStatus {
    return {
      identity: this.identity,
      lease: `${this.#o.namespace}/${this.#o.name}`,
      isLeader: this.isLeader(),
      leader: this.leader(),
      leaseTransitions: this.#observed?.record.leaseTransitions ?? 0,
    };
  }

  /** Starts campaigning in the background; errors from the API are logged and retried, never thrown. */
  start(): void {
    if (this.#run) return;
    const controller = new AbortController();
    // A restart right after stop() waits for the release to finish, so the two never race each other.
    const previous = this.#stopping ?? Promise.resolve();
    this.#run = { controller, done: previous.then(() => this.#loop(controller.signal)) };
  }

  /**
   * Stops campaigning. A leader first ends its leader work (signal, onStoppedLeading), then, with `release`
   * (default: the releaseOnCancel option), writes an empty holder so another replica takes over at once;
   * `release: false` leaves the lease to expire, as a crash would. Resolves once any in-flight attempt has
   * ended (at most renewDeadline) and the release is written or has failed.
   */
  stop(opts: { release?: boolean } = {}): Promise<void> {
    const run = this.#run;
    if (!run) return this.#stopping ?? Promise.resolve();
    this.#run = undefined;
    run.controller.abort();
    this.#stopping = (async () => {
      await run.done;
      this.#stepDown("stopped");
      if (opts.release ?? this.#o.releaseOnCancel) await this.#release();
    })();
    return this.#stopping;
  }

  async #loop(signal: AbortSignal): Promise<void> {
    try {
      while (!signal.aborted) {
        if (!(await this.#acquire(signal))) return;
        this.#startLeading();
        const lost = await this.#renew(signal);
        // On abort, stop() steps down itself, before releasing.
        if (lost === undefined) return;
        this.#stepDown(lost);
      }
    } catch (err) {
      // Not expected (every API error is caught below); logged rather than left as an unhandled rejection.
      this.#log.error({ code: "AMBIT_E_LEADER_LEASE", err: describe(err) }, "leader election loop ended unexpectedly");
      this.#stepDown("election loop failed");
    }
  }

  /** Candidate: retries until the lease is ours (true) or we are stopped (false). */
  async #acquire(signal: AbortSignal): Promise<boolean> {
    this.#log.debug("campaigning for the leader lease");
    while (!signal.aborted) {
      const outcome = await this.#attempt(this.#o.renewDeadlineMs);
      // An acquisition that lands as we stop is released by stop(): it names us in #lease.
      if (signal.aborted) return false;
      if (outcome === "held") return true;
      await sleep(this.#o.retryPeriodMs * (1 + Math.random() * CANDIDATE_JITTER), signal);
    }
    return false;
  }

  /** Leader: renews every retryPeriod; returns why leadership was lost, or undefined when stopped. */
  async #renew(signal: AbortSignal): Promise<string | undefined> {
    for (;;) {
      await sleep(this.#o.retryPeriodMs, signal);
      if (signal.aborted) return undefined;
      // Retry failed renewals until the deadline, counted from the last success rather than from this round:
      // others can take over leaseDuration after that success, and renewDeadline < leaseDuration.
      for (;;) {
        const remaining = this.#lastRenew + this.#o.renewDeadlineMs - this.#now();
        if (remaining <= 0) return `could not renew the lease within ${this.#o.renewDeadlineMs} ms`;
        const outcome = await this.#attempt(remaining);
        if (signal.aborted) return undefined;
        if (outcome === "held") break;
        if (outcome === "other") return `the lease is held by ${this.leader()}`;
        await sleep(Math.min(this.#o.retryPeriodMs, this.#lastRenew + this.#o.renewDeadlineMs - this.#now()), signal);
        if (signal.aborted) return undefined;
      }
    }
  }

  /** One try, bounded in time; never throws. */
  async #attempt(timeoutMs: number): Promise<Outcome> {
    const seq = ++this.#attemptSeq;
    try {
      return await withTimeout(this.#tryAcquireOrRenew(seq), timeoutMs, `leader lease ${this.#o.namespace}/${this.#o.name}`);
    } catch (err) {
      const code = err instanceof LeaderElectionError ? err.code : "AMBIT_E_LEADER_LEASE";
      this.#log.warn(
        { code, err: describe(err), leading: this.#leading !== undefined },
        this.#leading ? "could not renew the leader lease; retrying" : "could not read or acquire the leader lease; retrying",
      );
      return "retry";
    }
  }

  async #tryAcquireOrRenew(seq: number): Promise<Outcome> {
    const started = this.#now();
    const wall = Date.now();
    // Fast path, as client-go: a leader renews on top of the Lease it last wrote, without reading it first.
    if (this.#leading && this.#lease && readRecord(this.#lease).holderIdentity === this.identity) {
      try {
        const updated = await this.#client.request<KubeObject>("PUT", this.#path, this.#withRecord(this.#lease, wall, true));
        this.#applyWrite(updated, started, seq);
        return "held";
      } catch (err) {
        // Changed or deleted under us: read it and decide as a candidate would.
        if (!isConflict(err) && !isNotFound(err)) throw err;
        this.#log.debug({ err: describe(err) }, "the leader lease changed since our last renewal; re-reading it");
      }
    }

    let lease: KubeObject;
    try {
      lease = await this.#client.request<KubeObject>("GET", this.#path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const fresh: KubeObject = { apiVersion: LEASE_API_VERSION, kind: "Lease", metadata: { name: this.#o.name, namespace: this.#o.namespace } };
      try {
        const created = await this.#client.request<KubeObject>("POST", this.#collection, this.#withRecord(fresh, wall, false, 0));
        this.#applyWrite(created, started, seq);
        return "held";
      } catch (e) {
        // AlreadyExists: another replica created it first and won this round.
        if (isConflict(e)) return this.#reread(seq);
        throw e;
      }
    }

    const record = this.#observe(lease, seq);
    const ours = record.holderIdentity === this.identity;
    if (record.holderIdentity !== "" && !ours && this.#observedStillValid()) return "other";
    try {
      const updated = await this.#client.request<KubeObject>(
        "PUT",
        this.#path,
        this.#withRecord(lease, wall, ours, ours ? record.leaseTransitions : record.leaseTransitions + 1),
      );
      this.#applyWrite(updated, started, seq);
      if (!ours) this.#log.info({ previous: record.holderIdentity || undefined, leaseTransitions: record.leaseTransitions + 1 }, "acquired the leader lease");
      return "held";
    } catch (err) {
      // Optimistic concurrency: someone wrote between our read and our write (a renewal or a rival's takeover).
      if (isConflict(err)) return this.#reread(seq);
      throw err;
    }
  }

  /** After a 409 the other writer won; read what it wrote so leader() and onNewLeader are current. */
  async #reread(seq: number): Promise<Outcome> {
    const lease = await this.#client.request<KubeObject>("GET", this.#path);
    const record = this.#observe(lease, seq);
    return record.holderIdentity !== "" && record.holderIdentity !== this.identity && this.#observedStillValid() ? "other" : "retry";
  }

  /** `base` with our record in its spec, keeping any other spec fields; `keepAcquire` when renewing our own hold. */
  #withRecord(base: KubeObject, wall: number, keepAcquire: boolean, transitions?: number): KubeObject {
    const previous = readRecord(base);
    const now = microTime(wall);
    return {
      ...base,
      spec: {
        ...(base.spec ?? {}),
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#o.leaseSeconds,
        acquireTime: keepAcquire && previous.acquireTime ? previous.acquireTime : now,
        renewTime: now,
        leaseTransitions: transitions ?? previous.leaseTransitions,
      },
    };
  }

  #observe(lease: KubeObject, seq: number): LeaseRecord {
    const record = readRecord(lease);
    if (seq < this.#appliedSeq) return record;
    this.#appliedSeq = seq;
    this.#lease = lease;
    const key = recordKey(record);
    if (this.#observed?.key !== key) this.#observed = { record, key, at: this.#now() };
    this.#report(record.holderIdentity);
    return record;
  }

  #applyWrite(lease: KubeObject, started: number, seq: number): void {
    // The write was accepted no earlier than it was sent, so counting from `started` errs on the safe side.
    if (started > this.#lastRenew) this.#lastRenew = started;
    this.#observe(lease, seq);
  }

  /** A holder's lease is valid until leaseDurationSeconds (its own, as written) after we saw the record change. */
  #observedStillValid(): boolean {
    const o = this.#observed;
    if (!o) return false;
    const durationMs = (o.record.leaseDurationSeconds ?? this.#o.leaseSeconds) * 1000;
    return this.#now() < o.at + durationMs;
  }

  #report(holder: string): void {
    if (holder === this.#reported) return;
    this.#reported = holder;
    if (holder && holder !== this.identity) this.#log.info({ leader: holder }, "observed a new leader");
    this.#call("onNewLeader", () => this.#cb.onNewLeader?.(holder));
  }

  #startLeading(): void {
    const controller = new AbortController();
    this.#leading = controller;
    this.#gauge?.set(1);
    this.#log.info({ leaseTransitions: this.#observed?.record.leaseTransitions }, "became the leader");
    this.#call("onStartedLeading", () => this.#cb.onStartedLeading?.(controller.signal));
  }

  #stepDown(reason: string): void {
    const controller = this.#leading;
    if (!controller) return;
    this.#leading = undefined;
    this.#gauge?.set(0);
    controller.abort(new LeaderElectionError("AMBIT_E_LEADER_LEASE", `leadership ended: ${reason}`));
    if (reason === "stopped") this.#log.info("stopped leading: stopping");
    else this.#log.warn({ code: "AMBIT_E_LEADER_LEASE", reason }, "stopped leading");
    this.#call("onStoppedLeading", () => this.#cb.onStoppedLeading?.());
  }

  /** Runs a user callback; its errors (thrown or rejected) are logged, never allowed to stop the election. */
  #call(name: string, fn: () => unknown): void {
    const fail = (err: unknown) => this.#log.error({ code: "AMBIT_E_LEADER_CALLBACK", callback: name, err: describe(err) }, "leader election callback failed");
    try {
      const result = fn();
      if (result instanceof Promise) result.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  /** client-go's release: empty holder, duration 1 s, transitions unchanged; only if the lease still names us. */
  async #release(): Promise<void> {
    let lease = this.#lease;
    for (let round = 0; round < 2; round++) {
      if (!lease || readRecord(lease).holderIdentity !== this.identity) return;
      const now = microTime(Date.now());
      const released: KubeObject = {
        ...lease,
        spec: {
          ...(lease.spec ?? {}),
          holderIdentity: "",
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: readRecord(lease).leaseTransitions,
        },
      };
      try {
        const updated = await withTimeout(this.#client.request<KubeObject>("PUT", this.#path, released), this.#o.renewDeadlineMs, "releasing the leader lease");
        this.#observe(updated, ++this.#attemptSeq);
        this.#log.info("released the leader lease");
        return;
      } catch (err) {
        let failure = err;
        if (round === 0 && isConflict(err)) {
          // A renewal of ours that was still in flight may have landed first: read it and try once more.
          try {
            lease = await withTimeout(this.#client.request<KubeObject>("GET", this.#path), this.#o.renewDeadlineMs, "reading the leader lease");
            this.#observe(lease, ++this.#attemptSeq);
            continue;
          } catch (e) {
            failure = e;
          }
        }
        this.#log.warn(
          { code: "AMBIT_E_LEADER_RELEASE", err: describe(failure) },
          "could not release the leader lease; another replica takes over when it expires",
        );
        return;
      }
    }
  }
}
