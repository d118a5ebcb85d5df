// The waypoint's data path in process over real mTLS: HBONE in from a client, L7 policy and routes, HBONE out to test agents in front of HTTP backends.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { L7PolicyStore } from "../../agent/authorization/index.ts";
import { WorkloadIndex } from "../../agent/state/index.ts";
import type { ServiceSpec, Workload } from "../../contract/mesh.ts";
import { type HTTPRoute, RoutingTable, compileRoutes } from "../../waypoint/routing/index.ts";
import { asSocket } from "../../waypoint/proxy/index.ts";
import { ResiliencePolicies } from "../../waypoint/resilience/index.ts";
import { WAYPOINT_REF, WaypointHarness, request } from "../support/waypoint-harness.ts";

const log = pino({ level: "silent" });
/** The waypoint's own log lines, parsed: the access log is part of what it must produce. */
const accessLines: Array<Record<string, unknown>> = [];
const accessLog = pino({ level: "info" }, { write: (line: string) => void accessLines.push(JSON.parse(line) as Record<string, unknown>) });

/** Backend pods: name (also its service account), pod IP, and whether it speaks HTTP/2 only (h2c). */
const PODS = [
  { name: "reviews-v1", ip: "10.244.1.10" },
  { name: "reviews-v2", ip: "10.244.1.11" },
  { name: "flaky", ip: "10.244.1.12" },
  { name: "h2", ip: "10.244.1.13", h2: true },
  // Ends an idle keep-alive connection after 50 ms and reads no more from it (a half-close): the waypoint must not reuse it.
  { name: "short-idle", ip: "10.244.1.15", halfCloseAfterMs: 50 },
];
/** Service VIPs; each Service selects the pod of the same name, except `reviews`, which selects reviews-v1. */
const VIPS: Record<string, string> = {
  reviews: "10.96.0.10",
  "reviews-v1": "10.96.0.11",
  "reviews-v2": "10.96.0.12",
  flaky: "10.96.0.13",
  h2: "10.96.0.14",
  "short-idle": "10.96.0.15",
};
const APP_PORT = 8080;
/** Services whose port 80 declares its protocol (appProtocol), both in front of reviews-v2's pod. */
const DECLARED: Record<string, string> = { "declared-tcp": "tcp", "declared-http": "http" };
const DECLARED_VIPS: Record<string, string> = { "declared-tcp": "10.96.0.30", "declared-http": "10.96.0.31" };
/** A Service in front of reviews-v1's pod whose BackendTrafficPolicy allows one connection and two pending requests. */
const BREAKER_VIP = "10.96.0.32";

