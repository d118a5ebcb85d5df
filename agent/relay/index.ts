// Relays bytes both ways between two duplex streams (sockets, HBONE streams): backpressure, half-close, aborts, counts.
import type { Duplex } from "node:stream";

/** Live byte counts of a relay; `error` is the first failure either side reported. */
export interface RelayCounts {
  aToB: number;
  bToA: number;
  error?: string;
}

/**
 * Starts relaying between `a` and `b` and returns the live counts; `onDone` runs once, after both have closed.
 *
 * Written out instead of `a.pipe(b); b.pipe(a)`: two pipes cost a context, nine closures and two once-wrappers
 * each, for every connection the agent carries, and byte counting needed two more `data` listeners on top. Here
 * one context and ten small closures do it all (bench/dataplane-l4.ts measures memory per held connection).
 *
 * - Backpressure: a side whose peer's buffer is full is paused until the peer drains.
 * - Half-close: the end of one side's data ends the other's writing side (FIN, or END_STREAM for HTTP/2), and
 *   the other direction keeps flowing.
 * - Abort: a side that closes without having both ended its data and finished writing (reset, RST_STREAM,
 *   destroy) destroys the other, so no half of a broken connection is left open.
 */
export function relay(a: Duplex, b: Duplex, onDone: (counts: RelayCounts) => void): RelayCounts {
  const counts: RelayCounts = { aToB: 0, bToA: 0 };
  let closed = 0;
  const closeOf = (side: Duplex, other: Duplex) => () => {
    if (!other.destroyed && !(side.readableEnded && side.writableFinished)) other.destroy();
    if (++closed === 2) onDone(counts);
  };
  const failOf = (other: Duplex) => (err: Error) => {
    counts.error ??= err.message;
    other.destroy();
  };
  a.on("data", (chunk: Buffer) => {
    counts.aToB += chunk.length;
    if (!b.write(chunk)) a.pause();
  });
  b.on("data", (chunk: Buffer) => {
    counts.bToA += chunk.length;
    if (!a.write(chunk)) b.pause();
  });
  b.on("drain", () => a.resume());
  a.on("drain", () => b.resume());
  a.on("end", () => b.end());
  b.on("end", () => a.end());
  a.on("error", failOf(b));
  b.on("error", failOf(a));
  // A side that closed before the relay began will not emit "close" again.
  for (const [side, other] of [[a, b], [b, a]] as const) {
    if (side.closed) queueMicrotask(closeOf(side, other));
    else side.on("close", closeOf(side, other));
  }
  // A side paused by its owner until now (captured sockets wait for the upstream) starts flowing here.
  a.resume();
  b.resume();
  return counts;
}

/** `relay` as a promise of the final counts. */
export const relayed = (a: Duplex, b: Duplex): Promise<RelayCounts> => new Promise((resolve) => relay(a, b, resolve));
