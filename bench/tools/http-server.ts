// Benchmark upstream: answers every HTTP/1.1 request with a fixed-size body (1 KiB by default), keep-alive.
import http from "node:http";

const port = Number(process.env.PORT ?? 8080);
const size = Number(process.env.BODY_BYTES ?? 1024);
const body = Buffer.alloc(size, "a");
const server = http.createServer((_req, res) => {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
  res.end(body);
});
server.keepAliveTimeout = 120_000;
// The 10,000-connection memory run holds that many idle keep-alive sockets open.
server.maxConnections = 50_000;
server.listen(port, "0.0.0.0", () => console.log(JSON.stringify({ msg: "listening", port, bodyBytes: size })));
process.on("SIGTERM", () => process.exit(0));
