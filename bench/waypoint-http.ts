// The waypoint's HTTP/1.1 engine, three ways on loopback: node:http server + node:http client, + http2-proxy's web(), + undici's Pool.
import { once } from "node:events";
import fs from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import type { Duplex, Readable } from "node:stream";
import { type ResultPromise, execa } from "execa";
import { REPO_ROOT } from "../sandbox/config.ts";
import { FREE_SOCKET_TIMEOUT_MS, asSocket, forwardableHeaders } from "../waypoint/proxy/upstream.ts";
import { median } from "./tools/process-stats.ts";

/**
 * Issue 13 asks for http2-proxy where it measures well and node:http / undici where they measure better. One 1 KiB
 * HTTP/1.1 backend (`tools/http-server.ts`), one proxy process in front of it per variant, and the load generator
 * (`tools/http-load.ts`) in a third process, so the proxy's CPU (process.cpuUsage, read by the proxy itself) is its
 * own. Keep-alive open loop at `RATE` (1,000) req/s over 16 connections for `SECONDS` (10), then closed loop over 32
 * connections for `SECONDS`; `ROUNDS` (3) with the variants alternating, medians. Before that, a check of what the
 * waypoint needs from each over a tunnelled upstream: each variant's upstream connection is an HTTP/2 CONNECT stream
 * (HBONE without TLS), and one request answered with chunked trailers shows whether the upstream's trailers and a
 * response header the proxy adds reach the client, and whether a per-attempt abort surfaces as an error to retry on.
 *
 * http2-proxy and undici are not dependencies: they are loaded from `BENCH_MODULES` (a node_modules directory,
 * default /tmp/h2p/node_modules: `mkdir /tmp/h2p && cd /tmp/h2p && npm init -y && npm i http2-proxy undici`).
 */
const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const MODULES = process.env.BENCH_MODULES ?? "/tmp/h2p/node_modules";
const NODE = path.join(REPO_ROOT, "node_modules", "node", "bin", "node");
const TOOLS = path.join(REPO_ROOT, "bench", "tools");
const SELF = path.join(REPO_ROOT, "bench", "waypoint-http.ts");
const PORTS = { backend: 18180, proxy: 18181 };

const VARIANTS = ["node-http", "http2-proxy", "undici"] as const;
type Variant = (typeof VARIANTS)[number];

// Minimal local types for the two packages loaded by path (they are not in the repository's node_modules).
interface H2Proxy {
  web(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    options: {
      hostname: string;
      port: number;
      onReq?(req: http.IncomingMessage, options: http.RequestOptions): Promise<void> | void;
      onRes?(req: http.IncomingMessage, res: http.ServerResponse, proxyRes: http.IncomingMessage): Promise<void> | void;
    },
  ): Promise<void>;
}
interface UndiciResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  trailers: Record<string, string | string[] | undefined>;
  body: Readable;
}
interface UndiciPool {
  request(options: {
    path: string;
    method: string;
    headers: Record<string, string | string[]>;
    body?: Readable | Buffer | null;
    signal?: AbortSignal;
  }): Promise<UndiciResponse>;
  close(): Promise<void>;
}
type Connector = (options: unknown, callback: (err: Error | null, socket: net.Socket | null) => void) => void;
interface Undici {
  Pool: new (origin: string, options?: { connect?: Connector; connections?: number | null; keepAliveTimeout?: number }) => UndiciPool;
}
const loadModule = async <T>(name: string, entry: string): Promise<T> => {
  const m = (await import(path.join(MODULES, name, entry))) as { default?: T } & T;
  return m.default ?? m;
};

/** The upstream: a host and port, or (the check) a function that opens a tunnelled stream to it, as HBONE does. */
interface Upstream {
  host: string;
  port: number;
  tunnel?: () => Promise<Duplex>;
}

