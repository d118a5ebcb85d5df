// Rule selection: Gateway API precedence and its tie-breaks, consumer over producer routes, gRPC matching, weights (0 and distribution), mirrors.
import { describe, expect, it } from "vitest";
import type { MeshRoute } from "../../waypoint/routing/index.ts";
import { compileRoutes, RoutingTable } from "../../waypoint/routing/index.ts";
import { CONSUMER_NS, MESH_NS, meshContext, seededRandom, send } from "../support/gamma.ts";

type Rule = NonNullable<Extract<MeshRoute, { kind: "HTTPRoute" }>["spec"]>["rules"];
const route = (name: string, rules: Rule, opts: { namespace?: string; created?: string } = {}): MeshRoute => ({
  kind: "HTTPRoute",
  metadata: { namespace: opts.namespace ?? MESH_NS, name, creationTimestamp: opts.created ?? "2026-01-01T00:00:00Z" },
  spec: { parentRefs: [{ group: "", kind: "Service", name: "echo", namespace: MESH_NS, port: 80 }], rules },
});
const to = (service: string) => [{ name: service, port: 80 }];
const table = (...routes: MeshRoute[]) => new RoutingTable(compileRoutes(routes, meshContext()).servicePorts);
const backendOf = (t: RoutingTable, req: Parameters<typeof send>[1] = {}) => {
  const plan = send(t, req);
  return plan.action === "forward" ? `${plan.route.name}#${plan.route.ruleIndex}→${plan.backend.service}` : plan.action;
};

describe("precedence within and across routes", () => {
  it.each([
    [
      "Exact beats a longer PathPrefix",
      [
        { matches: [{ path: { type: "PathPrefix", value: "/a/b" } }], backendRefs: to("echo-v1") },
        { matches: [{ path: { type: "Exact", value: "/a/b" } }], backendRefs: to("echo-v2") },
      ],
      "/a/b",
      {},
      "echo-v2",
    ],
    [
      "the longest PathPrefix wins",
      [
        { matches: [{ path: { value: "/a" } }], backendRefs: to("echo-v1") },
        { matches: [{ path: { value: "/a/b" } }], backendRefs: to("echo-v2") },
      ],
      "/a/b/c",
      {},
      "echo-v2",
    ],
    [
      "a method beats headers",
      [
        {
          matches: [
            {
              headers: [
                { name: "x", value: "1" },
                { name: "y", value: "2" },
              ],
            },
          ],
          backendRefs: to("echo-v1"),
        },
        { matches: [{ method: "GET" }], backendRefs: to("echo-v2") },
      ],
      "/",
      { x: "1", y: "2" },
      "echo-v2",
    ],
    [
      "more headers beat fewer",
      [
        { matches: [{ headers: [{ name: "x", value: "1" }] }], backendRefs: to("echo-v1") },
        {
          matches: [
            {
              headers: [
                { name: "x", value: "1" },
                { name: "y", value: "2" },
              ],
            },
          ],
          backendRefs: to("echo-v2"),
        },
      ],
      "/",
      { x: "1", y: "2" },
      "echo-v2",
    ],
    [
      "headers beat query parameters",
      [
        { matches: [{ queryParams: [{ name: "q", value: "1" }] }], backendRefs: to("echo-v1") },
        { matches: [{ headers: [{ name: "x", value: "1" }] }], backendRefs: to("echo-v2") },
      ],
      "/?q=1",
      { x: "1" },
      "echo-v2",
    ],
    [
      "more query parameters beat fewer",
      [
        { matches: [{ queryParams: [{ name: "q", value: "1" }] }], backendRefs: to("echo-v1") },
        {
          matches: [
            {
              queryParams: [
                { name: "q", value: "1" },
                { name: "r", value: "2" },
              ],
            },
          ],
          backendRefs: to("echo-v2"),
        },
      ],
      "/?q=1&r=2",
      {},
      "echo-v2",
    ],
    [
      "a PathPrefix beats a regular expression",
      [
        { matches: [{ path: { type: "RegularExpression", value: "/a/.*" } }], backendRefs: to("echo-v1") },
        { matches: [{ path: { value: "/a" } }], backendRefs: to("echo-v2") },
      ],
      "/a/b",
      {},
      "echo-v2",
    ],
    [
      "equal matches: the first rule",
      [
        { matches: [{ path: { value: "/a" } }], backendRefs: to("echo-v1") },
        { matches: [{ path: { value: "/a/" } }], backendRefs: to("echo-v2") },
      ],
      "/a",
      {},
      "echo-v1",
    ],
  ] as const)("%s", (_title, rules, path, headers, backend) => {
    expect(backendOf(table(route("r", rules as unknown as Rule)), { path, headers })).toMatch(new RegExp(`→${backend}$`));
  });

  it("ties across routes: the older route, then namespace/name alphabetically, whatever the input order", () => {
    const rules: Rule = [{ matches: [{ path: { value: "/a" } }], backendRefs: to("echo-v1") }];
    const older = route("zeta", rules, { created: "2025-06-01T00:00:00Z" });
    const newer = route("alpha", rules, { created: "2026-06-01T00:00:00Z" });
    expect(backendOf(table(newer, older), { path: "/a" })).toBe("zeta#0→echo-v1");
    const sameAge = [route("b", rules), route("a", rules)];
    expect(backendOf(table(...sameAge), { path: "/a" })).toBe("a#0→echo-v1");
  });

  it("precedence is across routes before age: a newer route's longer prefix wins", () => {
    const older = route("old", [{ matches: [{ path: { value: "/a" } }], backendRefs: to("echo-v1") }], { created: "2020-01-01T00:00:00Z" });
    const newer = route("new", [{ matches: [{ path: { value: "/a/b" } }], backendRefs: to("echo-v2") }]);
    expect(backendOf(table(older, newer), { path: "/a/b" })).toBe("new#0→echo-v2");
  });

  it("header names match case-insensitively, values exactly; regexes match the whole value", () => {
    const t = table(
      route("r", [
        { matches: [{ headers: [{ name: "X-Env", value: "prod" }] }], backendRefs: to("echo-v1") },
        { matches: [{ headers: [{ name: "x-user", type: "RegularExpression", value: "a[0-9]+" }] }], backendRefs: to("echo-v2") },
      ]),
    );
    expect(backendOf(t, { headers: { "x-env": "prod" } })).toBe("r#0→echo-v1");
    expect(send(t, { headers: { "x-env": "Prod" } })).toMatchObject({ status: 404 });
    expect(backendOf(t, { headers: { "x-user": "a42" } })).toBe("r#1→echo-v2");
    expect(send(t, { headers: { "x-user": "ba42" } })).toMatchObject({ status: 404 });
  });
});

