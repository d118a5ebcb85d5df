// Bulk TCP transfer over one connection: a server that sinks or sources bytes, and a client that measures MB/s (10^6 bytes per second).
import { once } from "node:events";
import net from "node:net";
import { round } from "./stats.ts";

/**
 * The wire protocol: the client's first line says what it wants.
 * - `SEND\n`: the client sends bytes until it half-closes; the server counts them and answers `OK <bytes>\n` once it
 *   has read the last one, so the client's clock stops only when every byte has reached the server's application.
 * - `RECV <bytes>\n`: the server sends that many bytes and closes (0: until the client closes).
 */
export type BulkDirection = "send" | "receive";

export interface BenchBulkServer {
  server: net.Server;
  port: number;
  close(): Promise<void>;
}

const CHUNK = 64 * 1024;

export async function startBulkServer(o: { port?: number; host?: string; chunkBytes?: number } = {}): Promise<BenchBulkServer> {
  const chunk = Buffer.alloc(o.chunkBytes ?? CHUNK, "b");
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    let header = "";
    let received = 0;
    let state: "header" | "sink" | "source" = "header";
    const source = (total: number) => {
      let sent = 0;
      const pump = () => {
        while (!s.destroyed && (total === 0 || sent < total)) {
          const piece = total === 0 || total - sent >= chunk.length ? chunk : chunk.subarray(0, total - sent);
          sent += piece.length;
          if (!s.write(piece)) return void s.once("drain", pump);
        }
        if (!s.destroyed) s.end();
      };
      pump();
    };
    s.on("data", (data: Buffer) => {
      if (state === "sink") received += data.length;
      if (state !== "header") return;
      const nl = data.indexOf(10);
      if (nl < 0) {
        header += data.toString("latin1");
        if (header.length > 64) s.destroy();
        return;
      }
      header += data.toString("latin1", 0, nl);
      const rest = data.length - nl - 1;
      const [verb, arg] = header.trim().split(" ");
      if (verb === "SEND") {
        state = "sink";
        received = rest;
        s.once("end", () => s.end(`OK ${received}\n`));
      } else if (verb === "RECV") {
        state = "source";
        s.once("end", () => s.destroy());
        source(Number(arg ?? 0));
      } else s.destroy();
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

export interface BulkOptions {
  host: string;
  port: number;
  direction: BulkDirection;
  /** How many bytes to move (default 256 MiB), unless `seconds` is given. */
  bytes?: number;
  /** Move bytes for this long instead of a fixed amount. */
  seconds?: number;
  /** Size of each write (default 64 KiB). */
  chunkBytes?: number;
}

export interface BulkReport {
  mode: "bulk";
  direction: BulkDirection;
  /** Bytes that reached the receiving application (the server's count when sending). */
  bytes: number;
  /** From the first byte written (the connection already open) to the last byte received, in seconds. */
  durationS: number;
  /** Decimal megabytes: 10^6 bytes per second. */
  mbPerSecond: number;
  /** 2^20 bytes per second. */
  mibPerSecond: number;
  chunkBytes: number;
}

/** One connection's transfer, timed from the first byte to the last byte's arrival. */
export async function runBulk(o: BulkOptions): Promise<BulkReport> {
  const chunkBytes = o.chunkBytes ?? CHUNK;
  const chunk = Buffer.alloc(chunkBytes, "c");
  const total = o.seconds === undefined ? (o.bytes ?? 256 * 1024 * 1024) : 0;
  const socket = net.connect({ host: o.host, port: o.port, noDelay: true, allowHalfOpen: true });
  try {
    await once(socket, "connect");
    const start = performance.now();
    const deadline = o.seconds === undefined ? Infinity : start + o.seconds * 1000;
    let bytes = 0;
    let end = 0;
    if (o.direction === "send") {
      const answer = new Promise<string>((resolve, reject) => {
        let text = "";
        socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
        socket.once("end", () => resolve(text));
        socket.once("error", reject);
      });
      socket.write("SEND\n");
      let sent = 0;
      while ((total === 0 || sent < total) && performance.now() < deadline) {
        const piece = total === 0 || total - sent >= chunkBytes ? chunk : chunk.subarray(0, total - sent);
        sent += piece.length;
        if (!socket.write(piece)) await once(socket, "drain");
      }
      socket.end();
      const text = await answer;
      end = performance.now();
      const m = /^OK (\d+)/.exec(text);
      if (!m) throw new Error(`bulk server answered ${JSON.stringify(text.slice(0, 80))}`);
      bytes = Number(m[1]);
      if (bytes !== sent) throw new Error(`sent ${sent} bytes, the server read ${bytes}`);
    } else {
      const done = new Promise<void>((resolve, reject) => {
        socket.on("data", (d: Buffer) => {
          bytes += d.length;
          end = performance.now();
        });
        socket.once("end", () => resolve());
        socket.once("close", () => resolve());
        socket.once("error", reject);
      });
      socket.write(`RECV ${total}\n`);
      if (o.seconds !== undefined) {
        const timer = setTimeout(() => socket.destroy(), Math.max(0, deadline - performance.now()));
        await done;
        clearTimeout(timer);
      } else {
        await done;
        if (bytes !== total) throw new Error(`expected ${total} bytes, received ${bytes}`);
      }
    }
    const durationS = Math.max(1e-9, (end - start) / 1000);
    return {
      mode: "bulk",
      direction: o.direction,
      bytes,
      durationS: round(durationS, 4),
      mbPerSecond: round(bytes / durationS / 1e6, 1),
      mibPerSecond: round(bytes / durationS / 1048576, 1),
      chunkBytes,
    };
  } finally {
    socket.destroy();
  }
}
