// The waypoint's telemetry over real mTLS on loopback: Istio request metrics and response flags per outcome, trace context to backends, access lines.
import http from "node:http";
import net from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { L7PolicyStore } from "../../agent/authorization/index.ts";
import { WorkloadIndex } from "../../agent/state/index.ts";
import type { ServiceSpec, Workload } from "../../contract/mesh.ts";
import { type HTTPRoute, RoutingTable, compileRoutes } from "../../waypoint/routing/index.ts";
import { WaypointMetrics } from "../../waypoint/proxy/index.ts";
import { WAYPOINT_REF, WaypointHarness, request } from "../support/waypoint-harness.ts";

const log = pino({ level: "silent" });
const accessLines: Array<Record<string, unknown>> = [];
const accessLog = pino({ level: "info" }, { write: (line: string) => void accessLines.push(JSON.parse(line) as Record<string, unknown>) });

/** Backend pods; `down` has no agent listening, so opening HBONE to it fails (UF). */
const PODS: Array<{ name: string; ip: string; labels: Record<string, string> }> = [
  { name: "reviews-v1", ip: "10.244.1.10", labels: { app: "reviews", version: "v1" } },
  { name: "flaky", ip: "10.244.1.12", labels: { app: "flaky" } },
  { name: "down", ip: "10.244.1.14", labels: {} },
];
/** Services: each selects the pod of its name (`reviews` selects reviews-v1); `empty` has no endpoint (UH). */
const VIPS: Record<string, string> = { reviews: "10.96.0.10", "reviews-v1": "10.96.0.11", flaky: "10.96.0.13", down: "10.96.0.15", empty: "10.96.0.16" };
const APP_PORT = 8080;

// W3C Trace Context's example (https://www.w3.org/TR/trace-context/, section 3.2) and B3's (openzipkin/b3-propagation README).
const W3C_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const W3C_PARENT_ID = "00f067aa0ba902b7";
const B3_TRACE_ID = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_SPAN_ID = "e457b5a2e4d86bd1";

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of one metric in Prometheus' text format. */
function samples(text: string, metric: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== metric) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

