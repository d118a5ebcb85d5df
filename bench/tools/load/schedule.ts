// The open-loop schedule: request i is due at start + i / rate, whatever happened to the requests before it.
import { Samples } from "./stats.ts";

/**
 * A request is released at most this long before it is due. Node's timers fire on a millisecond clock, up to about a
 * millisecond late; waking one millisecond early and releasing what is due within it keeps that lateness out of
 * the latencies of an unloaded run. An early request's latency counts from its release (when it really went),
 * a late one's from its due time.
 */
export const EARLY_MS = 1;

/** When request `index` is due: `start` plus index / rate seconds, in milliseconds of `performance.now()`. */
export const dueTime = (start: number, index: number, rate: number): number => start + (index * 1000) / rate;

/** One request the schedule released. */
export interface Released {
  index: number;
  /** When it was due. */
  due: number;
  /** What its latency counts from: its due time, or its release when released early (never later than due). */
  intended: number;
}

export interface ScheduleOptions {
  rate: number;
  count: number;
  /** The clock (milliseconds); `performance.now` unless a test drives it. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** The schedule's time zero (default: now). */
  start?: number;
  /** Stops releasing when it returns true (the run is being abandoned). */
  stopped?: () => boolean;
}

export interface ScheduleResult {
  start: number;
  released: number;
  /** How late each request was released after its due time (0 when on time or early): the generator's own lag. */
  lateness: Samples;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Releases requests 0 .. count-1 on schedule, calling `release` synchronously for each. Requests that fell due while
 * the process was busy are all released as soon as it is free again, each still counted from its own due time: the
 * schedule never waits for answers and never drops a request, so a stall anywhere shows in the latencies.
 */
export async function runSchedule(options: ScheduleOptions, release: (r: Released) => void): Promise<ScheduleResult> {
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? defaultSleep;
  const start = options.start ?? now();
  const lateness = new Samples();
  let index = 0;
  while (index < options.count && !options.stopped?.()) {
    const t = now();
    while (index < options.count) {
      const due = dueTime(start, index, options.rate);
      if (due > t + EARLY_MS) break;
      lateness.add(Math.max(0, t - due));
      release({ index, due, intended: Math.min(due, t) });
      index++;
    }
    if (index >= options.count) break;
    await sleep(Math.max(0, dueTime(start, index, options.rate) - EARLY_MS - now()));
  }
  return { start, released: index, lateness };
}

/** A FIFO queue with O(1) shift. */
export class Fifo<T> {
  #items: Array<T | undefined> = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  drain(): T[] {
    const rest = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return rest;
  }
}