/** An http.Agent as the waypoint's: keep-alive, idle connections dropped after 4 s, connections from `tunnel` if given. */
function agentFor(upstream: Upstream): http.Agent {
  const agent = new http.Agent({ keepAlive: true, timeout: FREE_SOCKET_TIMEOUT_MS });
  const tunnel = upstream.tunnel;
  if (tunnel)
    agent.createConnection = (_options, callback) => {
      tunnel().then(
        (stream) => {
          stream.once("end", () => stream.destroy());
          callback?.(null, asSocket(stream));
        },
        (err: Error) => callback?.(err, undefined as unknown as net.Socket),
      );
      return undefined as unknown as net.Socket;
    };
  return agent;
}

/** Options the check passes per request: a header to add to the response, and a per-attempt signal. */
interface Extras {
  addHeader?: [string, string];
  signal?: AbortSignal;
  onError?(err: Error): void;
}

const fail = (res: http.ServerResponse, err: Error, extras?: Extras) => {
  extras?.onError?.(err);
  if (!res.headersSent) res.writeHead(502).end();
  else res.destroy(err);
};

/** A request handler forwarding to `upstream` with the variant's upstream side. */
async function handlerFor(variant: Variant, upstream: Upstream): Promise<(req: http.IncomingMessage, res: http.ServerResponse, extras?: Extras) => void> {
  const authority = `${upstream.host}:${upstream.port}`;
  if (variant === "node-http") {
    const agent = agentFor(upstream);
    return (req, res, extras) => {
      const up = http.request({
        agent,
        host: upstream.host,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...forwardableHeaders(req.headers), host: authority },
        signal: extras?.signal,
      });
      up.once("response", (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, { ...forwardableHeaders(upRes.headers), ...Object.fromEntries(extras?.addHeader ? [extras.addHeader] : []) });
        upRes.on("end", () => {
          if (Object.keys(upRes.trailers).length) res.addTrailers(upRes.trailers);
        });
        upRes.pipe(res);
      });
      up.once("error", (err) => fail(res, err, extras));
      req.pipe(up);
    };
  }
  if (variant === "http2-proxy") {
    const proxy = await loadModule<H2Proxy>("http2-proxy", "index.js");
    const agent = agentFor(upstream);
    return (req, res, extras) => {
      proxy
        .web(req, res, {
          hostname: upstream.host,
          port: upstream.port,
          // The upstream connection: our Agent (HBONE streams from createConnection); the per-attempt abort as http.request's signal.
          onReq: (_req, options) => {
            options.agent = agent;
            if (extras?.signal) options.signal = extras.signal;
          },
          // Changing the response's headers means taking over writing it (onRes), trailers included.
          ...(extras?.addHeader
            ? {
                onRes: (_req: http.IncomingMessage, res: http.ServerResponse, proxyRes: http.IncomingMessage) => {
                  res.writeHead(proxyRes.statusCode ?? 502, { ...proxyRes.headers, [extras.addHeader![0]]: extras.addHeader![1] });
                  proxyRes.on("end", () => {
                    if (Object.keys(proxyRes.trailers).length) res.addTrailers(proxyRes.trailers);
                  });
                  proxyRes.pipe(res);
                },
              }
            : {}),
        })
        .catch((err: Error) => fail(res, err, extras));
    };
  }
  const { Pool } = await loadModule<Undici>("undici", "index.js");
  const tunnel = upstream.tunnel;
  const pool = new Pool(`http://${authority}`, {
    keepAliveTimeout: FREE_SOCKET_TIMEOUT_MS,
    ...(tunnel
      ? {
          connect: (_options, callback) =>
            void tunnel().then(
              (stream) => callback(null, asSocket(stream)),
              (err: Error) => callback(err, null),
            ),
        }
      : {}),
  });
  return (req, res, extras) => {
    const method = req.method ?? "GET";
    pool
      .request({
        path: req.url ?? "/",
        method,
        headers: forwardableHeaders(req.headers),
        body: method === "GET" || method === "HEAD" ? null : req,
        signal: extras?.signal,
      })
      .then(
        (up) => {
          const headers = Object.fromEntries(Object.entries(forwardableHeaders(up.headers)));
          res.writeHead(up.statusCode, { ...headers, ...Object.fromEntries(extras?.addHeader ? [extras.addHeader] : []) });
          up.body.on("end", () => {
            const trailers = forwardableHeaders(up.trailers);
            if (Object.keys(trailers).length) res.addTrailers(trailers as Record<string, string>);
          });
          up.body.pipe(res);
        },
        (err: Error) => fail(res, err, extras),
      );
  };
}

