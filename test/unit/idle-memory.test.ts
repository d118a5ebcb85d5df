// The agent's memory release after a burst: only when idle for a whole interval, only once per growth.
import { describe, expect, it } from "vitest";
import { IdleMemoryReleaser, type MemorySample } from "../../agent/lifecycle/index.ts";

const MiB = 1024 * 1024;

/** A releaser over scripted samples; a release brings RSS down to `floor`. */
function scripted(samples: MemorySample[], floor = 90 * MiB) {
  let rss = 0;
  /** The look right after a release reads the RSS it left (the releaser's "after"), not the next scripted sample. */
  let justReleased = false;
  const queue = [...samples];
  const releases: Array<[number, number]> = [];
  const reasons: string[] = [];
  const releaser = new IdleMemoryReleaser({
    sample: () => {
      if (justReleased) {
        justReleased = false;
        return { utilization: 0, rssBytes: rss };
      }
      const next = queue.shift();
      if (next) rss = next.rssBytes;
      return { utilization: next?.utilization ?? 0, rssBytes: rss };
    },
    release: () => {
      rss = floor;
      justReleased = true;
    },
    onRelease: (before, after, reason) => {
      releases.push([before / MiB, after / MiB]);
      reasons.push(reason);
    },
    baselineBytes: 80 * MiB,
  });
  return { releaser, releases, reasons };
}

describe("IdleMemoryReleaser", () => {
  it("does not pause a busy agent, however much it has grown", () => {
    const { releaser, releases } = scripted([
      { utilization: 0.4, rssBytes: 260 * MiB },
      { utilization: 0.05, rssBytes: 270 * MiB },
    ]);
    expect([releaser.check(), releaser.check()]).toEqual([false, false]);
    expect(releases).toEqual([]);
  });

  it("releases once the agent is idle after a burst, and not again until it has grown again", () => {
    const { releaser, releases } = scripted([
      { utilization: 0.3, rssBytes: 260 * MiB }, // the burst
      { utilization: 0.001, rssBytes: 260 * MiB }, // idle: release, down to 90
      { utilization: 0.001, rssBytes: 95 * MiB }, // still idle, grown 5 MiB: not worth a pause
      { utilization: 0.001, rssBytes: 130 * MiB }, // grown 40 MiB since the release: again
    ]);
    expect([releaser.check(), releaser.check()]).toEqual([false, true]);
    expect(releases).toEqual([[260, 90]]);
    expect(releaser.check()).toBe(false);
    expect(releaser.check()).toBe(true);
    expect(releases).toEqual([
      [260, 90],
      [130, 90],
    ]);
  });

  it("releases when asked whatever the load, and measures later growth from what it left", () => {
    const { releaser, releases, reasons } = scripted([
      { utilization: 0.5, rssBytes: 150 * MiB }, // start-up, busy: released anyway, down to 90
      { utilization: 0, rssBytes: 115 * MiB }, // idle, +25 over 90: not yet
      { utilization: 0, rssBytes: 125 * MiB }, // +35 over 90: again
    ]);
    releaser.releaseNow();
    expect([releaser.check(), releaser.check()]).toEqual([false, true]);
    expect(releases).toEqual([
      [150, 90],
      [125, 90],
    ]);
    expect(reasons).toEqual(["asked", "idle"]);
  });

  it("does not release for growth below the threshold, and takes a lower RSS as the new mark", () => {
    const { releaser, releases } = scripted([
      { utilization: 0, rssBytes: 100 * MiB }, // +20 MiB over 80: below 32
      { utilization: 0, rssBytes: 60 * MiB }, // the kernel took some back: the mark is 60 now
      { utilization: 0, rssBytes: 95 * MiB }, // +35 over 60: release
    ]);
    expect([releaser.check(), releaser.check(), releaser.check()]).toEqual([false, false, true]);
    expect(releases).toEqual([[95, 90]]);
  });

  it("samples the real process by default and never keeps it alive", () => {
    let released = 0;
    const releaser = new IdleMemoryReleaser({ release: () => released++, growthBytes: Number.MAX_SAFE_INTEGER, intervalMs: 10 });
    expect(releaser.check()).toBe(false);
    const stop = releaser.start();
    stop();
    expect(released).toBe(0);
  });
});
