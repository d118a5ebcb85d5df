// Event retention: Events expire a while after their last write (kube-apiserver's --event-ttl) and are bounded in number.
import type { ObjectStore, StoreEvent, Watcher } from "./store.ts";

export const EVENTS_RESOURCE = "v1/events";

export interface EventRetentionOptions {
  /** kube-apiserver's --event-ttl: 1 hour by default. */
  ttlMs: number;
  /** At most this many Events are kept; past it the least recently written go first. */
  maxEvents: number;
}

/**
 * Keeps the Events of `store` within their TTL and the size bound. The real API server stores each Event with an
 * etcd lease of the TTL, renewed on every write; here the store's own change feed tells when each was last written,
 * and expired ones are removed (watchers see DELETED, as with an etcd lease expiring).
 */
export class EventRetention {
  readonly #store: ObjectStore;
  readonly #opts: EventRetentionOptions;
  /** "<namespace>/<name>" -> time of the last write, oldest first (a write moves the key to the end). */
  readonly #written = new Map<string, number>();
  readonly #watcher: Watcher;
  readonly #timer: NodeJS.Timeout;
  #sweepQueued = false;

  constructor(store: ObjectStore, opts: EventRetentionOptions) {
    this.#store = store;
    this.#opts = opts;
    this.#watcher = {
      resource: EVENTS_RESOURCE,
      matches: () => true,
      deliver: (type, event) => this.#observe(type, event),
    };
    store.watch(this.#watcher, store.resourceVersion);
    // Often enough that an Event outlives its TTL by a small fraction of it at most.
    this.#timer = setInterval(() => this.sweep(), Math.max(100, Math.min(60_000, opts.ttlMs / 10)));
    this.#timer.unref();
  }

  #observe(type: string, event: StoreEvent): void {
    const key = `${event.object.metadata.namespace ?? ""}/${event.object.metadata.name ?? ""}`;
    this.#written.delete(key);
    if (type === "DELETED") return;
    this.#written.set(key, Date.now());
    // Removing from inside the store's change feed would re-enter it: the bound is enforced right after.
    if (this.#written.size > this.#opts.maxEvents && !this.#sweepQueued) {
      this.#sweepQueued = true;
      setImmediate(() => this.sweep());
    }
  }

  /** Removes the Events past their TTL and the oldest ones beyond the bound. */
  sweep(nowMs = Date.now()): void {
    this.#sweepQueued = false;
    for (const [key, at] of [...this.#written]) {
      const expired = nowMs - at >= this.#opts.ttlMs;
      if (!expired && this.#written.size <= this.#opts.maxEvents) break;
      const slash = key.indexOf("/");
      const obj = this.#store.get(EVENTS_RESOURCE, key.slice(0, slash), key.slice(slash + 1));
      this.#written.delete(key);
      if (obj) this.#store.remove(EVENTS_RESOURCE, obj);
    }
  }

  get size(): number {
    return this.#written.size;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#store.unwatch(this.#watcher);
  }
}
