// Bulk TCP transfer over one connection: `server` sinks or sources bytes; `client` sends or receives a fixed amount (or for a time) and prints MB/s (MB = 10^6 bytes) as one JSON line.
import { parseCliArgs, parseTarget, runBulk, startBulkServer } from "./load/index.ts";

const USAGE = `usage: bulk-tcp.ts server [--port P (env PORT, 9000)] [--host H (env HOST, 0.0.0.0)]
       bulk-tcp.ts client --target host:port [--direction send|receive] [--mib N (256) | --seconds S] [--chunk-kib K (64)]`;

const [role, ...rest] = process.argv.slice(2);
try {
  if (role === "server") {
    const args = parseCliArgs(rest, ["port", "host"]);
    const server = await startBulkServer({
      port: args.number("port", Number(process.env.PORT ?? 9000)),
      host: args.get("host", process.env.HOST ?? "0.0.0.0"),
    });
    console.log(JSON.stringify({ msg: "listening", port: server.port }));
    process.on("SIGTERM", () => process.exit(0));
  } else if (role === "client") {
    const args = parseCliArgs(rest, ["target", "direction", "mib", "seconds", "chunk-kib"]);
    const direction = args.get("direction", "send");
    if (direction !== "send" && direction !== "receive") throw new Error(`--direction ${direction}: want send or receive`);
    const report = await runBulk({
      ...parseTarget(args.get("target", "127.0.0.1:9000")),
      direction,
      bytes: Math.round(args.number("mib", 256) * 1048576),
      ...(args.given.has("seconds") ? { seconds: args.number("seconds", 10) } : {}),
      chunkBytes: Math.round(args.number("chunk-kib", 64) * 1024),
    });
    console.log(JSON.stringify(report));
    process.exit(0);
  } else {
    console.error(USAGE);
    process.exit(2);
  }
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(1);
}
