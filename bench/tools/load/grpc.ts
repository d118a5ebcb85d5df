// gRPC unary over node:http2 without a gRPC library: length-prefixed messages, `te: trailers`, grpc-status in the trailers. The open-loop client and the bench server.
import http2 from "node:http2";
import type net from "node:net";
import { Accounting, type OpenLoopReport, type RunResult, openLoopReport } from "./open-loop.ts";
import { type Released, runSchedule } from "./schedule.ts";
import { Tally } from "./stats.ts";

/** The method the load calls; the bench server answers any path. */
export const GRPC_PATH = "/ambit.bench.Bench/Unary";

/**
 * A protobuf message of exactly `size` bytes (0 or >= 2): field 1 (bytes) holding filler, so it is what a real service
 * would send. Where no single field fits (its length's varint growing a byte), an empty field 2 pads it.
 */
export function protoBytesMessage(size: number): Buffer {
  if (size === 0) return Buffer.alloc(0);
  if (size < 2 || !Number.isSafeInteger(size)) throw new Error(`no protobuf message of ${size} bytes`);
  for (let lengthBytes = 1; lengthBytes <= 5; lengthBytes++) {
    const payload = size - 1 - lengthBytes;
    if (payload >= 0 && varintLength(payload) === lengthBytes) {
      const out = Buffer.alloc(size, "a");
      out[0] = 0x0a;
      let v = payload;
      let at = 1;
      while (v >= 0x80) {
        out[at++] = (v & 0x7f) | 0x80;
        v = Math.floor(v / 128);
      }
      out[at] = v;
      return out;
    }
  }
  return Buffer.concat([protoBytesMessage(size - 2), Buffer.from([0x12, 0x00])]);
}

const varintLength = (v: number): number => {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
};

/** One gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, the message. */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/** The lengths of the complete messages in a gRPC body, and the bytes left over after the last complete one. */
export function grpcMessageLengths(body: Buffer): { lengths: number[]; rest: number } {
  const lengths: number[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) break;
    lengths.push(length);
    at += 5 + length;
  }
  return { lengths, rest: body.length - at };
}

export interface GrpcOptions {
  host: string;
  port: number;
  rate: number;
  seconds: number;
  /** HTTP/2 connections; calls go round-robin over them, any number in flight on each. */
  connections: number;
  /** Size of the request message in bytes (default 64). */
  requestBytes?: number;
  path?: string;
  /** The :authority (default host:port). */
  authority?: string;
  /** A call unanswered this long fails (`timeout`); also how long the run waits for stragglers. Default 10,000. */
  timeoutMs?: number;
}

export type GrpcReport = OpenLoopReport & {
  connections: number;
  requestBytes: number;
  /** Calls sent, by grpc-status (`none` when the answer carried none); calls with no connection to go on are only in errorKinds. */
  grpcStatuses: Record<string, number>;
  /** Mean size of a successful call's response message(s), in bytes. */
  responseMessageBytes: number;
};

/**
 * Open loop of gRPC unary calls: round(rate * seconds) calls at fixed intervals over `connections` HTTP/2 connections.
 * A call succeeds with HTTP 200 and grpc-status 0; its latency counts from its intended send time to the trailers.
 */
