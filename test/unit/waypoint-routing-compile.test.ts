// Route compilation: every validation error code with its field path, and the status conditions (Accepted, ResolvedRefs, PartiallyInvalid) the controller writes.
import { describe, expect, it } from "vitest";
import { compileRoute, compileRoutes, type HTTPRoute, type MeshRoute, RouteErrorCode, RoutingTable } from "../../waypoint/routing/index.ts";
import { CONSUMER_NS, MESH_NS, meshContext, send } from "../support/gamma.ts";

type Rules = NonNullable<HTTPRoute["spec"]>["rules"];
const httpRoute = (rules: Rules, parentRefs: object[] = [{ group: "", kind: "Service", name: "echo", port: 80 }]): HTTPRoute => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "HTTPRoute",
  metadata: { namespace: MESH_NS, name: "r", creationTimestamp: "2026-01-01T00:00:00Z", generation: 3 },
  spec: { parentRefs, rules },
});
const toV1 = [{ name: "echo-v1", port: 8080 }];
const condition = (r: ReturnType<typeof compileRoute>, type: string) => r.parents[0]?.conditions.find((c) => c.type === type);

describe("route validation: each error code names the field", () => {
  const cases: [string, RouteErrorCode, Rules, string][] = [
    [
      "an empty header match value",
      RouteErrorCode.malformed,
      [{ matches: [{ headers: [{ name: "v", value: "" }] }], backendRefs: toV1 }],
      "spec.rules[0].matches[0].headers[0].value",
    ],
    [
      "an unknown path type",
      RouteErrorCode.unsupportedValue,
      [{ matches: [{ path: { type: "Prefix", value: "/" } }], backendRefs: toV1 }],
      "spec.rules[0].matches[0].path.type",
    ],
    ["an unknown method", RouteErrorCode.unsupportedValue, [{ matches: [{ method: "get" }], backendRefs: toV1 }], "spec.rules[0].matches[0].method"],
    ["an unknown filter type", RouteErrorCode.unsupportedValue, [{ filters: [{ type: "Bogus" }], backendRefs: toV1 }], "spec.rules[0].filters[0].type"],
    [
      "a 304 redirect",
      RouteErrorCode.unsupportedValue,
      [{ filters: [{ type: "RequestRedirect", requestRedirect: { statusCode: 304 } }] }],
      "spec.rules[0].filters[0].requestRedirect.statusCode",
    ],
    [
      "a relative path",
      RouteErrorCode.invalidPath,
      [{ matches: [{ path: { value: "/ok" } }, { path: { type: "PathPrefix", value: "foo" } }], backendRefs: toV1 }],
      "spec.rules[0].matches[1].path.value",
    ],
    [
      "a path with //",
      RouteErrorCode.invalidPath,
      [{ matches: [{ path: { type: "Exact", value: "/a//b" } }], backendRefs: toV1 }],
      "spec.rules[0].matches[0].path.value",
    ],
    [
      "a regex that does not compile",
      RouteErrorCode.invalidRegex,
      [{ matches: [{ path: { type: "RegularExpression", value: "/(a" } }], backendRefs: toV1 }],
      "spec.rules[0].matches[0].path.value",
    ],
    [
      "a header name with a space",
      RouteErrorCode.invalidHeader,
      [{ filters: [{ type: "RequestHeaderModifier", requestHeaderModifier: { set: [{ name: "x y", value: "1" }] } }], backendRefs: toV1 }],
      "spec.rules[0].filters[0].requestHeaderModifier.set[0].name",
    ],
    [
      "one header both set and removed",
      RouteErrorCode.invalidHeader,
      [{ filters: [{ type: "RequestHeaderModifier", requestHeaderModifier: { set: [{ name: "X-A", value: "1" }], remove: ["x-a"] } }], backendRefs: toV1 }],
      "spec.rules[0].filters[0].requestHeaderModifier.remove[0]",
    ],
    [
      "an upper-case redirect hostname",
      RouteErrorCode.invalidHostname,
      [{ filters: [{ type: "RequestRedirect", requestRedirect: { hostname: "Example.org" } }] }],
      "spec.rules[0].filters[0].requestRedirect.hostname",
    ],
    [
      "redirect and rewrite together",
      RouteErrorCode.incompatibleFilters,
      [
        {
          filters: [
            { type: "RequestRedirect", requestRedirect: {} },
            { type: "URLRewrite", urlRewrite: {} },
          ],
        },
      ],
      "spec.rules[0].filters",
    ],
    [
      "a redirect with backends",
      RouteErrorCode.incompatibleFilters,
      [{ filters: [{ type: "RequestRedirect", requestRedirect: {} }], backendRefs: toV1 }],
      "spec.rules[0].filters",
    ],
    [
      "a repeated RequestHeaderModifier",
      RouteErrorCode.incompatibleFilters,
      [
        {
          filters: [
            { type: "RequestHeaderModifier", requestHeaderModifier: {} },
            { type: "RequestHeaderModifier", requestHeaderModifier: {} },
          ],
          backendRefs: toV1,
        },
      ],
      "spec.rules[0].filters[1].type",
    ],
    [
      "ReplacePrefixMatch with an Exact match",
      RouteErrorCode.incompatibleFilters,
      [
        {
          matches: [{ path: { type: "Exact", value: "/a" } }],
          filters: [{ type: "URLRewrite", urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/b" } } }],
          backendRefs: toV1,
        },
      ],
      "spec.rules[0].filters[0].urlRewrite.path",
    ],
    ["a duration without unit", RouteErrorCode.invalidDuration, [{ timeouts: { request: "10" }, backendRefs: toV1 }], "spec.rules[0].timeouts.request"],
    [
      "backendRequest longer than request",
      RouteErrorCode.invalidDuration,
      [{ timeouts: { request: "1s", backendRequest: "2s" }, backendRefs: toV1 }],
      "spec.rules[0].timeouts.backendRequest",
    ],
    ["retry on 200", RouteErrorCode.invalidRetry, [{ retry: { codes: [200] }, backendRefs: toV1 }], "spec.rules[0].retry.codes[0]"],
    ["zero attempts", RouteErrorCode.invalidRetry, [{ retry: { attempts: 0 }, backendRefs: toV1 }], "spec.rules[0].retry.attempts"],
    ["a Service backend without port", RouteErrorCode.invalidBackend, [{ backendRefs: [{ name: "echo-v1" }] }], "spec.rules[0].backendRefs[0].port"],
    ["a negative weight", RouteErrorCode.invalidBackend, [{ backendRefs: [{ name: "echo-v1", port: 80, weight: -1 }] }], "spec.rules[0].backendRefs[0].weight"],
  ];
  it.each(cases)("%s: %s at %s", (_title, code, rules, path) => {
    const r = compileRoute(httpRoute(rules), meshContext());
    expect(r.errors.map((e) => [e.code, e.path])).toContainEqual([code, path]);
    expect(r.errors[0]?.message.startsWith(`${r.errors[0].path}: `)).toBe(true);
    expect(r.route).toBeUndefined();
    expect(condition(r, "Accepted")).toMatchObject({
      status: "False",
      reason: code === RouteErrorCode.incompatibleFilters ? "IncompatibleFilters" : "UnsupportedValue",
    });
  });

  it('reads as the API server would say it: spec.rules[0].matches[1].path.value: must start with "/"', () => {
    const r = compileRoute(httpRoute([{ matches: [{ path: { value: "/ok" } }, { path: { value: "foo" } }], backendRefs: toV1 }]), meshContext());
    expect(r.errors[0]?.message).toBe('spec.rules[0].matches[1].path.value: must start with "/"');
  });

  it.each([
    [
      "a repeated rule name",
      RouteErrorCode.duplicateRuleName,
      httpRoute([
        { name: "a", backendRefs: toV1 },
        { name: "a", backendRefs: toV1 },
      ]),
      "spec.rules[1].name",
    ],
    ["17 rules", RouteErrorCode.tooMany, httpRoute(Array.from({ length: 17 }, () => ({ backendRefs: toV1 }))), "spec.rules"],
    [
      "a parentRef port of 0",
      RouteErrorCode.invalidParent,
      httpRoute([{ backendRefs: toV1 }], [{ group: "", kind: "Service", name: "echo", port: 0 }]),
      "spec.parentRefs[0].port",
    ],
    [
      "a repeated parentRef",
      RouteErrorCode.invalidParent,
      httpRoute(
        [{ backendRefs: toV1 }],
        [
          { group: "", kind: "Service", name: "echo" },
          { group: "", kind: "Service", name: "echo" },
        ],
      ),
      "spec.parentRefs[1]",
    ],
    ["a route without name", RouteErrorCode.malformed, { ...httpRoute([]), metadata: { namespace: MESH_NS } }, "metadata"],
  ] as const)("route-wide: %s (%s at %s) rejects the whole route", (_title, code, route, path) => {
    const r = compileRoute(route as MeshRoute, meshContext());
    expect(r.errors.map((e) => [e.code, e.path, e.rule])).toContainEqual([code, path, undefined]);
    expect(r.route).toBeUndefined();
  });

  it.each([
    ["neither service nor method", { method: {} }, "spec.rules[0].matches[0].method"],
    ["a service with a slash", { method: { service: "a/b" } }, "spec.rules[0].matches[0].method.service"],
  ])("gRPC method match with %s: %s", (_title, match, path) => {
    const route: MeshRoute = {
      kind: "GRPCRoute",
      metadata: { namespace: MESH_NS, name: "g" },
      spec: { parentRefs: [{ group: "", kind: "Service", name: "echo" }], rules: [{ matches: [match], backendRefs: [{ name: "echo-v1", port: 7070 }] }] },
    };
    expect(compileRoute(route, meshContext()).errors.map((e) => [e.code, e.path])).toContainEqual([RouteErrorCode.invalidGrpcMethod, path]);
  });
});

describe("route status", () => {
  it("a valid route is Accepted and ResolvedRefs, with the generation it saw", () => {
    const r = compileRoute(httpRoute([{ backendRefs: toV1 }]), meshContext());
    expect(r.parents).toEqual([
      {
        parentRef: { group: "", kind: "Service", name: "echo", port: 80 },
        controllerName: "ambit.dev/waypoint-controller",
        conditions: [
          {
            type: "Accepted",
            status: "True",
            reason: "Accepted",
            message: "attached to port 80 of Service gateway-conformance-mesh/echo",
            observedGeneration: 3,
          },
          { type: "ResolvedRefs", status: "True", reason: "ResolvedRefs", message: "all backend references resolved", observedGeneration: 3 },
        ],
      },
    ]);
    expect(r.attachments).toEqual([{ namespace: MESH_NS, service: "echo", port: 80, consumer: false }]);
  });

  it("an invalid rule is dropped, the others kept: Accepted with PartiallyInvalid naming the rule", () => {
    const r = compileRoute(httpRoute([{ backendRefs: toV1 }, { name: "bad", matches: [{ path: { value: "x" } }], backendRefs: toV1 }]), meshContext());
    expect(r.route?.rules.map((rule) => rule.index)).toEqual([0]);
    expect(condition(r, "Accepted")?.status).toBe("True");
    expect(condition(r, "PartiallyInvalid")).toMatchObject({ status: "True", reason: "UnsupportedValue" });
    expect(condition(r, "PartiallyInvalid")?.message).toMatch(
      /^Dropped Rule\(s\) 1 \(bad\): spec\.rules\[1\]\.matches\[0\]\.path\.value: must start with "\/"/,
    );
  });

  it.each([
    ["a missing Service", [{ name: "nope", port: 80 }], "BackendNotFound"],
    ["a missing port", [{ name: "echo-v1", port: 81 }], "BackendNotFound"],
    ["a kind other than Service", [{ group: "example.com", kind: "Bucket", name: "b" }], "InvalidKind"],
  ])("%s: ResolvedRefs=False %s, the route still accepted, and that backend's share answered 500", (_title, backendRefs, reason) => {
    const route = httpRoute([{ backendRefs }]);
    const r = compileRoute(route, meshContext());
    expect(condition(r, "Accepted")?.status).toBe("True");
    expect(condition(r, "ResolvedRefs")).toMatchObject({ status: "False", reason });
    const table = new RoutingTable(compileRoutes([route], meshContext()).servicePorts);
    expect(send(table, {})).toMatchObject({ action: "respond", status: 500, reason: "backend-unresolved" });
  });

  it("a cross-namespace backend needs nothing by default (GEP-1294) but RefNotPermitted when a ReferenceGrant check refuses", () => {
    const route = httpRoute(
      [{ backendRefs: [{ name: "echo-v1", namespace: MESH_NS, port: 80 }] }],
      [{ group: "", kind: "Service", name: "echo", namespace: MESH_NS }],
    );
    const consumer = { ...route, metadata: { ...route.metadata, namespace: CONSUMER_NS } };
    expect(condition(compileRoute(consumer, meshContext()), "ResolvedRefs")?.status).toBe("True");
    const refused = compileRoute(consumer, { ...meshContext(), referencePermitted: () => false });
    expect(condition(refused, "ResolvedRefs")).toMatchObject({ status: "False", reason: "RefNotPermitted" });
  });

  it("a mirror to a missing Service is dropped, not the rule", () => {
    const r = compileRoute(
      httpRoute([{ filters: [{ type: "RequestMirror", requestMirror: { backendRef: { name: "gone", port: 80 } } }], backendRefs: toV1 }]),
      meshContext(),
    );
    expect(r.route?.rules[0]?.filters).toEqual([]);
    expect(condition(r, "ResolvedRefs")?.reason).toBe("BackendNotFound");
  });

  it.each([
    ["a Service that does not exist", { name: "ghost" }, "Service gateway-conformance-mesh/ghost not found"],
    ["a port the Service lacks", { name: "echo", port: 81 }, "Service gateway-conformance-mesh/echo has no port 81"],
    ["a sectionName no port has", { name: "echo", sectionName: "web" }, 'Service gateway-conformance-mesh/echo has no port named "web"'],
  ])("a parentRef to %s is not accepted (NoMatchingParent)", (_title, ref, message) => {
    const r = compileRoute(httpRoute([{ backendRefs: toV1 }], [{ group: "", kind: "Service", ...ref }]), meshContext());
    expect(condition(r, "Accepted")).toMatchObject({ status: "False", reason: "NoMatchingParent", message });
    expect(r.attachments).toEqual([]);
  });

  it("a parentRef by sectionName attaches to that named port only; Gateway parents get no status from the mesh", () => {
    const r = compileRoute(
      httpRoute([{ backendRefs: toV1 }], [{ group: "", kind: "Service", name: "echo", sectionName: "grpc" }, { name: "some-gateway" }]),
      meshContext(),
    );
    expect(r.attachments.map((a) => a.port)).toEqual([7070]);
    expect(r.parents).toHaveLength(1);
  });

  it("a route in another namespace attaches as a consumer route", () => {
    const route = httpRoute([{ backendRefs: toV1 }], [{ group: "", kind: "Service", name: "echo", namespace: MESH_NS, port: 80 }]);
    const { servicePorts } = compileRoutes([{ ...route, metadata: { ...route.metadata, namespace: CONSUMER_NS } }], meshContext());
    expect(servicePorts.map((s) => [s.service, s.port, s.producer.length, s.consumer.length])).toEqual([["echo", 80, 0, 1]]);
  });

  it("compiles timeouts and retry into milliseconds", () => {
    const r = compileRoute(
      httpRoute([
        { timeouts: { request: "1m30s", backendRequest: "500ms" }, retry: { codes: [503, 503, 504], attempts: 2, backoff: "100ms" }, backendRefs: toV1 },
      ]),
      meshContext(),
    );
    expect(r.route?.rules[0]).toMatchObject({
      timeouts: { requestMs: 90_000, backendRequestMs: 500 },
      retry: { codes: [503, 504], attempts: 2, backoffMs: 100 },
    });
  });
});