describe("waypoint proxy", () => {
  const harness = new WaypointHarness(log);
  const policies = new L7PolicyStore();
  const resilience = new ResiliencePolicies([
    {
      namespace: "demo",
      name: "breaker",
      creationTimestamp: "2026-01-01T00:00:00Z",
      targets: [{ kind: "Service", name: "breaker" }],
      circuitBreaker: { maxConnections: 1, maxPendingRequests: 2, maxParallelRequests: 1024 },
    },
  ]);
  let flakyCalls = 0;
  /** Every request a backend received, in order. */
  const received: Array<{ backend: string; method: string; url: string; host: string }> = [];
  /** Connections each backend closed, by pod name. */
  const backendClosed = new Map<string, number>();

  /** What a backend answers: who it is and what it received, so tests see the request as the waypoint forwarded it. */
  function answer(name: string, method: string, url: string, headers: http.IncomingHttpHeaders, send: (status: number, body: string) => void) {
    received.push({ backend: name, method, url, host: String(headers.host ?? headers[":authority"]) });
    if (name === "flaky" && ++flakyCalls <= 2) return send(503, "try again");
    const reply = () => send(200, JSON.stringify({ backend: name, method, url, headers }));
    if (url.startsWith("/slow")) setTimeout(reply, 1_000);
    else reply();
  }

  /**
   * An HTTP/1.1 server as a raw socket: answers each request, then after `idleMs` without one sends FIN and answers
   * nothing more, keeping its side open (a backend behind a proxy that half-closes; the destination agent relays the
   * FIN as END_STREAM and leaves the stream open).
   */
  function halfClosingBackend(name: string, idleMs: number): net.Server {
    return net.createServer({ allowHalfOpen: true }, (socket) => {
      let idle: NodeJS.Timeout | undefined;
      let ended = false;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          ended = true;
          socket.end();
          backendClosed.set(name, (backendClosed.get(name) ?? 0) + 1);
        }, idleMs);
      };
      socket.on("data", (d: Buffer) => {
        if (ended || !d.includes("\r\n\r\n")) return;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`);
        arm();
      });
      socket.on("error", () => {});
      socket.on("close", () => clearTimeout(idle));
    });
  }

  async function startBackend(pod: (typeof PODS)[number]) {
    const app = pod.h2
      ? http2.createServer().on("stream", (stream, h) =>
          answer(pod.name, String(h[":method"]), String(h[":path"]), h, (status, body) => {
            // /grpc-status: gRPC's shape, the status in trailers written together with the last data.
            const trailers = String(h[":path"]).startsWith("/grpc-status");
            stream.respond({ ":status": status, "x-protocol": "h2" }, { waitForTrailers: trailers });
            if (trailers) stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
            stream.end(body);
          }),
        )
      : http.createServer((req, res) =>
          answer(pod.name, req.method!, req.url!, req.headers, (status, body) => {
            res.writeHead(status, { "content-type": "application/json" });
            res.end(body);
          }),
        );
    const halfClosing = "halfCloseAfterMs" in pod && pod.halfCloseAfterMs ? halfClosingBackend(pod.name, pod.halfCloseAfterMs) : undefined;
    const appPort = await harness.listen(halfClosing ?? app);
    await harness.agentFor(pod, appPort, (dst) => expect(dst).toEqual({ ip: pod.ip, port: APP_PORT }));
  }

  function routes(): RoutingTable {
    const route: HTTPRoute = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { namespace: "demo", name: "reviews", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: {
        parentRefs: [{ group: "", kind: "Service", name: "reviews", port: 80 }],
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/split" } }],
            filters: [
              { type: "RequestHeaderModifier", requestHeaderModifier: { set: [{ name: "x-via", value: "waypoint" }], remove: ["x-secret"] } },
              { type: "ResponseHeaderModifier", responseHeaderModifier: { add: [{ name: "x-route", value: "split" }] } },
            ],
            backendRefs: [
              { name: "reviews-v1", port: 80, weight: 90 },
              { name: "reviews-v2", port: 80, weight: 10 },
            ],
          },
          { matches: [{ path: { type: "PathPrefix", value: "/slow" } }], backendRefs: [{ name: "reviews-v1", port: 80 }], timeouts: { request: "200ms" } },
          {
            matches: [{ path: { type: "PathPrefix", value: "/mirror" } }],
            filters: [{ type: "RequestMirror", requestMirror: { backendRef: { name: "reviews-v2", port: 80 } } }],
            backendRefs: [{ name: "reviews-v1", port: 80 }],
          },
          {
            matches: [{ path: { type: "Exact", value: "/" } }, { path: { type: "PathPrefix", value: "/admin" } }],
            backendRefs: [{ name: "reviews-v1", port: 80 }],
          },
        ],
      },
    };
    const flaky: HTTPRoute = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { namespace: "demo", name: "flaky", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: {
        parentRefs: [{ group: "", kind: "Service", name: "flaky", port: 80 }],
        rules: [{ backendRefs: [{ name: "flaky", port: 80 }], retry: { codes: [503], attempts: 2, backoff: "10ms" } }],
      },
    };
    const { servicePorts, results } = compileRoutes([route, flaky], {
      getService: (ns, name) => (ns === "demo" && name in VIPS ? { ports: [{ port: 80 }] } : undefined),
    });
    expect(results.flatMap((r) => r.errors)).toEqual([]);
    return new RoutingTable(servicePorts);
  }

  beforeAll(async () => {
    for (const pod of PODS) await startBackend(pod);
    const workloads: Workload[] = PODS.map((p) => ({
      uid: p.name,
      namespace: "demo",
      name: p.name,
      workloadName: p.name,
      serviceAccount: p.name,
      node: "node-1",
      ip: p.ip,
      captured: true,
      labels: {},
    }));
    const services: ServiceSpec[] = Object.entries(VIPS).map(([name, clusterIP]) => ({
      namespace: "demo",
      name,
      clusterIP,
      ports: [{ port: 80, endpoints: [{ ip: PODS.find((p) => p.name === (name === "reviews" ? "reviews-v1" : name))!.ip, port: APP_PORT, ready: true }] }],
      waypoint: WAYPOINT_REF,
    }));
    // Port 80 of reviews-v2's pod again, declared: as TCP (the waypoint must not read it) and as HTTP.
    for (const [name, appProtocol] of Object.entries(DECLARED))
      services.push({
        namespace: "demo",
        name,
        clusterIP: DECLARED_VIPS[name]!,
        ports: [{ port: 80, appProtocol, endpoints: [{ ip: PODS[1]!.ip, port: APP_PORT, ready: true }] }],
        waypoint: WAYPOINT_REF,
      });
    services.push({
      namespace: "demo",
      name: "breaker",
      clusterIP: BREAKER_VIP,
      ports: [{ port: 80, endpoints: [{ ip: PODS[0]!.ip, port: APP_PORT, ready: true }] }],
      waypoint: WAYPOINT_REF,
    });
    const index = new WorkloadIndex();
    index.replace(workloads, services);
    await harness.start({ index, routes: routes(), policies, accessLog, resilience });
  });
  afterAll(() => harness.close());

  const connect = (vip: string) => harness.connect(vip);
  const clientAgent = (vip: string) => harness.clientAgent(vip);
  const json = (body: string) => JSON.parse(body) as { backend: string; url: string; headers: Record<string, string> };

  it("passes a request through to the addressed service when no route is attached", async () => {
    const res = await request(clientAgent(VIPS["reviews-v2"]!), "/anything");
    expect(res.status).toBe(200);
    expect(json(res.body)).toMatchObject({ backend: "reviews-v2", url: "/anything" });
    expect(accessLines.find((l) => l.path === "/anything")).toMatchObject({
      msg: "request",
      method: "GET",
      status: 200,
      source: "spiffe://cluster.local/ns/demo/sa/orders",
      destination: `${VIPS["reviews-v2"]}:80`,
      upstream: `10.244.1.11:${APP_PORT}`,
      policy: "no ALLOW policy applies to demo/reviews-v2",
    });
  });

  it("carries bytes that are not HTTP at L4 to an endpoint of the addressed service", async () => {
    const stream = await connect(VIPS["reviews-v2"]!);
    let reply = "";
    stream.on("data", (d: Buffer) => (reply += d));
    stream.write("not http at all\r\n\r\n");
    // The backend is an HTTP server: its own 400 proves the bytes reached it untouched by the waypoint.
    await expect.poll(() => reply).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    stream.destroy();
  });

  it("carries a port declared as TCP at L4 unread, even when its bytes are HTTP", async () => {
    const before = accessLines.length;
    const stream = await connect(DECLARED_VIPS["declared-tcp"]!);
    let reply = "";
    stream.on("data", (d: Buffer) => (reply += d));
    stream.write("GET /declared HTTP/1.1\r\nhost: x\r\nx-secret: kept\r\n\r\n");
    // The backend's own answer, with the header a waypoint would not have touched anyway: no L7 hop in between.
    await expect.poll(() => reply, { timeout: 5_000 }).toMatch(/"url":"\/declared"/);
    expect(accessLines.slice(before).filter((l) => l.msg === "request")).toEqual([]);
    stream.destroy();
  });

  it("serves a port declared as HTTP as HTTP and resets a stream whose bytes are not HTTP", async () => {
    expect((await request(clientAgent(DECLARED_VIPS["declared-http"]!), "/declared")).status).toBe(200);
    const stream = await connect(DECLARED_VIPS["declared-http"]!);
    const closed = new Promise<number | undefined>((resolve) => stream.once("close", () => resolve((stream as { rstCode?: number }).rstCode)));
    stream.on("error", () => {});
    stream.on("data", () => {});
    stream.write("\x16\x03\x01 not http\r\n\r\n");
    expect(await closed).toBe(1);
  });

  it("refuses a CONNECT to an address not bound to it", async () => {
    await expect(harness.connect("10.96.9.9")).rejects.toMatchObject({ code: "AMBIT_E_HBONE_REJECTED", status: 400 });
  });

  it("splits /split 90/10 over two backends, with request and response header modifiers", async () => {
    const agent = clientAgent(VIPS.reviews!);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const res = await request(agent, `/split/${i}`, { headers: { "x-secret": "s3cret" } });
      expect(res.status).toBe(200);
      expect(res.headers["x-route"]).toBe("split");
      const body = json(res.body);
      expect(body.headers["x-via"]).toBe("waypoint");
      expect(body.headers["x-secret"]).toBeUndefined();
      seen[body.backend] = (seen[body.backend] ?? 0) + 1;
    }
    // 180 expected on v1; the band is wide enough that a fair coin of p=0.9 leaves it about once in 10^6 runs.
    expect(seen["reviews-v1"]).toBeGreaterThan(160);
    expect(seen["reviews-v2"]).toBeGreaterThan(3);
    // Keep-alive end to end: one client connection carried all 200 requests.
    expect(agent.opened).toBe(1);
  });

  it("does not reuse an upstream keep-alive connection the backend has closed: the next request opens a new one", async () => {
    const agent = clientAgent(VIPS["short-idle"]!);
    expect((await request(agent, "/first")).status).toBe(200);
    // The backend ends its idle connection; the destination agent ends the HBONE stream the waypoint pooled.
    await expect.poll(() => backendClosed.get("short-idle") ?? 0, { timeout: 5_000 }).toBe(1);
    // Its END_STREAM still has to cross the agent and the HBONE connection: a request sent before it reaches the
    // waypoint goes out on the old stream (socket hang up, 503 UC), a race no proxy can see coming.
    await new Promise((r) => setTimeout(r, 200));
    const second = await Promise.race([
      request(agent, "/second"),
      new Promise<{ status: number }>((resolve) => setTimeout(() => resolve({ status: -1 }), 3_000)),
    ]);
    expect(second.status).toBe(200);
  });

  it("sends a backend's content-length response (head, body and end in one read) to the client byte for byte", async () => {
    // Node's Http2Stream freed the head's bytes before sending them when the writev behind them ended with an empty
    // chunk, as http.ServerResponse's end() writes in the tick of the body's only write.
    const stream = await connect(VIPS["short-idle"]!);
    let reply = "";
    stream.on("data", (d: Buffer) => (reply += d.toString("latin1")));
    stream.write("GET /exact HTTP/1.1\r\nhost: short-idle.demo\r\n\r\n");
    await expect.poll(() => reply).toMatch(/\r\n\r\n\{\}$/);
    expect(reply.replace(/\r\nDate: [^\r]*/, "")).toBe(
      "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=3600\r\n\r\n{}",
    );
    stream.destroy();
  });

  it("mirrors a request to the mirror's Service with a -shadow authority and answers with the backend's response only", async () => {
    const res = await request(clientAgent(VIPS.reviews!), "/mirror/one", { method: "POST" });
    expect(json(res.body)).toMatchObject({ backend: "reviews-v1", url: "/mirror/one" });
    await expect
      .poll(() => received.filter((r) => r.url === "/mirror/one").map((r) => `${r.backend} ${r.method} ${r.host}`), { timeout: 5_000 })
      .toEqual(expect.arrayContaining(["reviews-v1 POST reviews.demo", "reviews-v2 POST reviews.demo-shadow"]));
  });

  it("a pending request whose client leaves gives up its place: the next one waiting gets the freed connection", async () => {
    const breaker = resilience.forService("demo", "breaker")!.breaker!;
    // The only connection, held for a second by the backend.
    const first = request(harness.clientAgent(BREAKER_VIP), "/slow/holds");
    await expect.poll(() => breaker.counts().connection, { timeout: 5_000 }).toBe(1);
    const leaving = http.request({ agent: harness.clientAgent(BREAKER_VIP), host: "breaker.demo", path: "/slow/leaves" });
    leaving.on("error", () => {});
    leaving.end();
    await expect.poll(() => breaker.counts().pending, { timeout: 5_000 }).toBe(1);
    leaving.destroy();
    await expect.poll(() => breaker.counts().pending, { timeout: 5_000 }).toBe(0);
    const waiting = request(harness.clientAgent(BREAKER_VIP), "/after");
    await expect.poll(() => breaker.counts().pending, { timeout: 5_000 }).toBe(1);
    expect((await first).status).toBe(200);
    const after = await Promise.race([waiting, new Promise<{ status: number }>((resolve) => setTimeout(() => resolve({ status: -1 }), 5_000))]);
    expect(after.status).toBe(200);
    expect(received.filter((r) => r.url === "/slow/leaves")).toEqual([]);
  });

  it("answers 404 to a request that matches no rule of the attached route", async () => {
    const res = await request(clientAgent(VIPS.reviews!), "/nothing-here");
    expect(res.status).toBe(404);
  });

  it("denies POST /admin with Istio's 403 and lets GET / pass; a DENY installed on a live connection denies its next request", async () => {
    policies.replace([
      {
        namespace: "demo",
        name: "deny-admin",
        targets: [{ kind: "Service", name: "reviews" }],
        action: "DENY",
        rules: [{ to: [{ methods: ["POST"], paths: ["/admin"] }] }],
      },
    ]);
    const agent = clientAgent(VIPS.reviews!);
    const denied = await request(agent, "/admin", { method: "POST" });
    expect(denied).toMatchObject({ status: 403, body: "RBAC: access denied" });
    expect((await request(agent, "/")).status).toBe(200);
    policies.replace([
      { namespace: "demo", name: "deny-all", targets: [{ kind: "Service", name: "reviews" }], action: "DENY", rules: [{ to: [{ paths: ["/"] }] }] },
    ]);
    expect((await request(agent, "/")).status).toBe(403);
    expect(agent.opened).toBe(1);
    policies.replace([]);
  });

  it("marks requests an AUDIT policy matches in their access line and decides them as without it", async () => {
    policies.replace([
      { namespace: "demo", name: "audit-admin", targets: [{ kind: "Service", name: "reviews" }], action: "AUDIT", rules: [{ to: [{ paths: ["/admin"] }] }] },
    ]);
    try {
      const agent = clientAgent(VIPS.reviews!);
      expect((await request(agent, "/admin", { method: "POST" })).status).toBe(200);
      expect((await request(agent, "/")).status).toBe(200);
      const lines = accessLines.filter((l) => l.msg === "request").slice(-2);
      expect(lines.map((l) => [l.path, l.audit])).toEqual([
        ["/admin", ["demo/audit-admin"]],
        ["/", undefined],
      ]);
    } finally {
      policies.replace([]);
    }
  });

  it("retries a backend that answers 503 twice and returns its 200", async () => {
    flakyCalls = 0;
    const res = await request(clientAgent(VIPS.flaky!), "/");
    expect(res.status).toBe(200);
    expect(json(res.body).backend).toBe("flaky");
    expect(flakyCalls).toBe(3);
  });

  it("answers 504 when the backend does not answer within the route's request timeout", async () => {
    const res = await request(clientAgent(VIPS.reviews!), "/slow");
    expect(res).toMatchObject({ status: 504, body: "upstream request timeout" });
    expect(accessLines.find((l) => l.path === "/slow")).toMatchObject({
      status: 504,
      code: "AMBIT_E_WAYPOINT_TIMEOUT",
      route: "HTTPRoute demo/reviews rule 1",
    });
  });

  it("serves HTTP/2 with prior knowledge (h2c) and forwards it as HTTP/2", async () => {
    const stream = await connect(VIPS.h2!);
    const session = http2.connect("http://h2.demo", { createConnection: () => asSocket(stream) });
    harness.defer(() => session.destroy());
    const res = await new Promise<{ status: number; protocol: unknown; body: string }>((resolve, reject) => {
      const req = session.request({ ":path": "/hello", "content-type": "application/grpc" });
      let body = "";
      let status = 0;
      let protocol: unknown;
      req.on("response", (h) => ((status = Number(h[":status"])), (protocol = h["x-protocol"])));
      req.on("data", (d: Buffer) => (body += d));
      req.on("end", () => resolve({ status, protocol, body }));
      req.on("error", reject);
      req.end();
    });
    expect(res).toMatchObject({ status: 200, protocol: "h2" });
    expect(json(res.body)).toMatchObject({ backend: "h2", url: "/hello" });
  });

  it("bounds an HTTP/2 client connection to 100 requests in flight, so a client past its capacity waits instead of filling the heap", async () => {
    const stream = await connect(VIPS.h2!);
    const session = http2.connect("http://h2.demo", { createConnection: () => asSocket(stream) });
    harness.defer(() => session.destroy());
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
    // 150 calls at once all answered: the 50 beyond the bound waited for a slot, none was refused.
    const call = () =>
      new Promise<number>((resolve, reject) => {
        const req = session.request({ ":path": "/hello" });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("data", () => {});
        req.on("error", reject);
        req.end();
      });
    expect(await Promise.all(Array.from({ length: 150 }, call))).toEqual(Array(150).fill(200));
  });

  it("passes on every gRPC status trailer, also when the backend sends it with the last data", async () => {
    const stream = await connect(VIPS.h2!);
    const session = http2.connect("http://h2.demo", { createConnection: () => asSocket(stream) });
    harness.defer(() => session.destroy());
    const call = () =>
      new Promise<string | undefined>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/grpc-status", "content-type": "application/grpc", te: "trailers" });
        let status: string | undefined;
        req.on("trailers", (t) => (status = String(t["grpc-status"])));
        req.on("data", () => {});
        req.on("end", () => resolve(status));
        req.on("error", reject);
        req.end();
      });
    const statuses: Array<string | undefined> = [];
    for (let i = 0; i < 50; i++) statuses.push(await call());
    expect(statuses).toEqual(Array(50).fill("0"));
  });
});

describe("waypoint proxy at its limits", () => {
  const harness = new WaypointHarness(log);
  const lines: Array<Record<string, unknown>> = [];
  const linesLog = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const pod = { name: "held", ip: "10.244.1.20" };
  const vip = "10.96.0.40";
  /** Responses of /hold requests, sent when the test says so. */
  const holding: Array<() => void> = [];

  beforeAll(async () => {
    const app = http.createServer((req, res) => {
      const reply = () => res.end(req.url);
      if (req.url?.startsWith("/hold")) holding.push(reply);
      else reply();
    });
    await harness.agentFor(pod, await harness.listen(app));
    const index = new WorkloadIndex();
    index.replace(
      [
        {
          uid: pod.name,
          namespace: "demo",
          name: pod.name,
          workloadName: pod.name,
          serviceAccount: pod.name,
          node: "node-1",
          ip: pod.ip,
          captured: true,
          labels: {},
        },
      ],
      [
        {
          namespace: "demo",
          name: pod.name,
          clusterIP: vip,
          ports: [{ port: 80, endpoints: [{ ip: pod.ip, port: APP_PORT, ready: true }] }],
          waypoint: WAYPOINT_REF,
        },
      ],
    );
    await harness.start({ index, routes: new RoutingTable([]), policies: new L7PolicyStore(), accessLog: linesLog, maxActiveRequests: 2 });
  });
  afterAll(() => harness.close());

  /** Polls `check` every 10 ms until it holds, failing after `timeoutMs`. */
  async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it("answers 503 with Envoy's overload flag past its request limit, and serves again once requests end", async () => {
    const held = [request(harness.clientAgent(vip), "/hold-1"), request(harness.clientAgent(vip), "/hold-2")];
    await until("both held requests at the backend", () => holding.length === 2);
    const refused = await request(harness.clientAgent(vip), "/third");
    expect(refused).toMatchObject({ status: 503, body: "envoy overloaded" });
    expect(refused.headers["x-envoy-overloaded"]).toBe("true");
    expect(lines.find((l) => l.path === "/third")).toMatchObject({ msg: "request", status: 503, responseFlags: "OM" });
    for (const reply of holding.splice(0)) reply();
    expect((await Promise.all(held)).map((r) => [r.status, r.body])).toEqual([
      [200, "/hold-1"],
      [200, "/hold-2"],
    ]);
    // The slots were given back: the limit counts requests in flight, not requests ever served.
    expect(await request(harness.clientAgent(vip), "/after")).toMatchObject({ status: 200, body: "/after" });
  });

  it("keeps an idle client keep-alive connection past Node's 5 s default, as Envoy keeps it for an hour", async () => {
    const agent = harness.clientAgent(vip);
    expect(await request(agent, "/first")).toMatchObject({ status: 200 });
    // The behaviour under test is an idle period longer than Node's default keep-alive timeout (5 s).
    await new Promise((r) => setTimeout(r, 6_000));
    expect(await request(agent, "/second")).toMatchObject({ status: 200, body: "/second" });
    expect(agent.opened).toBe(1);
  }, 15_000);
});
