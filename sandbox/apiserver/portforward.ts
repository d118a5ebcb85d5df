// port-forward, server side: the WebSocket channel protocol (@kubernetes/client-node) and SPDY/3.1 streams (kubectl), plain or tunnelled in a WebSocket.
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import { type SpdyStream, headerOf, spdyServer } from "./spdy.ts";
import { WebSocketChannels } from "./ws-channels.ts";

/** kubectl 1.31+ (KEP-4006): SPDY frames carried in binary WebSocket messages, this subprotocol negotiated. */
export const SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io";

/**
 * The kubelet's WebSocket port-forward protocols. Per requested port i, channel 2i carries data both ways and
 * channel 2i+1 errors from the server; the first message the server sends on each carries the port (uint16, little
 * endian). "portforward.k8s.io" (the SPDY protocol's name, which some clients offer here too) is taken as binary.
 */
export const WEBSOCKET_PORT_FORWARD_PROTOCOLS = [
  "v4.channel.k8s.io",
  "v4.base64.channel.k8s.io",
  "portforward.k8s.io",
  "channel.k8s.io",
  "base64.channel.k8s.io",
];

/** kubelet's streamCreationTimeout: how long the second stream of a pair may take to arrive. */
const STREAM_PAIR_TIMEOUT_MS = 30_000;

export type Dial = (port: number) => Promise<Duplex>;
export type Describe = (port: number, err: unknown) => string;
export interface Closer {
  close(): void;
}

/** The WebSocket protocol: one connection to each requested port, for as long as the WebSocket lasts. */
export function serveWebSocketPortForward(ws: WebSocket, protocol: string, ports: number[], dial: Dial, describe: Describe, log: Logger | undefined): Closer {
  const channels = new WebSocketChannels(ws, protocol);
  const send = (channel: number, data: Buffer) => channels.send(channel, data);
  const conns = ports.map(() => ({ socket: undefined as Duplex | undefined, pending: [] as Buffer[], done: false }));
  let remaining = ports.length;
  let closed = false;
  const finish = (i: number) => {
    const c = conns[i]!;
    if (c.done) return;
    c.done = true;
    // As the kubelet: the WebSocket closes once every port's forwarding has ended.
    if (--remaining === 0 && ws.readyState === ws.OPEN) ws.close(1000);
  };

  ports.forEach((port, i) => {
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16LE(port);
    send(2 * i, prefix);
    send(2 * i + 1, prefix);
    const c = conns[i]!;
    dial(port).then(
      (socket) => {
        if (closed) return void socket.destroy();
        c.socket = socket;
        for (const b of c.pending.splice(0)) socket.write(b);
        socket.on("data", (chunk: Buffer) => {
          send(2 * i, chunk);
          channels.throttle(socket);
        });
        socket.on("error", (err) => {
          send(2 * i + 1, Buffer.from(describe(port, err)));
          finish(i);
        });
        socket.once("end", () => finish(i));
        socket.once("close", () => finish(i));
      },
      (err: unknown) => {
        send(2 * i + 1, Buffer.from(describe(port, err)));
        finish(i);
      },
    );
  });

  ws.on("message", (raw) => {
    const message = channels.decode(raw);
    if (!message) return;
    const { channel, payload } = message;
    // Only data channels are the client's to write; anything else is ignored, as by the kubelet.
    if (channel % 2 !== 0 || channel / 2 >= conns.length) return;
    const c = conns[channel / 2]!;
    if (c.done || payload.length === 0) return;
    if (c.socket) c.socket.write(payload);
    else c.pending.push(payload);
  });
  ws.on("error", (err) => log?.debug({ err: String(err) }, "port-forward connection error"));
  const close = () => {
    closed = true;
    for (const c of conns) c.socket?.destroy();
  };
  ws.once("close", close);
  return { close: () => ws.terminate() };
}

// ---- SPDY ------------------------------------------------------------------------------------------------------

/**
 * The SPDY protocol (portforward.k8s.io) on `transport`: per forwarded connection the client opens an error stream
 * and a data stream with the same requestID; once both are there, the data stream is joined to a new connection to
 * the stream's port, and the error stream carries what went wrong, if anything, before it closes.
 */
export function serveSpdyPortForward(transport: Duplex, dial: Dial, describe: Describe, log: Logger | undefined): Closer {
  const conn = spdyServer(transport);
  const pairs = new Map<string, { data?: SpdyStream; error?: SpdyStream; timer: NodeJS.Timeout }>();
  const sockets = new Set<Duplex>();

  conn.on("stream", (stream) => {
    // Resets and aborted writes surface as errors; each stream's end is handled through close.
    stream.on("error", (err) => log?.debug({ stream: stream.id, err: String(err) }, "port-forward stream error"));
    stream.respond(200, {});
    const type = headerOf(stream, "streamtype");
    if (type !== "data" && type !== "error") {
      log?.debug({ stream: stream.id, type }, "refusing a port-forward stream of unknown type");
      stream.abort("PROTOCOL_ERROR");
      return;
    }
    // Clients before requestID sent the error stream, then the data stream, with consecutive ids.
    const requestId = headerOf(stream, "requestid") ?? String(type === "error" ? stream.id : stream.id - 2);
    let pair = pairs.get(requestId);
    if (!pair) {
      pair = {
        timer: setTimeout(() => {
          pairs.delete(requestId);
          const port = Number(headerOf(stream, "port"));
          if (pair?.error) pair.error.end(describe(port, new Error("timed out waiting for the data stream")));
          pair?.data?.end();
        }, STREAM_PAIR_TIMEOUT_MS),
      };
      pair.timer.unref();
      pairs.set(requestId, pair);
    }
    if (pair[type]) {
      log?.debug({ requestId, type }, "refusing a second port-forward stream of one type for one request");
      stream.abort("PROTOCOL_ERROR");
      return;
    }
    pair[type] = stream;
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      pairs.delete(requestId);
      forward(pair.data, pair.error);
    }
  });

  const forward = (data: SpdyStream, error: SpdyStream) => {
    const portText = headerOf(data, "port") ?? "";
    const port = Number(portText);
    const fail = (err: unknown) => {
      if (!error.writableEnded) error.end(describe(port, err));
      if (!data.writableEnded) data.end();
    };
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) return fail(new Error(`invalid port "${portText}"`));
    // The client only reads the error stream: whatever it sends there is dropped, and its end is no signal.
    error.resume();
    dial(port).then(
      (socket) => {
        sockets.add(socket);
        socket.on("error", (err) => {
          if (!error.writableEnded) error.write(describe(port, err));
        });
        socket.once("close", () => {
          sockets.delete(socket);
          if (!data.writableEnded) data.end();
          if (!error.writableEnded) error.end();
        });
        // Half-closes travel both ways: the client's FIN ends the pod connection's input, the pod's end sends FIN.
        socket.pipe(data);
        data.pipe(socket);
        // A reset (kubectl resets the data stream when it is done with it) tears the pod connection down.
        data.once("close", () => socket.destroy());
      },
      (err: unknown) => fail(err),
    );
  };

  const destroyAll = () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    for (const p of pairs.values()) clearTimeout(p.timer);
    pairs.clear();
  };
  conn.on("error", (err) => {
    log?.debug({ err: String(err) }, "port-forward SPDY connection failed");
    transport.destroy();
  });
  transport.on("error", (err) => log?.debug({ err: String(err) }, "port-forward transport error"));
  transport.once("close", destroyAll);
  return {
    close: () => {
      conn.destroyStreams();
      transport.destroy();
      destroyAll();
    },
  };
}
