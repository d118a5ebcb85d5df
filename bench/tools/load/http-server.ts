// The HTTP/1.1 bench upstream: every request answered with a fixed-size body (1 KiB by default), keep-alive.
import http from "node:http";
import type net from "node:net";

export interface BenchHttpServer {
  server: http.Server;
  port: number;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

export async function startHttpServer(o: { port?: number; host?: string; bodyBytes?: number } = {}): Promise<BenchHttpServer> {
  const size = o.bodyBytes ?? 1024;
  const body = Buffer.alloc(size, "a");
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    res.end(body);
  });
  server.keepAliveTimeout = 120_000;
  // The 10,000-connection memory run holds that many idle keep-alive sockets open.
  server.maxConnections = 50_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, o.host ?? "127.0.0.1", () => resolve());
  });
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