describe("waypoint telemetry", () => {
  const harness = new WaypointHarness(log);
  const policies = new L7PolicyStore();
  const metrics = new WaypointMetrics();
  /** What each backend received, for the trace headers the waypoint sent on. */
  const received: http.IncomingHttpHeaders[] = [];
  let flakyCalls = 0;

  async function startBackend(pod: (typeof PODS)[number]) {
    const app = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d));
      req.on("end", () => {
        received.push(req.headers);
        const send = (status: number, text: string) => res.writeHead(status, { "content-type": "text/plain" }).end(text);
        if (pod.name === "flaky" && ++flakyCalls === 1) return send(503, "try again");
        if (req.url!.startsWith("/slow")) return void setTimeout(() => send(200, "late"), 1_000);
        send(200, `${pod.name} got ${body.length} bytes for ${req.url}`);
      });
    });
    await harness.agentFor(pod, await harness.listen(app));
  }

  function routes(): RoutingTable {
    const reviews: HTTPRoute = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { namespace: "demo", name: "reviews", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: {
        parentRefs: [{ group: "", kind: "Service", name: "reviews", port: 80 }],
        rules: [
          { matches: [{ path: { type: "PathPrefix", value: "/slow" } }], backendRefs: [{ name: "reviews-v1", port: 80 }], timeouts: { request: "200ms" } },
          {
            matches: [{ path: { type: "PathPrefix", value: "/ok" } }, { path: { type: "PathPrefix", value: "/admin" } }],
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
    const { servicePorts, results } = compileRoutes([reviews, flaky], {
      getService: (ns, name) => (ns === "demo" && name in VIPS ? { ports: [{ port: 80 }] } : undefined),
    });
    expect(results.flatMap((r) => r.errors)).toEqual([]);
    return new RoutingTable(servicePorts);
  }

  beforeAll(async () => {
    for (const pod of PODS.filter((p) => p.name !== "down")) await startBackend(pod);
    // A port nobody listens on: the `down` pod's agent refuses the connection.
    const closed = net.createServer();
    const downPort = await new Promise<number>((r) => closed.listen(0, "127.0.0.1", () => r((closed.address() as net.AddressInfo).port)));
    closed.close();
    harness.agentPorts.set("10.244.1.14", downPort);

    const pod = (name: string, ip: string, labels: Record<string, string>): Workload => ({
      uid: name,
      namespace: "demo",
      name: `${name}-7c9d`,
      workloadName: name,
      serviceAccount: name,
      node: "node-1",
      ip,
      captured: true,
      labels,
    });
    // The client pod holds the address the source agent's CONNECT comes from (loopback here).
    const workloads = [...PODS.map((p) => pod(p.name, p.ip, p.labels)), pod("orders", "127.0.0.1", { app: "orders", version: "v2" })];
    const services: ServiceSpec[] = Object.entries(VIPS).map(([name, clusterIP]) => ({
      namespace: "demo",
      name,
      clusterIP,
      ports: [
        {
          port: 80,
          endpoints: name === "empty" ? [] : [{ ip: PODS.find((p) => p.name === (name === "reviews" ? "reviews-v1" : name))!.ip, port: APP_PORT, ready: true }],
        },
      ],
      waypoint: WAYPOINT_REF,
    }));
    const index = new WorkloadIndex();
    index.replace(workloads, services);
    policies.replace([
      { namespace: "demo", name: "deny-admin", targets: [{ kind: "Service", name: "reviews" }], action: "DENY", rules: [{ to: [{ paths: ["/admin"] }] }] },
    ]);
    await harness.start({ index, routes: routes(), policies, accessLog, metrics });
  });
  afterAll(() => harness.close());

  /** An HTTP/1.1 client whose one connection is a CONNECT stream from demo/orders to the waypoint, addressed to `service`:80. */
  const clientFor = (service: string) => harness.clientAgent(VIPS[service]!);

  /** Response bodies the client got from backends that answered 200 on `reviews`. */
  const okBodies: string[] = [];

  it("counts each request once by response code and flags: 200s, a policy 403, a 404 no-route, a 504 timeout, a retried 503, UF and UH", async () => {
    const reviews = clientFor("reviews");
    for (const [path, method, body] of [
      ["/ok/1", "GET", undefined],
      ["/ok/2", "POST", "hello world"],
      ["/ok/3", "GET", undefined],
    ] as const) {
      const res = await request(reviews, path, { method, ...(body ? { body } : {}) });
      expect(res.status).toBe(200);
      okBodies.push(res.body);
    }
    expect(await request(reviews, "/admin")).toMatchObject({ status: 403, body: "RBAC: access denied" });
    expect((await request(reviews, "/nothing")).status).toBe(404);
    expect(await request(reviews, "/slow")).toMatchObject({ status: 504, body: "upstream request timeout" });
    flakyCalls = 0;
    expect(await request(clientFor("flaky"), "/")).toMatchObject({ status: 200 });
    expect(flakyCalls).toBe(2);
    expect((await request(clientFor("down"), "/")).status).toBe(503);
    expect(await request(clientFor("empty"), "/")).toMatchObject({ status: 503, body: "no healthy upstream" });

    const text = await metrics.registry.metrics();
    const counts = samples(text, "istio_requests_total").map((s) => ({
      service: s.labels.destination_service_name,
      code: s.labels.response_code,
      flags: s.labels.response_flags,
      count: s.value,
    }));
    expect(counts).toHaveLength(7);
    expect(counts).toEqual(
      expect.arrayContaining([
        { service: "reviews-v1", code: "200", flags: "-", count: 3 },
        { service: "reviews", code: "403", flags: "-", count: 1 },
        { service: "reviews", code: "404", flags: "NR", count: 1 },
        { service: "reviews-v1", code: "504", flags: "UT", count: 1 },
        { service: "flaky", code: "200", flags: "-", count: 1 },
        { service: "down", code: "503", flags: "UF", count: 1 },
        { service: "empty", code: "503", flags: "UH", count: 1 },
      ]),
    );

    // Istio's full label set on a request a backend answered: the source pod by its address and identity, the endpoint chosen.
    const ok = samples(text, "istio_requests_total").find((s) => s.labels.response_code === "200" && s.labels.destination_service_name === "reviews-v1")!;
    expect(ok.labels).toEqual({
      reporter: "waypoint",
      source_workload: "orders",
      source_workload_namespace: "demo",
      source_principal: "spiffe://cluster.local/ns/demo/sa/orders",
      source_app: "orders",
      source_version: "v2",
      source_cluster: "unknown",
      destination_workload: "reviews-v1",
      destination_workload_namespace: "demo",
      destination_principal: "spiffe://cluster.local/ns/demo/sa/reviews-v1",
      destination_app: "reviews",
      destination_version: "v1",
      destination_service: "reviews-v1.demo.svc.cluster.local",
      destination_service_name: "reviews-v1",
      destination_service_namespace: "demo",
      destination_cluster: "unknown",
      request_protocol: "http",
      response_code: "200",
      grpc_response_status: "",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    });
    // Answered by the waypoint before any endpoint was chosen: the destination workload is unknown.
    const denied = samples(text, "istio_requests_total").find((s) => s.labels.response_code === "403")!;
    expect(denied.labels).toMatchObject({ destination_workload: "unknown", destination_principal: "unknown", source_workload: "orders" });

    // The histograms saw the same requests, with Istio's buckets and the body sizes.
    const okSeries = (metric: string) =>
      samples(text, metric).filter((s) => s.labels.destination_service_name === "reviews-v1" && s.labels.response_code === "200");
    expect(okSeries("istio_request_duration_milliseconds_count")[0]!.value).toBe(3);
    expect(okSeries("istio_request_duration_milliseconds_bucket").map((s) => s.labels.le)).toEqual(
      expect.arrayContaining(["0.5", "1", "5", "10", "25", "3600000", "+Inf"]),
    );
    expect(okSeries("istio_request_bytes_sum")[0]!.value).toBe("hello world".length);
    expect(okSeries("istio_response_bytes_sum")[0]!.value).toBe(okBodies.reduce((n, b) => n + Buffer.byteLength(b), 0));
    expect(samples(text, "istio_request_duration_milliseconds_count").reduce((n, s) => n + s.value, 0)).toBe(9);
  });

  it("writes one access line per request with flags, sizes, upstream, identity, trace and request ids", () => {
    const timeout = accessLines.filter((l) => l.path === "/slow");
    expect(timeout).toHaveLength(1);
    expect(timeout[0]).toMatchObject({
      msg: "request",
      method: "GET",
      authority: "reviews.demo",
      status: 504,
      responseFlags: "UT",
      upstream: `10.244.1.10:${APP_PORT}`,
      source: "spiffe://cluster.local/ns/demo/sa/orders",
      code: "AMBIT_E_WAYPOINT_TIMEOUT",
      route: "HTTPRoute demo/reviews rule 0",
    });
    expect(timeout[0]!.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(timeout[0]!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(accessLines.find((l) => l.path === "/ok/2")).toMatchObject({
      status: 200,
      responseFlags: "-",
      bytesReceived: 11,
      bytesSent: Buffer.byteLength(okBodies[1]!),
    });
    expect(accessLines.find((l) => l.path === "/admin")).toMatchObject({ status: 403, policy: expect.stringContaining("deny-admin") as string });
    expect(accessLines.find((l) => l.path === "/nothing")).toMatchObject({ status: 404, responseFlags: "NR", reason: "no-rule-matched" });
    // The retried request: one line, both attempts in it.
    expect(accessLines.filter((l) => l.destination === `${VIPS.flaky}:80`)).toMatchObject([{ status: 200, responseFlags: "-", attempts: 2 }]);
  });

  it("counts a request whose client leaves before the answer as DC with status 0, and stops forwarding it", async () => {
    const agent = clientFor("reviews");
    await new Promise<void>((resolve) => {
      const req = http.request({ agent, host: "reviews.demo", path: "/slow/gone" });
      req.on("error", () => resolve());
      req.end();
      // The route's timeout is 200 ms: leaving at 50 ms is before any answer, the backend's or the waypoint's.
      setTimeout(() => req.destroy(), 50);
    });
    await expect.poll(() => accessLines.find((l) => l.path === "/slow/gone")).toMatchObject({ status: 0, responseFlags: "DC" });
    const text = await metrics.registry.metrics();
    expect(samples(text, "istio_requests_total").filter((s) => s.labels.response_code === "0")).toMatchObject([
      { labels: { response_flags: "DC", destination_service_name: "reviews-v1" }, value: 1 },
    ]);
  });

  it("continues the caller's W3C trace: the backend sees the same trace id under a new parent id, tracestate and x-request-id as sent", async () => {
    received.length = 0;
    const traceparent = `00-${W3C_TRACE_ID}-${W3C_PARENT_ID}-01`;
    const tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    await request(clientFor("reviews"), "/ok/w3c", { headers: { traceparent, tracestate, "x-request-id": "req-w3c" } });
    const seen = received[0]!;
    const [version, traceId, parentId, flags] = String(seen.traceparent).split("-");
    expect({ version, traceId, flags }).toEqual({ version: "00", traceId: W3C_TRACE_ID, flags: "01" });
    expect(parentId).toMatch(/^[0-9a-f]{16}$/);
    expect(parentId).not.toBe(W3C_PARENT_ID);
    expect(seen.tracestate).toBe(tracestate);
    expect(seen["x-request-id"]).toBe("req-w3c");
    expect(accessLines.find((l) => l.path === "/ok/w3c")).toMatchObject({ traceId: W3C_TRACE_ID, requestId: "req-w3c" });
  });

  it("continues B3: same trace id, a new span whose parent is the caller's span", async () => {
    received.length = 0;
    await request(clientFor("reviews"), "/ok/b3", { headers: { "x-b3-traceid": B3_TRACE_ID, "x-b3-spanid": B3_SPAN_ID, "x-b3-sampled": "1" } });
    const seen = received[0]!;
    expect(seen).toMatchObject({ "x-b3-traceid": B3_TRACE_ID, "x-b3-parentspanid": B3_SPAN_ID, "x-b3-sampled": "1" });
    expect(seen["x-b3-spanid"]).toMatch(/^[0-9a-f]{16}$/);
    expect(seen["x-b3-spanid"]).not.toBe(B3_SPAN_ID);
  });

  it("starts a sampled trace and a request id when none arrives, the ones its access line carries", async () => {
    received.length = 0;
    await request(clientFor("reviews"), "/ok/new");
    const seen = received[0]!;
    const line = accessLines.find((l) => l.path === "/ok/new")!;
    expect(seen.traceparent).toMatch(new RegExp(`^00-${String(line.traceId)}-[0-9a-f]{16}-01$`));
    expect(seen["x-b3-traceid"]).toBe(line.traceId);
    expect(seen["x-request-id"]).toBe(line.requestId);
  });
});
