// The channel framing of Kubernetes' WebSocket stream protocols (channel.k8s.io, base64.channel.k8s.io), with backpressure: exec/attach and port-forward share it.
import type { Readable } from "node:stream";
import type { RawData, WebSocket } from "ws";

/** Data waiting in the WebSocket beyond this pauses its sources until the client has read half of it. */
const HIGH_WATER_BYTES = 1024 * 1024;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** One WebSocket speaking the channel protocol: a channel byte (or its ASCII digit, base64 flavour) before each frame. */
export class WebSocketChannels {
  readonly #ws: WebSocket;
  readonly #base64: boolean;
  #inFlight = 0;
  readonly #paused = new Set<Readable>();

  constructor(ws: WebSocket, protocol: string) {
    this.#ws = ws;
    this.#base64 = protocol.includes("base64");
  }

  /** Sends `data` on `channel`; nothing once the WebSocket is no longer open. */
  send(channel: number, data: Buffer): void {
    const ws = this.#ws;
    if (ws.readyState !== ws.OPEN) return;
    this.#inFlight += data.length;
    const frame = this.#base64 ? String.fromCharCode(48 + channel) + data.toString("base64") : Buffer.concat([Buffer.of(channel), data]);
    ws.send(frame, { binary: !this.#base64 }, () => {
      this.#inFlight -= data.length;
      if (this.#inFlight < HIGH_WATER_BYTES / 2) this.resumeAll();
    });
  }

  /** Called after sending a chunk read from `source`: pauses it while too much is waiting in the WebSocket. */
  throttle(source: Readable): void {
    if (this.#inFlight > HIGH_WATER_BYTES && this.#ws.readyState === this.#ws.OPEN) {
      source.pause();
      this.#paused.add(source);
    }
  }

  /** Resumes every paused source (the WebSocket drained, or nothing will read it any more). */
  resumeAll(): void {
    for (const s of this.#paused) s.resume();
    this.#paused.clear();
  }

  /** A client message's channel and payload; undefined for an empty message. */
  decode(raw: RawData): { channel: number; payload: Buffer } | undefined {
    const buf = toBuffer(raw);
    if (buf.length === 0) return undefined;
    if (!this.#base64) return { channel: buf[0]!, payload: buf.subarray(1) };
    return { channel: buf[0]! - 48, payload: Buffer.from(buf.subarray(1).toString("latin1"), "base64") };
  }
}