/** The proxy child: serves on `port`, answers `cpu` lines on stdin with its process.cpuUsage() in µs. */
async function proxyChild(variant: Variant, port: number, backend: number): Promise<void> {
  const handle = await handlerFor(variant, { host: "127.0.0.1", port: backend });
  const server = http.createServer((req, res) => handle(req, res));
  server.keepAliveTimeout = 120_000;
  server.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ msg: "listening", variant, port })));
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim() === "cpu") console.log(JSON.stringify({ cpu: process.cpuUsage() }));
  }
  process.exit(0);
}

// ---- the check: each variant over a tunnelled upstream ----

interface CheckResult {
  status: number;
  bodyBytes: number;
  addedHeader: boolean;
  trailers: Record<string, string>;
  /** A per-attempt abort (signal aborted 50 ms into a backend that answers after 1 s): the error the handler got, if any. */
  abortError: string | undefined;
  abortMs: number;
}

async function check(variant: Variant): Promise<CheckResult> {
  // The backend: /trailers answers chunked with a gRPC-like trailer; /slow after 1 s.
  const backend = http.createServer((req, res) => {
    if (req.url === "/slow") return void setTimeout(() => res.end("late"), 1000);
    res.writeHead(200, { "content-type": "application/grpc", trailer: "grpc-status" });
    res.write(Buffer.alloc(1024, "a"));
    res.addTrailers({ "grpc-status": "0" });
    res.end();
  });
  // HBONE without TLS: an h2c server taking CONNECT to the backend's address and piping the stream to it.
  const tunnelServer = http2.createServer();
  tunnelServer.on("stream", (stream, headers) => {
    if (headers[":method"] !== "CONNECT") return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    const [host, port] = String(headers[":authority"]).split(":");
    const socket = net.connect(Number(port), host!, () => {
      stream.respond({ ":status": 200 });
      socket.pipe(stream).pipe(socket);
    });
    socket.on("error", () => stream.destroy());
    stream.on("error", () => socket.destroy());
  });
  backend.listen(0, "127.0.0.1");
  tunnelServer.listen(0, "127.0.0.1");
  await Promise.all([once(backend, "listening"), once(tunnelServer, "listening")]);
  const backendPort = (backend.address() as net.AddressInfo).port;
  const session = http2.connect(`http://127.0.0.1:${(tunnelServer.address() as net.AddressInfo).port}`);
  session.on("error", () => {});
  const tunnel = () =>
    new Promise<Duplex>((resolve, reject) => {
      const s = session.request({ ":method": "CONNECT", ":authority": `127.0.0.1:${backendPort}` }, { endStream: false });
      s.once("response", (h) => (h[":status"] === 200 ? resolve(s) : reject(new Error(`CONNECT ${String(h[":status"])}`))));
      s.once("error", reject);
    });
  const handle = await handlerFor(variant, { host: "127.0.0.1", port: backendPort, tunnel });
  let abortError: string | undefined;
  const proxy = http.createServer((req, res) => {
    if (req.url === "/slow") {
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error("per-attempt timeout")), 50);
      handle(req, res, { signal: controller.signal, onError: (err) => (abortError = `${err.name}: ${err.message}`) });
    } else handle(req, res, { addHeader: ["x-ambit-added", "1"] });
  });
  proxy.listen(0, "127.0.0.1");
  await once(proxy, "listening");
  const proxyPort = (proxy.address() as net.AddressInfo).port;
  const get = (p: string) =>
    new Promise<{ res: http.IncomingMessage; body: Buffer }>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: proxyPort, path: p, headers: { te: "trailers" }, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ res, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        })
        .on("error", reject);
    });
  try {
    const { res, body } = await get("/trailers");
    const t0 = performance.now();
    await get("/slow").catch(() => undefined);
    const abortMs = Math.round(performance.now() - t0);
    return {
      status: res.statusCode ?? 0,
      bodyBytes: body.length,
      addedHeader: res.headers["x-ambit-added"] === "1",
      trailers: res.trailers as Record<string, string>,
      abortError,
      abortMs,
    };
  } finally {
    session.destroy();
    for (const s of [proxy, backend, tunnelServer]) (s as { closeAllConnections?: () => void }).closeAllConnections?.();
    proxy.close();
    backend.close();
    tunnelServer.close();
  }
}

