// Keyed work queue for controllers: deduplicates keys, runs one reconcile per key at a time, retries with backoff.

export interface WorkQueueOptions {
  /** First retry delay after a failed reconcile; doubles per failure up to maxRetryDelayMs. */
  baseRetryDelayMs?: number;
  maxRetryDelayMs?: number;
  onError?: (key: string, err: unknown) => void;
}

export class WorkQueue {
  readonly #reconcile: (key: string) => Promise<void>;
  readonly #pending = new Set<string>();
  readonly #running = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #opts: Required<Omit<WorkQueueOptions, "onError">> & Pick<WorkQueueOptions, "onError">;
  #stopped = false;

  constructor(reconcile: (key: string) => Promise<void>, opts: WorkQueueOptions = {}) {
    this.#reconcile = reconcile;
    this.#opts = { baseRetryDelayMs: 200, maxRetryDelayMs: 10_000, ...opts };
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#running.has(key)) {
      // Reconcile again once the current run ends: it may have read state older than this event.
      this.#dirty.add(key);
      return;
    }
    if (this.#pending.has(key)) return;
    this.#pending.add(key);
    // #run catches what reconcile throws (onError, then a retry with backoff).
    queueMicrotask(() => void this.#run(key));
  }

  addAfter(key: string, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.add(key);
    }, delayMs);
    this.#timers.add(timer);
  }

  async #run(key: string): Promise<void> {
    this.#pending.delete(key);
    if (this.#stopped) return;
    this.#running.add(key);
    try {
      await this.#reconcile(key);
      this.#failures.delete(key);
    } catch (err) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      this.#opts.onError?.(key, err);
      const delay = Math.min(this.#opts.baseRetryDelayMs * 2 ** (failures - 1), this.#opts.maxRetryDelayMs);
      this.addAfter(key, delay);
    } finally {
      this.#running.delete(key);
      if (this.#dirty.delete(key)) this.add(key);
    }
  }

  /** True while any key is queued or running (used by shutdown to wait for quiet). */
  get busy(): boolean {
    return this.#pending.size > 0 || this.#running.size > 0;
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
