// Benchmark client: open-loop load at a fixed rate (HTTP/1.1 keep-alive, a new connection per request, gRPC unary), closed-loop max throughput, or N idle connections held open. Prints one JSON line.
import { type Dispatch, openHeld, parseCliArgs, parseTarget, runConnect, runConnectClosed, runGrpc, runMax, runRate } from "./load/index.ts";

const USAGE = `usage: http-load.ts [--mode rate|max|connect|grpc|hold] [--target host:port] [--rate N] [--seconds S] [--connections N]
                    [--dispatch pool|pinned] [--timeout-ms MS] [--path P] [--request-bytes N]
  rate     open loop, HTTP/1.1 keep-alive: round(rate * seconds) requests at fixed intervals over --connections connections
  connect  with --rate: open loop, a new connection per request; without: closed loop over --connections workers
  max      closed loop: each of --connections connections sends its next request when the previous answer arrives
  grpc     open loop of gRPC unary calls over --connections HTTP/2 connections
  hold     open --connections connections, one request each, print, hold until stdin ends or SIGTERM
See bench/README.md, "Load generator", for the JSON each mode prints.`;

const MODES = ["rate", "max", "connect", "grpc", "hold"] as const;
type Mode = (typeof MODES)[number];

let args;
try {
  args = parseCliArgs(process.argv.slice(2), ["mode", "target", "rate", "seconds", "connections", "dispatch", "timeout-ms", "path", "request-bytes"]);
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const mode = args.get("mode", "rate") as Mode;
const dispatch = args.get("dispatch", "pool") as Dispatch;
if (!MODES.includes(mode) || !["pool", "pinned"].includes(dispatch)) {
  console.error(USAGE);
  process.exit(2);
}
const { host, port } = parseTarget(args.get("target", "127.0.0.1:8080"));
const rate = args.number("rate", 1000);
const seconds = args.number("seconds", 10);
const connections = args.number("connections", 16);
const timeoutMs = args.number("timeout-ms", 10_000);
const path = args.given.has("path") ? args.get("path", "/") : undefined;

let report: object;
switch (mode) {
  case "rate":
    report = (await runRate({ host, port, rate, seconds, connections, dispatch, timeoutMs, path })).report;
    break;
  case "max":
    report = (await runMax({ host, port, seconds, connections, timeoutMs, path })).report;
    break;
  case "connect":
    report = args.given.has("rate")
      ? (await runConnect({ host, port, rate, seconds, timeoutMs, path })).report
      : (await runConnectClosed({ host, port, seconds, workers: connections, timeoutMs, path })).report;
    break;
  case "grpc":
    report = (await runGrpc({ host, port, rate, seconds, connections, timeoutMs, path, requestBytes: args.number("request-bytes", 64) })).report;
    break;
  case "hold": {
    const held = await openHeld({ host, port, connections });
    console.log(JSON.stringify({ mode: "hold", open: held.open, ok: held.ok }));
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", () => resolve());
      process.stdin.once("end", () => resolve());
      process.stdin.resume();
    });
    for (const c of held.connections) c.socket.destroy();
    process.exit(0);
  }
}
console.log(JSON.stringify(report));
process.exit(0);
