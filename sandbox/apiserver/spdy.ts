// SPDY/3.1 for Kubernetes' streaming protocols, server side: spdy-transport, adapted to the spdystream clients kubectl uses.
import type { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
// A static import, so the CLI's bundle carries it (it runs where no node_modules is).
import spdyTransport from "spdy-transport";

/** The parts of spdy-transport's streams and connections this server uses, internals included. */
export interface SpdyStream extends Duplex {
  readonly id: number;
  readonly headers: Record<string, string | string[] | undefined>;
  respond(status: number, headers: Record<string, string>, callback?: (err?: Error) => void): void;
  abort(code?: string, callback?: () => void): void;
}
interface WindowSide {
  current: number;
  max: number;
  limit: number;
}
export interface SpdyConnection extends EventEmitter {
  _spdyState: {
    parser: { parseKVs(body: unknown, callback: (err: Error | null, headers?: Record<string, unknown>) => void): void };
    window: { send: WindowSide };
    streamWindow: { send: WindowSide };
  };
  _setDefaultWindow(settings: unknown): void;
  destroyStreams(err?: Error): void;
  on(event: "stream", fn: (stream: SpdyStream) => void): this;
  on(event: "error", fn: (err: Error) => void): this;
}

/**
 * A SPDY server connection on `transport`: spdy-transport made a server for Kubernetes' SPDY clients
 * (moby/spdystream), which differ from the HTTP-over-SPDY spdy-transport was written for in two ways:
 * - their SYN_STREAMs carry only Kubernetes' headers (streamType, port, requestID), none of the `:method`/`:path`
 *   pseudo-headers spdy-transport requires (it refuses such a stream as a protocol error);
 * - spdystream does no flow control: it never sends WINDOW_UPDATE, so a stream would stall after spdy-transport's
 *   first 64 KiB window. Send windows are made unlimited, as they are between two spdystream peers.
 */
export function spdyServer(transport: Duplex): SpdyConnection {
  const conn = spdyTransport.connection.create(transport, { protocol: "spdy", isServer: true, maxChunk: 32 * 1024 }) as SpdyConnection;
  const state = conn._spdyState;
  const parser = state.parser;
  const parseKVs = parser.parseKVs.bind(parser);
  parser.parseKVs = (body, callback) =>
    parseKVs(body, (err, headers) => {
      if (!err && headers) {
        headers[":method"] ??= "POST";
        headers[":path"] ??= "/";
      }
      callback(err, headers);
    });
  for (const side of [state.window.send, state.streamWindow.send]) {
    side.current = Infinity;
    side.max = Infinity;
    side.limit = Infinity;
  }
  // A SETTINGS frame would set finite stream windows again (and Infinity - Infinity is NaN).
  conn._setDefaultWindow = () => {};
  return conn;
}

export const headerOf = (stream: SpdyStream, name: string): string | undefined => {
  const v = stream.headers[name] ?? Object.entries(stream.headers).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(v) ? v[0] : v;
};
