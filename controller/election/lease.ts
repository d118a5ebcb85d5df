// Lease-based leader election (coordination.k8s.io/v1), with client-go's rules: acquire when expired, renew or step down.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, isConflict, isNotFound, pathFor } from "../../kube/client.ts";

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading?(): void;
  onStoppedLeading?(): void;
  now?: () => number;
}

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

export class LeaderElector {
  readonly #opts: LeaderElectorOptions;
  #leading = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;
  /** The lease as last seen, and when (local clock): expiry is judged from our own observation, not the writer's clock. */
  #observed: { holder: string; resourceVersion: string | undefined; renewTime: string | undefined; at: number } | undefined;
  #lastRenew = 0;
  #transitions = 0;

  constructor(opts: LeaderElectorOptions) {
    this.#opts = opts;
  }

  isLeader(): boolean {
    return this.#leading;
  }

  /** The holder as last observed ("" when nobody holds it). */
  leader(): string {
    return this.#observed?.holder ?? "";
  }

  start(): void {
    this.#stopped = false;
    void this.#tick();
  }

  /**
   * Stops; a leader releases the lease (empty holder) so the other replica takes over at once. Without
   * `release` the lease is left to expire, as after a crash.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#setLeading(false);
    if (opts.release === false) return;
    try {
      const lease = await this.#opts.client.get(this.#path());
      if (lease.spec?.holderIdentity === this.#opts.identity) {
        await this.#opts.client.request("PUT", this.#path(), { ...lease, spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(this.#now()) } });
      }
    } catch (err) {
      this.#opts.log.warn({ err: String(err) }, "could not release the leader lease; the other replica takes over when it expires");
    }
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  #path(name?: string): string {
    return pathFor("coordination.k8s.io/v1", "leases", this.#opts.namespace, name ?? this.#opts.name);
  }

  #setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#opts.log.info({ identity: this.#opts.identity, lease: `${this.#opts.namespace}/${this.#opts.name}` }, leading ? "became the leader" : "stopped leading");
    if (leading) this.#opts.onStartedLeading?.();
    else this.#opts.onStoppedLeading?.();
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      const ok = await this.#tryAcquireOrRenew();
      if (ok) this.#lastRenew = this.#now();
      this.#setLeading(ok);
    } catch (err) {
      this.#opts.log.warn({ err: String(err) }, "leader election: the API server did not answer");
      // A leader that cannot renew within the deadline must assume someone else took over.
      if (this.#leading && this.#now() - this.#lastRenew > this.#opts.renewDeadlineMs) this.#setLeading(false);
    }
    if (!this.#stopped) this.#timer = setTimeout(() => void this.#tick(), this.#opts.retryPeriodMs);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, identity, leaseDurationMs } = this.#opts;
    const now = this.#now();
    const spec = (acquireTime: string, transitions: number) => ({
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      acquireTime,
      renewTime: microTime(now),
      leaseTransitions: transitions,
    });
    let lease: KubeObject;
    try {
      lease = await client.get(this.#path());
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await client.create(this.#path().replace(/\/[^/]+$/, ""), { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: this.#opts.name, namespace: this.#opts.namespace }, spec: spec(microTime(now), 0) });
        this.#observed = { holder: identity, resourceVersion: undefined, renewTime: microTime(now), at: now };
        return true;
      } catch (e) {
        if (isConflict(e)) return false;
        throw e;
      }
    }
    const holder = String(lease.spec?.holderIdentity ?? "");
    const renewTime = lease.spec?.renewTime as string | undefined;
    if (!this.#observed || this.#observed.renewTime !== renewTime || this.#observed.holder !== holder) {
      this.#observed = { holder, resourceVersion: lease.metadata.resourceVersion, renewTime, at: now };
    }
    const durationMs = Number(lease.spec?.leaseDurationSeconds ?? 15) * 1000;
    const expired = holder === "" || now > this.#observed.at + durationMs;
    if (holder !== identity && !expired) return false;
    this.#transitions = Number(lease.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    const acquireTime = holder === identity ? String(lease.spec?.acquireTime ?? microTime(now)) : microTime(now);
    try {
      const updated = await client.request<KubeObject>("PUT", this.#path(), { ...lease, spec: spec(acquireTime, this.#transitions) });
      this.#observed = { holder: identity, resourceVersion: updated.metadata.resourceVersion, renewTime: updated.spec?.renewTime as string, at: now };
      return true;
    } catch (err) {
      // Someone else wrote first (their renewal or their takeover): they win this round.
      if (isConflict(err)) return false;
      throw err;
    }
  }
}
