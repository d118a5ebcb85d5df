// The agent's HTTP endpoints: Prometheus metrics (:15020), readiness (:15021) and the localhost admin API (:15000).
import http from "node:http";
import type { AddressInfo } from "node:net";
import v8 from "node:v8";
import vm from "node:vm";
import type { Logger } from "pino";
import { releaseFreeMemory } from "../native/index.ts";

/** What /metrics serves: the agent's AgentMetrics, or any registry in Prometheus' text format (the waypoint's). */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface AdminSources {
  metrics: MetricsSource;
  /** Ready only when certificates and configuration are in place; the reason is shown when not. */
  readiness(): { ready: true } | { ready: false; reason: string };
  /** Everything the agent knows, without private keys: workloads, services, policies, certificates, tunnels. */
  configDump(): unknown;
  /** Every HBONE connection, both directions, with its open streams (GET /tunnels). */
  tunnels(): unknown;
  log: Logger;
}

/** Process memory in KiB (RSS, V8 heap used and total, off-heap buffers). */
function memory(): Record<string, number> {
  const m = process.memoryUsage();
  const kib = (n: number) => Math.round(n / 1024);
  return {
    rssKiB: kib(m.rss),
    heapUsedKiB: kib(m.heapUsed),
    heapTotalKiB: kib(m.heapTotal),
    externalKiB: kib(m.external),
    arrayBuffersKiB: kib(m.arrayBuffers),
  };
}

type GcFunction = (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;
let gcFunction: GcFunction | undefined;
/**
 * Leaves only what is live: V8's most thorough collection (reachable without starting the process with
 * --expose-gc), whose "last-resort" flavour (what V8 runs before giving up on memory) also shrinks the heap and
 * gives its free pages back, then a trim of the C heap, where what it freed of native objects (sockets, streams)
 * is still mapped. RSS afterwards reflects what is held, not how far memory grew in the last burst. It pauses the
 * process for tens of milliseconds.
 */
export function releaseUnusedMemory(): void {
  if (!gcFunction) {
    v8.setFlagsFromString("--expose-gc");
    gcFunction = vm.runInNewContext("gc") as GcFunction;
  }
  gcFunction({ type: "major", execution: "sync", flavor: "last-resort" });
  releaseFreeMemory();
}

export interface AdminPorts {
  admin: number;
  metrics: number;
  readiness: number;
  /** Address of the metrics and readiness listeners (the node's, so Prometheus and the kubelet reach them). */
  host: string;
}

export interface AdminServers {
  ports: { admin: number; metrics: number; readiness: number };
  close(): Promise<void>;
}

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body, null, 2) + "\n";
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
};

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    // reusePort: during a restart the new agent binds these ports while the old one is still draining.
    server.listen({ port, host, reusePort: true }, () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startAdminServers(sources: AdminSources, ports: AdminPorts): Promise<AdminServers> {
  const metrics = http.createServer((req, res) => {
    if (req.method === "GET" && (req.url === "/metrics" || req.url === "/stats/prometheus")) {
      sources.metrics.text().then(
        (text) => {
          res.writeHead(200, { "content-type": sources.metrics.contentType });
          res.end(text);
        },
        (err: unknown) => {
          sources.log.error({ err: String(err) }, "collecting metrics failed");
          res.writeHead(500, { "content-type": "text/plain" }).end("collecting metrics failed\n");
        },
      );
      return;
    }
    json(res, 404, { error: "not found: use /metrics" });
  });
  const readiness = http.createServer((req, res) => {
    if (req.url !== "/healthz/ready") return json(res, 404, { error: "not found: use /healthz/ready" });
    const state = sources.readiness();
    if (state.ready) {
      res.writeHead(200, { "content-type": "text/plain" }).end("ready\n");
    } else {
      res.writeHead(503, { "content-type": "text/plain" }).end(`not ready: ${state.reason}\n`);
    }
  });
  // The admin API can change log levels and shows the whole configuration: localhost only, never the node's address.
  const admin = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method === "GET" && url.pathname === "/config_dump") return json(res, 200, sources.configDump());
    if (req.method === "GET" && url.pathname === "/tunnels") return json(res, 200, sources.tunnels());
    if (req.method === "GET" && url.pathname === "/healthz") return json(res, 200, sources.readiness());
    if (req.method === "POST" && url.pathname === "/logging") {
      const level = url.searchParams.get("level") ?? "";
      if (!sources.log.levels.values[level] && level !== "silent")
        return json(res, 400, { error: `unknown level "${level}"; use one of ${Object.keys(sources.log.levels.values).join(", ")}` });
      sources.log.level = level;
      return json(res, 200, { level });
    }
    if (req.method === "GET" && url.pathname === "/memory") return json(res, 200, memory());
    // Benchmarks measure per pod and per connection this way.
    if (req.method === "POST" && url.pathname === "/memory/gc") {
      releaseUnusedMemory();
      return json(res, 200, memory());
    }
    json(res, 404, {
      error: "not found",
      endpoints: ["GET /config_dump", "GET /tunnels", "GET /healthz", "GET /memory", "POST /memory/gc", "POST /logging?level=debug"],
    });
  });
  const servers = [admin, metrics, readiness];
  const bound = {
    admin: await listen(admin, ports.admin, "127.0.0.1"),
    metrics: await listen(metrics, ports.metrics, ports.host),
    readiness: await listen(readiness, ports.readiness, ports.host),
  };
  return {
    ports: bound,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