export async function runGrpc(o: GrpcOptions): Promise<RunResult<GrpcReport>> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const requestBytes = o.requestBytes ?? 64;
  const frame = grpcFrame(protoBytesMessage(requestBytes));
  const headers = {
    ":method": "POST",
    ":path": o.path ?? GRPC_PATH,
    ":authority": o.authority ?? `${o.host}:${o.port}`,
    "content-type": "application/grpc",
    te: "trailers",
  };
  const acct = new Accounting();
  const statuses = new Tally();
  let responseBytes = 0;
  const n = Math.max(1, o.connections);
  const sessions: Array<http2.ClientHttp2Session | undefined> = new Array(n);
  let active = true;
  const timers = new Set<NodeJS.Timeout>();

  const connect = (slot: number): Promise<void> =>
    new Promise((resolve) => {
      const s = http2.connect(`http://${o.host}:${o.port}`);
      sessions[slot] = s;
      let connected = false;
      s.once("connect", () => {
        connected = true;
        resolve();
      });
      s.on("error", () => undefined);
      s.once("close", () => {
        resolve();
        if (sessions[slot] === s) sessions[slot] = undefined;
        if (!active) return;
        const t = setTimeout(
          () => {
            timers.delete(t);
            if (active) void connect(slot);
          },
          connected ? 0 : 100,
        );
        timers.add(t);
      });
    });
  let openTimer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(Array.from({ length: n }, (_, i) => connect(i))), new Promise((resolve) => (openTimer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(openTimer);

  let next = 0;
  const release = (job: Released) => {
    let session: http2.ClientHttp2Session | undefined;
    for (let k = 0; k < n && !session; k++) {
      const s = sessions[(next + k) % n];
      if (s && !s.closed && !s.destroyed && !s.connecting) session = s;
    }
    next = (next + 1) % n;
    if (!session) return acct.failure("no connection", performance.now());
    const sentAt = performance.now();
    let status = 0;
    let grpcStatus: string | undefined;
    const chunks: Buffer[] = [];
    let finished = false;
    const stream = session.request(headers);
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      const at = performance.now();
      statuses.add(grpcStatus ?? "none");
      if (error) return acct.failure(error, at);
      if (status !== 200) return acct.failure(`HTTP ${status}`, at);
      if (grpcStatus !== "0") return acct.failure(`grpc-status ${grpcStatus ?? "none"}`, at);
      const { lengths } = grpcMessageLengths(Buffer.concat(chunks));
      responseBytes += lengths.reduce((a, b) => a + b, 0);
      acct.success(job, sentAt, at);
    };
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      // A trailers-only answer (an error, usually) carries grpc-status in its headers.
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) grpcStatus = String(t["grpc-status"]);
    });
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("end", () => finish());
    stream.on("error", (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    stream.on("close", () => finish(stream.rstCode ? `rst ${stream.rstCode}` : "closed"));
    stream.setTimeout(timeoutMs, () => {
      finish("timeout");
      stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.end(frame);
  };

  try {
    const schedule = await runSchedule({ rate: o.rate, count: Math.round(o.rate * o.seconds) }, release);
    await acct.settle(schedule.released, performance.now() + timeoutMs);
    const result = openLoopReport("grpc", o.rate, schedule, acct);
    const report: GrpcReport = {
      ...result.report,
      connections: n,
      requestBytes,
      grpcStatuses: statuses.counts,
      responseMessageBytes: acct.ok ? Math.round(responseBytes / acct.ok) : 0,
    };
    return { ...result, report };
  } finally {
    active = false;
    for (const t of timers) clearTimeout(t);
    for (const s of sessions) s?.destroy();
  }
}

export interface BenchGrpcServer {
  server: http2.Http2Server;
  port: number;
  close(): Promise<void>;
}

/**
 * The gRPC bench server: answers every unary call (any path, content-type application/grpc) with one message of
 * `bodyBytes` (a protobuf bytes field, 1 KiB by default) and grpc-status 0, once the request has been read.
 */
export async function startGrpcServer(o: { port?: number; host?: string; bodyBytes?: number } = {}): Promise<BenchGrpcServer> {
  const answer = grpcFrame(protoBytesMessage(o.bodyBytes ?? 1024));
  const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } });
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("session", (session) => session.on("error", () => undefined));
  server.on("stream", (stream, headers) => {
    stream.on("error", () => undefined);
    if (headers[":method"] !== "POST" || !String(headers["content-type"] ?? "").startsWith("application/grpc")) {
      stream.respond({ ":status": 415 }, { endStream: true });
      return;
    }
    stream.on("data", () => undefined);
    stream.on("end", () => {
      if (stream.destroyed) return;
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(answer);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, o.host ?? "127.0.0.1", () => resolve());
  });
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