describe("consumer and producer routes (GEP-1294)", () => {
  const producer = route("producer", [{ backendRefs: to("echo-v1") }]);
  // A backendRef without namespace means the route's own: the consumer names the Service's namespace explicitly.
  const consumer = route("consumer", [{ matches: [{ path: { value: "/only" } }], backendRefs: [{ name: "echo-v2", namespace: MESH_NS, port: 80 }] }], {
    namespace: CONSUMER_NS,
  });
  const t = table(producer, consumer);
  it("clients in the consumer route's namespace use it", () => expect(backendOf(t, { client: CONSUMER_NS, path: "/only" })).toBe("consumer#0→echo-v2"));
  it("and only it: no fallback to producer routes when its rules do not match", () =>
    expect(send(t, { client: CONSUMER_NS, path: "/other" })).toMatchObject({ status: 404 }));
  it("clients elsewhere use the producer routes", () => expect(backendOf(t, { client: "other", path: "/only" })).toBe("producer#0→echo-v1"));
});

describe("gRPC matching", () => {
  const grpc = (path: string, headers: Record<string, string> = {}) => ({ method: "POST", path, headers: { "content-type": "application/grpc", ...headers } });
  const t = new RoutingTable(
    compileRoutes(
      [
        {
          kind: "GRPCRoute",
          metadata: { namespace: MESH_NS, name: "g" },
          spec: {
            parentRefs: [{ group: "", kind: "Service", name: "echo", port: 80 }],
            rules: [
              { matches: [{ method: { service: "pkg.Echo" } }], backendRefs: to("echo-v1") },
              { matches: [{ method: { service: "pkg.Echo", method: "Stream" } }], backendRefs: to("echo-v2") },
              { matches: [{ method: { type: "RegularExpression", service: "pkg\\..*", method: "Get.*" } }], backendRefs: to("echo") },
            ],
          },
        },
        route("http", [{ backendRefs: to("echo") }]),
      ],
      meshContext(),
    ).servicePorts,
  );
  it.each([
    ["/pkg.Echo/Unary", "g#0→echo-v1"],
    ["/pkg.Echo/Stream", "g#1→echo-v2"],
    ["/pkg.Other/GetThing", "g#2→echo"],
  ])("%s → %s", (path, expected) => expect(backendOf(t, grpc(path))).toBe(expected));
  it("a gRPC call no GRPCRoute rule matches is 404, not taken by the HTTPRoute (the kinds never merge)", () => {
    expect(send(t, grpc("/pkg.Other/Put"))).toMatchObject({ action: "respond", status: 404, protocol: "grpc" });
  });
  it("plain HTTP to the same port uses the HTTPRoute", () => expect(backendOf(t, { path: "/pkg.Echo/Unary" })).toBe("http#0→echo"));
});

