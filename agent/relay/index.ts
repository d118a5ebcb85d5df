// Relays bytes both ways between two duplex streams (sockets, HBONE streams): backpressure, half-close, aborts, counts.
import type { Duplex } from "node:stream";

/** Live byte counts of a relay; `error` is the first failure either side reported. */
export interface RelayCounts {
  aToB: number;
  bToA: number;
  error?: string;
}

/** The relay a stream belongs to, kept on the stream so the listeners below can be shared by every relay. */
const RELAY = Symbol("ambit.relay");
type Side = Duplex & { [RELAY]?: Relay };

/** One relay's state; it is also the live counts the caller reads (`onDone` gets a plain copy of the final ones). */
class Relay implements RelayCounts {
  aToB = 0;
  bToA = 0;
  error?: string;
  readonly a: Side;
  readonly b: Side;
  readonly onDone: (counts: RelayCounts) => void;
  #closed = 0;

  constructor(a: Side, b: Side, onDone: (counts: RelayCounts) => void) {
    this.a = a;
    this.b = b;
    this.onDone = onDone;
  }

  peerOf(side: Duplex): Duplex {
    return side === this.a ? this.b : this.a;
  }

  sideClosed(side: Duplex): void {
    const other = this.peerOf(side);
    if (!other.destroyed && !(side.readableEnded && side.writableFinished)) other.destroy();
    if (++this.#closed === 2) this.onDone({ aToB: this.aToB, bToA: this.bToA, ...(this.error === undefined ? {} : { error: this.error }) });
  }
}

// Listeners run with `this` set to the stream that emitted (EventEmitter's contract), so one function serves
// every relay: no closure or context per connection.
function onData(this: Side, chunk: Buffer): void {
  const r = this[RELAY]!;
  if (this === r.a) r.aToB += chunk.length;
  else r.bToA += chunk.length;
  if (!r.peerOf(this).write(chunk)) this.pause();
}
function onDrain(this: Side): void {
  this[RELAY]!.peerOf(this).resume();
}
function onEnd(this: Side): void {
  this[RELAY]!.peerOf(this).end();
}
function onError(this: Side, err: Error): void {
  const r = this[RELAY]!;
  r.error ??= err.message;
  r.peerOf(this).destroy();
}
function onClose(this: Side): void {
  this[RELAY]!.sideClosed(this);
}

/**
 * Starts relaying between `a` and `b` and returns the live counts; `onDone` runs once, after both have closed.
 *
 * Written out instead of `a.pipe(b); b.pipe(a)`: two pipes cost a context, nine closures and two once-wrappers
 * each, for every connection the agent carries, and byte counting needed two more `data` listeners on top. Here
 * a connection costs one small object and a property on each stream; the listeners are shared by all relays
 * (bench/dataplane-l4.ts measures memory per held connection).
 *
 * - Backpressure: a side whose peer's buffer is full is paused until the peer drains.
 * - Half-close: the end of one side's data ends the other's writing side (FIN, or END_STREAM for HTTP/2), and
 *   the other direction keeps flowing.
 * - Abort: a side that closes without having both ended its data and finished writing (reset, RST_STREAM,
 *   destroy) destroys the other, so no half of a broken connection is left open.
 */
export function relay(a: Duplex, b: Duplex, onDone: (counts: RelayCounts) => void): RelayCounts {
  const r = new Relay(a, b, onDone);
  for (const side of [a, b] as Side[]) {
    side[RELAY] = r;
    side.on("data", onData);
    side.on("drain", onDrain);
    side.on("end", onEnd);
    side.on("error", onError);
    // A side that closed before the relay began will not emit "close" again.
    if (side.closed) queueMicrotask(() => r.sideClosed(side));
    else side.on("close", onClose);
  }
  // A side paused by its owner until now (captured sockets wait for the upstream) starts flowing here.
  a.resume();
  b.resume();
  return r;
}

/** `relay` as a promise of the final counts. */
export const relayed = (a: Duplex, b: Duplex): Promise<RelayCounts> => new Promise((resolve) => relay(a, b, resolve));
