// Gives memory back after a burst: once the agent has been idle for a whole interval and its RSS has grown well past what it held after its last release.
import { performance } from "node:perf_hooks";

/** One look at the process: how busy its event loop was since the previous look (0-1), and its resident memory. */
export interface MemorySample {
  utilization: number;
  rssBytes: number;
}

/** Why memory was released: asked for once (after start-up), or found idle after a burst. */
export type ReleaseReason = "asked" | "idle";

export interface IdleMemoryOptions {
  /** Gives unused memory back (a full collection and a C heap trim: a pause of tens of milliseconds). */
  release(): void;
  /** Told what a release gave back, and why it ran. */
  onRelease?(beforeBytes: number, afterBytes: number, reason: ReleaseReason): void;
  /** The process's event-loop utilization since the previous call and its RSS; the real process's by default. */
  sample?(): MemorySample;
  /** Below this event-loop utilization over a whole interval the agent counts as idle (default 0.02). */
  idleUtilization?: number;
  /** How far RSS must have grown since the last release for another to be worth its pause (default 32 MiB). */
  growthBytes?: number;
  /** How often to look (default 30 s). */
  intervalMs?: number;
  /** The RSS growth is measured from until the first release (default: the process's RSS now). */
  baselineBytes?: number;
}

/**
 * After a burst (bulk transfers, thousands of connections) the agent keeps what it allocated mapped: freed C heap
 * that glibc does not return, and a V8 heap sized for the burst. On the bench sandbox an agent went from 78 to about
 * 260 MiB of RSS over a run and stayed there; a full collection and trim gave back all but ~90 MiB. This does that on
 * its own, only when the agent has been idle for a whole interval (the pause then delays no one) and only once per
 * growth: a busy agent is never paused, an idle one is not paused again until it has grown again.
 */
export class IdleMemoryReleaser {
  readonly #opts: Required<Omit<IdleMemoryOptions, "onRelease" | "baselineBytes">> & Pick<IdleMemoryOptions, "onRelease">;
  /** RSS right after the last release (or at start): growth is measured from here. */
  #baselineBytes: number;

  constructor(opts: IdleMemoryOptions) {
    const { baselineBytes, ...rest } = opts;
    this.#opts = { sample: processSampler(), idleUtilization: 0.02, growthBytes: 32 * 1024 * 1024, intervalMs: 30_000, ...rest };
    this.#baselineBytes = baselineBytes ?? process.memoryUsage.rss();
  }

  /** Releases now, whatever the load (e.g. once after start-up), and measures later growth from what is left. */
  releaseNow(reason: ReleaseReason = "asked"): void {
    const before = this.#opts.sample().rssBytes;
    this.#release(before, reason);
  }

  /** Takes a sample and releases if the agent was idle and has grown; returns whether it released. */
  check(): boolean {
    const { utilization, rssBytes } = this.#opts.sample();
    // Memory given back by other means (the kernel, a release on the admin API) lowers the mark.
    if (rssBytes < this.#baselineBytes) this.#baselineBytes = rssBytes;
    if (utilization >= this.#opts.idleUtilization || rssBytes - this.#baselineBytes < this.#opts.growthBytes) return false;
    this.#release(rssBytes, "idle");
    return true;
  }

  #release(beforeBytes: number, reason: ReleaseReason): void {
    this.#opts.release();
    this.#baselineBytes = this.#opts.sample().rssBytes;
    this.#opts.onRelease?.(beforeBytes, this.#baselineBytes, reason);
  }

  /** Looks every interval until the returned function is called; the timer does not keep the process alive. */
  start(): () => void {
    const timer = setInterval(() => this.check(), this.#opts.intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

/** The real process: event-loop utilization since the previous sample (Node's own measure), and RSS. */
function processSampler(): () => MemorySample {
  let previous = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, previous).utilization;
    previous = now;
    return { utilization, rssBytes: process.memoryUsage.rss() };
  };
}
