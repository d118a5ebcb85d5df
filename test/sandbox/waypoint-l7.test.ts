// End to end on the sandbox: a waypoint Gateway's pod routes, retries, times out and authorizes HTTP for the Services bound to it (issue 13's Must-show).
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT_REQUIRED, ambit, enrollDemo, freshSandboxWithMesh, isRoot, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";
import {
  WAYPOINT_GATEWAY,
  apply,
  boundService,
  curl,
  echoDeployment,
  grpcCall,
  load,
  route,
  routeAccepted,
  serviceAccount,
  waitForWaypointAndPods,
  waypointPod,
} from "../support/waypoint.ts";

/** reviews-v1 and reviews-v2 (the echo backend), a Service for each and `reviews` selecting both. */
function reviewsManifests(): string {
  // One Service per test, so each test's routes and policies meet no other's.
  const v1Only = ["retries", "authz", "faults", "breaker", "counted", "grpc"];
  return [
    serviceAccount("reviews"),
    echoDeployment("reviews", "v1", "reviews"),
    echoDeployment("reviews", "v2", "reviews"),
    boundService("reviews", "{app: reviews}"),
    boundService("reviews-v1", "{app: reviews, version: v1}"),
    boundService("reviews-v2", "{app: reviews, version: v2}"),
    boundService("outlier", "{app: reviews}"),
    ...v1Only.map((name) => boundService(name, "{app: reviews, version: v1}")),
    WAYPOINT_GATEWAY,
  ].join("---\n");
}

/** istio_requests_total of the waypoint for one destination Service, summed by "code/flags". */
async function requestCounts(service: string): Promise<Record<string, number>> {
  const r = await ambit(["dev", "exec", `demo/${await waypointPod()}`, "--", "curl", "-s", "--max-time", "5", "http://127.0.0.1:15020/metrics"]);
  const counts: Record<string, number> = {};
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith("istio_requests_total{") || !line.includes(`destination_service_name="${service}"`)) continue;
    const code = /response_code="(\d+)"/.exec(line)?.[1];
    const flags = /response_flags="([^"]*)"/.exec(line)?.[1];
    const key = `${code}/${flags}`;
    counts[key] = (counts[key] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return counts;
}

/** A BackendTrafficPolicy on Service `target` with the given spec sections (YAML, indented as under `spec:`). */
const trafficPolicy = (name: string, target: string, sections: string) => `
apiVersion: networking.ambit.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: ${name}, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: ${target}}]
${sections}
`;

/** Waits until the policy's status says it is accepted for its target. */
async function policyAccepted(name: string): Promise<void> {
  await expect
    .poll(
      async () =>
        (await kubectl(["get", "backendtrafficpolicy", "-n", "demo", name, "-o", 'jsonpath={.status.ancestors[0].conditions[?(@.type=="Accepted")].status}']))
          .stdout,
      { timeout: 20_000 },
    )
    .toBe("True");
}