describe("weights", () => {
  it("weight 0 everywhere answers 500, as does a rule without backends", () => {
    expect(send(table(route("r", [{ backendRefs: [{ name: "echo-v1", port: 80, weight: 0 }] }])))).toMatchObject({
      action: "respond",
      status: 500,
      reason: "no-backend",
    });
    expect(send(table(route("r", [{ matches: [{ path: { value: "/" } }] }])))).toMatchObject({ action: "respond", status: 500, reason: "no-backend" });
  });

  it("a seeded 1:2:7 split lands within 1.5% of each share over 20,000 requests, and is the same run after run", () => {
    const t = table(
      route("r", [
        {
          backendRefs: [
            { name: "echo", port: 80, weight: 1 },
            { name: "echo-v1", port: 80, weight: 2 },
            { name: "echo-v2", port: 80, weight: 7 },
            { name: "echo-v2", port: 8080, weight: 0 },
          ],
        },
      ]),
    );
    const run = () => {
      const random = seededRandom(42);
      const counts: Record<string, number> = {};
      for (let i = 0; i < 20_000; i++) {
        const plan = send(t, {}, random);
        if (plan.action !== "forward") throw new Error(plan.action);
        const key = `${plan.backend.service}:${plan.backend.port}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      return counts;
    };
    const counts = run();
    expect(Object.keys(counts).sort()).toEqual(["echo-v1:80", "echo-v2:80", "echo:80"]);
    expect(Math.abs((counts["echo:80"] ?? 0) / 20_000 - 0.1)).toBeLessThan(0.015);
    expect(Math.abs((counts["echo-v1:80"] ?? 0) / 20_000 - 0.2)).toBeLessThan(0.015);
    expect(Math.abs((counts["echo-v2:80"] ?? 0) / 20_000 - 0.7)).toBeLessThan(0.015);
    expect(run()).toEqual(counts);
  });

  it("the random source decides at the share boundaries", () => {
    const t = table(
      route("r", [
        {
          backendRefs: [
            { name: "echo-v1", port: 80, weight: 1 },
            { name: "echo-v2", port: 80, weight: 1 },
          ],
        },
      ]),
    );
    const at = (x: number) => {
      const plan = send(t, {}, () => x);
      return plan.action === "forward" ? plan.backend.service : plan.action;
    };
    expect([at(0), at(0.4999), at(0.5), at(0.9999)]).toEqual(["echo-v1", "echo-v1", "echo-v2", "echo-v2"]);
  });
});

describe("mirrors, timeouts and retries reach the plan", () => {
  it("a RequestMirror at 50% mirrors when the random source says so; the rule's timeouts and retry come along", () => {
    const t = table(
      route("r", [
        {
          filters: [{ type: "RequestMirror", requestMirror: { backendRef: { name: "echo-v2", port: 80 }, percent: 50 } }],
          backendRefs: to("echo-v1"),
          timeouts: { request: "2s" },
          retry: { codes: [503], attempts: 3 },
        },
      ]),
    );
    const low = send(t, {}, () => 0.1);
    const high = send(t, {}, () => 0.9);
    expect(low).toMatchObject({
      action: "forward",
      mirrors: [{ namespace: MESH_NS, service: "echo-v2", port: 80 }],
      timeouts: { requestMs: 2000 },
      retry: { codes: [503], attempts: 3 },
    });
    expect(high).toMatchObject({ action: "forward", mirrors: [] });
  });
});
