// Benchmark upstream: answers every HTTP/1.1 request with a fixed-size body (1 KiB by default), keep-alive; or, with PROTOCOL=grpc, every gRPC unary call (HTTP/2 cleartext) with a message of that size and grpc-status 0.
// Environment: PORT (8080; 0 picks a free one), HOST (0.0.0.0), BODY_BYTES (1024), PROTOCOL (http | grpc). Prints {"msg":"listening",port,bodyBytes,protocol} once listening.
import { startGrpcServer, startHttpServer } from "./load/index.ts";

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? "0.0.0.0";
const bodyBytes = Number(process.env.BODY_BYTES ?? 1024);
const protocol = process.env.PROTOCOL ?? "http";
if (protocol !== "http" && protocol !== "grpc") {
  console.error(`PROTOCOL=${protocol}: want http or grpc`);
  process.exit(2);
}
const server = protocol === "grpc" ? await startGrpcServer({ port, host, bodyBytes }) : await startHttpServer({ port, host, bodyBytes });
console.log(JSON.stringify({ msg: "listening", port: server.port, bodyBytes, protocol }));
process.on("SIGTERM", () => process.exit(0));