describeTier(isRoot, ROOT_REQUIRED)("waypoint L7 on the sandbox", () => {
  beforeAll(async () => {
    await freshSandboxWithMesh({}, { gatewayApi: true });
    await enrollDemo();
    await apply(reviewsManifests());
    await waitForWaypointAndPods("app=reviews", 2);
  }, 300_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("sends a bound Service's requests through the waypoint to its pods, which see the waypoint's identity (MeshBasic)", async () => {
    await expect.poll(async () => (await curl("http://reviews-v1.demo/hello")).status, { timeout: 20_000 }).toBe(200);
    const res = await curl("http://reviews-v1.demo/hello");
    expect(JSON.parse(res.body)).toMatchObject({ version: "v1", method: "GET", path: "/hello" });
    const logs = (await kubectl(["logs", "-n", "demo", "deploy/waypoint"])).stdout;
    expect(logs).toMatch(/"path":"\/hello".*"source":"spiffe:\/\/cluster.local\/ns\/demo\/sa\/orders".*"status":200/);
  });

  it("matches path, header, query and method with the spec's precedence, and modifies headers both ways (MeshHTTPRouteMatching, header modifiers)", async () => {
    await apply(
      route(
        "reviews-match",
        "reviews",
        `  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: reviews-v2, port: 80}]
  - matches: [{headers: [{name: version, value: two}]}]
    backendRefs: [{name: reviews-v2, port: 80}]
  - matches: [{queryParams: [{name: v, value: "2"}]}, {method: DELETE}]
    backendRefs: [{name: reviews-v2, port: 80}]
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-set, value: by-route}], add: [{name: x-added, value: added}], remove: [x-secret]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-route, value: reviews-match}]}
    backendRefs: [{name: reviews-v1, port: 80}]`,
      ),
    );
    await routeAccepted("reviews-match");
    await expect.poll(async () => (await curl("http://reviews.demo/v2/x")).headers, { timeout: 20_000 }).toMatch(/x-version: v2/i);
    expect((await curl("http://reviews.demo/", ["-H", "version: two"])).headers).toMatch(/x-version: v2/i);
    expect((await curl("http://reviews.demo/?v=2")).headers).toMatch(/x-version: v2/i);
    expect((await curl("http://reviews.demo/", ["-X", "DELETE"])).headers).toMatch(/x-version: v2/i);
    const plain = await curl("http://reviews.demo/other", ["-H", "x-secret: s3cret", "-H", "x-set: from-client"]);
    expect(plain.headers).toMatch(/x-version: v1/i);
    expect(plain.headers).toMatch(/x-route: reviews-match/i);
    const seen = (JSON.parse(plain.body) as { headers: Record<string, string> }).headers;
    expect(seen).toMatchObject({ "x-set": "by-route", "x-added": "added" });
    expect(seen["x-secret"]).toBeUndefined();
  });

  it("redirects with the route's host and status (MeshHTTPRouteRedirectHostAndStatus)", async () => {
    await apply(
      route(
        "reviews-v2-redirect",
        "reviews-v2",
        `  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, statusCode: 301}}]
  - backendRefs: [{name: reviews-v2, port: 80}]`,
      ),
    );
    await routeAccepted("reviews-v2-redirect");
    await expect.poll(async () => (await curl("http://reviews-v2.demo/old/page")).status, { timeout: 20_000 }).toBe(301);
    expect((await curl("http://reviews-v2.demo/old/page")).headers).toMatch(/^location: http:\/\/example\.org\/old\/page\r?$/im);
    expect((await curl("http://reviews-v2.demo/new")).status).toBe(200);
  });

  it("splits 90/10 between two versions: over 2,000 requests the minor share is 10% +/- 2% (MeshHTTPRouteWeight)", async () => {
    await apply(route("reviews-split", "reviews-v1", `  - backendRefs: [{name: reviews-v1, port: 80, weight: 90}, {name: reviews-v2, port: 80, weight: 10}]`));
    await routeAccepted("reviews-split");
    await expect.poll(async () => (await load("http://reviews-v1.demo/split", ["--count", "100"])).versions.v2 ?? 0, { timeout: 20_000 }).toBeGreaterThan(0);
    const run = await load("http://reviews-v1.demo/split", ["--count", "2000", "--concurrency", "4"]);
    expect(run.statuses).toEqual({ "200": 2000 });
    const minor = (run.versions.v2 ?? 0) / 2000;
    expect(minor).toBeGreaterThanOrEqual(0.08);
    expect(minor).toBeLessThanOrEqual(0.12);
  });
  it("retries a backend that answers 503 twice, retries an attempt past its per-try timeout, and answers 504 at the request timeout", async () => {
    await apply(
      route(
        "retries",
        "retries",
        `  - matches: [{path: {type: PathPrefix, value: /flaky}}]
    backendRefs: [{name: retries, port: 80}]
    retry: {codes: [503], attempts: 2, backoff: 10ms}
  - matches: [{path: {type: PathPrefix, value: /slow-once}}]
    backendRefs: [{name: retries, port: 80}]
    timeouts: {request: 5s, backendRequest: 300ms}
    retry: {codes: [503], attempts: 2, backoff: 10ms}
  - matches: [{path: {type: PathPrefix, value: /delay}}]
    backendRefs: [{name: retries, port: 80}]
    timeouts: {request: 500ms}`,
      ),
    );
    await routeAccepted("retries");
    // Until the route is in the waypoint's config, /flaky/probe-N answers its first 503.
    await expect.poll(async () => (await curl(`http://retries.demo/flaky/probe-${Date.now()}/1`)).status, { timeout: 20_000 }).toBe(200);
    expect((await curl("http://retries.demo/flaky/twice/2")).status).toBe(200);
    const slow = await load("http://retries.demo/slow-once/first/2000");
    expect(slow.statuses).toEqual({ "200": 1 });
    // The first attempt was cut at 300 ms, the second answered at once: well under the 2 s the first would have taken.
    expect(slow.p50).toBeGreaterThanOrEqual(300);
    expect(slow.p50).toBeLessThan(1_500);
    const timedOut = await load("http://retries.demo/delay/3000");
    expect(timedOut.statuses).toEqual({ "504": 1 });
    expect(timedOut.p50).toBeGreaterThanOrEqual(500);
    expect(timedOut.p50).toBeLessThanOrEqual(600);
    expect(await requestCounts("retries")).toMatchObject({ "504/UT": 1 });
  });

  it("denies POST /admin with 403 while GET / passes from the same source, and a DENY applied during a keep-alive connection denies its next request", async () => {
    const policy = (name: string, rules: string) => `
apiVersion: security.ambit.dev/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: authz}]
  action: DENY
  rules:
${rules}
`;
    await apply(policy("deny-admin", "  - to: [{operation: {methods: [POST], paths: [/admin*]}}]"));
    await expect.poll(async () => (await curl("http://authz.demo/admin/users", ["-X", "POST"])).status, { timeout: 20_000 }).toBe(403);
    expect((await curl("http://authz.demo/admin/users", ["-X", "POST"])).body).toBe("RBAC: access denied");
    expect((await curl("http://authz.demo/")).status).toBe(200);
    expect((await curl("http://authz.demo/admin/users")).status).toBe(200);

    // One connection, a request every 100 ms until one is denied; the DENY goes in after the first requests passed.
    const live = load("http://authz.demo/live", ["--until-status", "403", "--interval-ms", "100", "--timeout-ms", "30000"]);
    await expect
      .poll(async () => (await kubectl(["logs", "-n", "demo", await waypointPod(), "--tail", "200"])).stdout.includes('"path":"/live"'), { timeout: 20_000 })
      .toBe(true);
    await apply(policy("deny-live", "  - to: [{operation: {paths: [/live]}}]"));
    const run = await live;
    expect(run.sequence!.at(-1)).toBe(403);
    expect(run.sequence!.filter((code) => code === 200).length).toBeGreaterThan(0);
    expect(run.sequence!.every((code) => code === 200 || code === 403)).toBe(true);
    expect(run.connections).toBe(1);
  });

  it("aborts 50% +/- 5% of 1,000 requests with the fault's status, then delays every request by 100 ms (p50 >= 100 ms)", async () => {
    await apply(trafficPolicy("faults", "faults", "  faultInjection:\n    abort: {httpStatus: 503, percentage: 50}"));
    await policyAccepted("faults");
    await expect.poll(async () => (await load("http://faults.demo/", ["--count", "40"])).statuses["503"] ?? 0, { timeout: 20_000 }).toBeGreaterThan(0);
    const aborted = await load("http://faults.demo/", ["--count", "1000", "--concurrency", "4"]);
    const share = (aborted.statuses["503"] ?? 0) / 1000;
    expect(share).toBeGreaterThanOrEqual(0.45);
    expect(share).toBeLessThanOrEqual(0.55);
    expect((aborted.statuses["503"] ?? 0) + (aborted.statuses["200"] ?? 0)).toBe(1000);
    expect((await requestCounts("faults"))["503/FI"]).toBeGreaterThanOrEqual(aborted.statuses["503"]!);

    await apply(trafficPolicy("faults", "faults", "  faultInjection:\n    delay: {fixedDelay: 100ms, percentage: 100}"));
    await expect.poll(async () => (await load("http://faults.demo/", ["--count", "5"])).statuses["200"] ?? 0, { timeout: 20_000 }).toBe(5);
    const delayed = await load("http://faults.demo/", ["--count", "50"]);
    expect(delayed.statuses).toEqual({ "200": 50 });
    expect(delayed.p50).toBeGreaterThanOrEqual(100);
  });

  it("circuit breaker: past max pending requests, extra requests get 503 with flag UO", async () => {
    await apply(trafficPolicy("breaker", "breaker", "  circuitBreaker: {maxConnections: 1, maxPendingRequests: 1}"));
    await policyAccepted("breaker");
    // Six at once, each held 1.5 s by the backend: one is served, one waits for its connection, four overflow.
    await expect
      .poll(async () => (await load("http://breaker.demo/delay/1500", ["--count", "6", "--concurrency", "6"])).statuses, { timeout: 30_000 })
      .toEqual({ "200": 2, "503": 4 });
    expect((await requestCounts("breaker"))["503/UO"]).toBeGreaterThanOrEqual(4);
  });

  it("outlier detection ejects a failing endpoint, traffic moves to the healthy one, and the endpoint returns after the ejection time", async () => {
    await apply(
      trafficPolicy(
        "outlier",
        "outlier",
        "  healthCheck:\n    passive: {consecutive5XxErrors: 3, interval: 1s, baseEjectionTime: 4s, maxEjectionPercent: 50}\n  loadBalancer: {type: RoundRobin}",
      ),
    );
    await policyAccepted("outlier");
    const v2 = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=reviews,version=v2", "-o", "jsonpath={.items[0].metadata.name}"])).stdout;
    const setFailing = (on: boolean) =>
      ambit(["dev", "exec", `demo/${v2}`, "--", "curl", "-s", "-X", "POST", `http://127.0.0.1:8080/control/fail/${on ? "on" : "off"}`]);
    await setFailing(true);
    try {
      // Round robin alternates until v2 has failed three times in a row; then only v1 answers.
      const first = await load("http://outlier.demo/", ["--count", "40"]);
      expect(first.statuses["503"]).toBe(3);
      expect(first.versions.v1).toBe(37);
      const ejectedAt = Date.now();
      const during = await load("http://outlier.demo/", ["--count", "20"]);
      if (Date.now() - ejectedAt < 3_500) expect(during.statuses).toEqual({ "200": 20 });
      // After the ejection time v2 is offered again (and fails again).
      await expect.poll(async () => (await load("http://outlier.demo/", ["--count", "4"])).statuses["503"] ?? 0, { timeout: 20_000 }).toBeGreaterThan(0);
      // ejectedAt is taken after the 40 requests, which end within about a second of the ejection.
      expect(Date.now() - ejectedAt).toBeGreaterThanOrEqual(3_000);
    } finally {
      await setFailing(false);
    }
  });

  it("request metrics count exactly the requests sent, by response_code; trace headers arrive with the same trace id and a new parent id", async () => {
    for (let i = 0; i < 5; i++) expect((await curl("http://counted.demo/status/418")).status).toBe(418);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const traced = await curl("http://counted.demo/", [
      "-H",
      `traceparent: 00-${traceId}-00f067aa0ba902b7-01`,
      "-H",
      "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7",
      "-H",
      "x-b3-spanid: e457b5a2e4d86bd1",
      "-H",
      "x-b3-sampled: 1",
    ]);
    expect(traced.status).toBe(200);
    const seen = (JSON.parse(traced.body) as { headers: Record<string, string> }).headers;
    expect(seen.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(seen.traceparent).not.toContain("00f067aa0ba902b7");
    expect(seen["x-b3-traceid"]).toBe("80f198ee56343ba864fe8b2a57d3eff7");
    expect(seen["x-b3-parentspanid"]).toBe("e457b5a2e4d86bd1");
    expect(seen["x-b3-spanid"]).not.toBe("e457b5a2e4d86bd1");
    expect(await requestCounts("counted")).toEqual({ "418/-": 5, "200/-": 1 });
  });

  it("routes gRPC unary and server-streaming calls by GRPCRoute method matches", async () => {
    await apply(`
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: grpc, port: 80}]
  rules:
  - matches: [{method: {service: test.Echo, method: Stream}}]
    backendRefs: [{name: reviews-v2, port: 80}]
  - backendRefs: [{name: reviews-v1, port: 80}]
`);
    const call = (method: string) => grpcCall("grpc.demo:80", method, "hi");
    await expect.poll(async () => (await call("test.Echo/Stream")).version, { timeout: 20_000 }).toBe("v2");
    expect(await call("test.Echo/Stream")).toMatchObject({ status: 200, grpcStatus: "0", messages: ["v2:hi:1", "v2:hi:2", "v2:hi:3"] });
    expect(await call("test.Echo/Unary")).toMatchObject({ status: 200, grpcStatus: "0", messages: ["v1:hi"], version: "v1" });
  });
});