// ---- the driver ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children: ResultPromise[] = [];

async function started(args: string[], env: Record<string, string> = {}): Promise<{ child: ResultPromise; output: () => string }> {
  const child = execa(NODE, args, { reject: false, stdin: "pipe", env });
  children.push(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!out.includes('"listening"')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`${args.join(" ")} did not start: ${(await child).stderr}`);
    }
    await sleep(50);
  }
  return { child, output: () => out };
}

/** The proxy's own CPU time so far, in seconds, as it reports it. */
async function proxyCpu(p: { child: ResultPromise; output: () => string }): Promise<number> {
  const seen = p.output().length;
  p.child.stdin!.write("cpu\n");
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = p
      .output()
      .slice(seen)
      .split("\n")
      .find((l) => l.includes('"cpu"'));
    if (line) {
      const { cpu } = JSON.parse(line) as { cpu: { user: number; system: number } };
      return (cpu.user + cpu.system) / 1e6;
    }
    if (Date.now() > deadline) throw new Error("the proxy did not report its CPU");
    await sleep(10);
  }
}

async function load(mode: string, extra: string[]): Promise<Record<string, number>> {
  const { stdout } = await execa(NODE, [path.join(TOOLS, "http-load.ts"), "--mode", mode, "--target", `127.0.0.1:${PORTS.proxy}`, ...extra], {
    timeout: 120_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, number>;
}

interface Samples {
  p50Ms: number[];
  p99Ms: number[];
  achievedRate: number[];
  /** Failed requests (either load). */
  errors: number[];
  /** Open-loop requests not sent because all 16 connections were still waiting (a stall longer than 16 ms). */
  dropped: number[];
  cpuPer1kRps: number[];
  maxRps: number[];
  /** At the closed loop's maximum: proxy CPU seconds per 1,000 requests (its cost per request when saturated). */
  cpuPer1kRequestsAtMax: number[];
}

async function measure(variant: Variant, s: Samples): Promise<void> {
  const p = await started([SELF, "--proxy", variant, "--port", String(PORTS.proxy), "--backend", String(PORTS.backend)], { BENCH_MODULES: MODULES });
  try {
    await load("max", ["--seconds", "1", "--connections", "4"]);
    let c0 = await proxyCpu(p);
    let t0 = performance.now();
    const rate = await load("rate", ["--rate", String(RATE), "--seconds", String(SECONDS), "--connections", "16"]);
    let cpu = (await proxyCpu(p)) - c0;
    const wall = (performance.now() - t0) / 1000;
    s.p50Ms.push(rate.p50Ms!);
    s.p99Ms.push(rate.p99Ms!);
    s.achievedRate.push(rate.achievedRate!);
    s.dropped.push(rate.dropped!);
    s.cpuPer1kRps.push(Number((cpu / wall / (rate.achievedRate! / 1000)).toFixed(4)));
    c0 = await proxyCpu(p);
    t0 = performance.now();
    const max = await load("max", ["--seconds", String(SECONDS), "--connections", "32"]);
    cpu = (await proxyCpu(p)) - c0;
    s.maxRps.push(max.requestsPerSecond!);
    s.errors.push(rate.errors! + max.errors!);
    s.cpuPer1kRequestsAtMax.push(Number(((cpu / max.requests!) * 1000).toFixed(4)));
  } finally {
    p.child.stdin!.end();
    await p.child;
  }
}

async function main(): Promise<void> {
  const checks = {} as Record<Variant, CheckResult>;
  for (const v of VARIANTS) checks[v] = await check(v);
  console.log("over an HTTP/2 CONNECT stream (HBONE without TLS), one request each:");
  for (const v of VARIANTS) console.log(`  ${v}: ${JSON.stringify(checks[v])}`);

  // The machine's load before and after: other work on it shows in the throughput and the tail, less in CPU per request.
  const loadAverage = { before: os.loadavg()[0], after: NaN, cpus: os.cpus().length };
  await started([path.join(TOOLS, "http-server.ts")], { PORT: String(PORTS.backend) });
  const samples = Object.fromEntries(
    VARIANTS.map((v) => [
      v,
      { p50Ms: [], p99Ms: [], achievedRate: [], errors: [], dropped: [], cpuPer1kRps: [], maxRps: [], cpuPer1kRequestsAtMax: [] } as Samples,
    ]),
  ) as Record<Variant, Samples>;
  for (let r = 1; r <= ROUNDS; r++) {
    // Alternating the order from round to round, so a drift in the machine does not always land on one variant.
    const order = r % 2 ? VARIANTS : [...VARIANTS].reverse();
    for (const v of order) await measure(v, samples[v]);
    console.log(
      `round ${r}: ` +
        VARIANTS.map((v) => `${v} p50 ${samples[v].p50Ms.at(-1)} ms, max ${samples[v].maxRps.at(-1)} req/s, cpu ${samples[v].cpuPer1kRps.at(-1)}`).join("; "),
    );
  }
  loadAverage.after = os.loadavg()[0]!;
  const summary = Object.fromEntries(
    VARIANTS.map((v) => {
      const x = samples[v];
      return [
        v,
        {
          p50Ms: median(x.p50Ms),
          p99Ms: median(x.p99Ms),
          maxRps: median(x.maxRps),
          cpuPer1kRps: median(x.cpuPer1kRps),
          cpuPer1kRequestsAtMax: median(x.cpuPer1kRequestsAtMax),
          errors: x.errors.reduce((a, b) => a + b, 0),
          dropped: x.dropped.reduce((a, b) => a + b, 0),
          raw: x,
        },
      ];
    }),
  ) as unknown as Record<
    Variant,
    { p50Ms: number; p99Ms: number; maxRps: number; cpuPer1kRps: number; cpuPer1kRequestsAtMax: number; errors: number; dropped: number }
  >;
  console.log(
    `\n| proxy (1 KiB, keep-alive, loopback) | p50 ms @${RATE}/s | p99 ms @${RATE}/s | max req/s (32 conns) | proxy vCPU per 1k req/s @${RATE}/s | proxy CPU s per 1k requests at max | errors / dropped |\n|---|---|---|---|---|---|---|`,
  );
  for (const v of VARIANTS) {
    const s = summary[v];
    console.log(`| ${v} | ${s.p50Ms} | ${s.p99Ms} | ${s.maxRps} | ${s.cpuPer1kRps} | ${s.cpuPer1kRequestsAtMax} | ${s.errors} / ${s.dropped} |`);
  }
  const out = path.join(REPO_ROOT, "bench", "results", "waypoint-http.json");
  await fs.mkdir(path.dirname(out), { recursive: true });
  const versions = Object.fromEntries(
    await Promise.all(
      ["http2-proxy", "undici"].map(async (n) => [
        n,
        (JSON.parse(await fs.readFile(path.join(MODULES, n, "package.json"), "utf8")) as { version: string }).version,
      ]),
    ),
  ) as Record<string, string>;
  await fs.writeFile(
    out,
    JSON.stringify(
      { rate: RATE, seconds: SECONDS, rounds: ROUNDS, node: process.version, versions, loadAverage, variants: summary, tunnelCheck: checks },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nwritten to ${path.relative(REPO_ROOT, out)}`);
}

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const variant = arg("proxy") as Variant | undefined;
if (variant) await proxyChild(variant, Number(arg("port")), Number(arg("backend")));
else
  try {
    await main();
  } finally {
    for (const c of children) c.kill();
  }
