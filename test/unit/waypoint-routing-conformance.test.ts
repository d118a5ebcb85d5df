// Gateway API mesh conformance cases (kubernetes-sigs/gateway-api conformance/tests/mesh/*) replayed against the route engine, without a network.
import { describe, expect, it } from "vitest";
import { applyHeaderModifier, type HeaderMap, type RoutePlan } from "../../waypoint/routing/index.ts";
import { answeringService, CONSUMER_NS, joined, meshTable, seededRandom, send, type TestRequest } from "../support/gamma.ts";

const forwarded = (plan: RoutePlan) => {
  if (plan.action !== "forward") throw new Error(`expected the request to be forwarded, got ${JSON.stringify(plan)}`);
  return plan;
};
const responseHeaders = (plan: RoutePlan): HeaderMap =>
  plan.action === "forward" || plan.action === "redirect" ? plan.responseModifiers.reduce(applyHeaderModifier, {}) : {};
const service = (port: number, name = "echo") => `
  parentRefs:
  - group: ""
    kind: Service
    name: ${name}
    port: ${port}`;
const route = (name: string, spec: string, parentRef = service(80)) => `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: gateway-conformance-mesh
spec:${parentRef}
${spec}`;

describe("MeshBasic (mesh-basic.go)", () => {
  it("with no route attached the request goes to the Service it addressed", () => {
    expect(send(meshTable(""), { service: "echo" })).toEqual({ action: "passthrough" });
  });
});

describe("MeshHTTPRouteSimpleSameNamespace (httproute-simple-same-namespace.yaml)", () => {
  const table = meshTable(route("gateway-conformance-mesh-test", "  rules:\n  - backendRefs:\n    - name: echo-v1\n      port: 8080"));
  it("GET / to echo reaches echo-v1:8080", () => {
    expect(forwarded(send(table, { path: "/" })).backend).toEqual({ namespace: "gateway-conformance-mesh", service: "echo-v1", port: 8080 });
  });
});

describe("MeshHTTPRouteMatching (httproute-matching.yaml)", () => {
  const table = meshTable(
    route(
      "mesh-matching",
      `  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    - headers: [{name: version, value: one}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches:
    - path: {type: PathPrefix, value: /v2}
    - headers: [{name: version, value: two}]
    backendRefs: [{name: echo-v2, port: 8080}]`,
    ),
  );
  const cases: [TestRequest, string][] = [
    [{ path: "/" }, "echo-v1"],
    [{ path: "/example" }, "echo-v1"],
    [{ path: "/", headers: { Version: "one" } }, "echo-v1"],
    [{ path: "/v2" }, "echo-v2"],
    [{ path: "/v2/example" }, "echo-v2"],
    [{ path: "/", headers: { Version: "two" } }, "echo-v2"],
    [{ path: "/v2/" }, "echo-v2"],
    [{ path: "/v2example" }, "echo-v1"],
    [{ path: "/foo/v2/example" }, "echo-v1"],
  ];
  it.each(cases)("%j goes to %s", (req, backend) => {
    expect(forwarded(send(table, req)).backend.service).toBe(backend);
  });
});

describe("MeshHTTPRouteQueryParamMatching (httproute-query-param-matching.yaml)", () => {
  const table = meshTable(
    route(
      "mesh-query-param-matching",
      `  rules:
  - matches: [{queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: dolphin}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path1}, queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: one}], queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches:
    - {path: {type: PathPrefix, value: /path3}, queryParams: [{name: animal, value: shark}]}
    - {path: {type: PathPrefix, value: /path4}, headers: [{name: version, value: three}], queryParams: [{name: animal, value: kraken}]}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path5}}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: hydra}]}]
    backendRefs: [{name: echo-v2, port: 8080}]`,
    ),
  );
  const cases: [TestRequest, string | 404][] = [
    [{ path: "/?animal=whale" }, "echo-v1"],
    [{ path: "/?animal=dolphin" }, "echo-v2"],
    [{ path: "/?animal=whale&otherparam=irrelevant" }, "echo-v1"],
    [{ path: "/?animal=dolphin&color=yellow" }, "echo-v2"],
    [{ path: "/?color=blue" }, 404],
    [{ path: "/?animal=dog" }, 404],
    [{ path: "/?animal=whaledolphin" }, 404],
    [{ path: "/" }, 404],
    [{ path: "/path1?animal=whale" }, "echo-v1"],
    [{ path: "/?animal=whale", headers: { version: "one" } }, "echo-v2"],
    [{ path: "/path3?animal=shark" }, "echo-v1"],
    [{ path: "/path4?animal=kraken", headers: { version: "three" } }, "echo-v1"],
    [{ path: "/?animal=shark" }, 404],
    [{ path: "/path4?animal=kraken" }, 404],
    [{ path: "/path5?animal=hydra" }, "echo-v1"],
  ];
  it.each(cases)("%j → %s", (req, expected) => {
    const plan = send(table, req);
    if (expected === 404) expect(plan).toMatchObject({ action: "respond", status: 404, reason: "no-rule-matched" });
    else expect(forwarded(plan).backend.service).toBe(expected);
  });
});

describe("MeshHTTPRouteNamedRule (httproute-named-rule.yaml)", () => {
  const table = meshTable(
    route(
      "mesh-http-named-rules",
      `  rules:
  - name: named-rule
    matches: [{path: {type: PathPrefix, value: /named}}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /unnamed}}]
    backendRefs: [{name: echo-v2, port: 8080}]`,
    ),
  );
  it("/named takes the named rule to echo-v1, and the plan names the rule", () => {
    const plan = forwarded(send(table, { path: "/named" }));
    expect(plan.backend.service).toBe("echo-v1");
    expect(plan.route).toEqual({
      kind: "HTTPRoute",
      namespace: "gateway-conformance-mesh",
      name: "mesh-http-named-rules",
      ruleIndex: 0,
      ruleName: "named-rule",
    });
  });
  it("/unnamed goes to echo-v2 through the unnamed rule", () => {
    const plan = forwarded(send(table, { path: "/unnamed" }));
    expect(plan.backend.service).toBe("echo-v2");
    expect(plan.route.ruleName).toBeUndefined();
    expect(plan.request.path).toBe("/unnamed");
  });
});

const redirectRule = (prefix: string, redirect: string) => `  - matches: [{path: {type: PathPrefix, value: ${prefix}}}]
    filters: [{type: RequestRedirect, requestRedirect: ${redirect}}]`;

type RedirectCase = [path: string, status: number, location: string];
const redirectSuites: [name: string, rules: string[], cases: RedirectCase[]][] = [
  [
    "MeshHTTPRouteRedirectHostAndStatus (httproute-redirect-host-and-status.yaml)",
    [redirectRule("/hostname-redirect", "{hostname: example.org}"), redirectRule("/host-and-status", "{statusCode: 301, hostname: example.org}")],
    [
      ["/hostname-redirect", 302, "http://example.org/hostname-redirect"],
      ["/host-and-status", 301, "http://example.org/host-and-status"],
    ],
  ],
  [
    "MeshHTTPRouteRedirectPath (httproute-redirect-path.yaml)",
    [
      redirectRule("/original-prefix", "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}"),
      redirectRule("/full", "{path: {type: ReplaceFullPath, replaceFullPath: /full-path-replacement}}"),
      redirectRule("/path-and-host", "{hostname: example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}"),
      redirectRule("/path-and-status", "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}, statusCode: 301}"),
      redirectRule("/full-path-and-host", "{hostname: example.org, path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}}"),
      redirectRule("/full-path-and-status", "{path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}, statusCode: 301}"),
    ],
    [
      ["/original-prefix/lemon", 302, "http://echo/replacement-prefix/lemon"],
      ["/full/path/original", 302, "http://echo/full-path-replacement"],
      ["/path-and-host", 302, "http://example.org/replacement-prefix"],
      ["/path-and-status", 301, "http://echo/replacement-prefix"],
      ["/full-path-and-host", 302, "http://example.org/replacement-full"],
      ["/full-path-and-status", 301, "http://echo/replacement-full"],
    ],
  ],
  [
    "MeshHTTPRouteRedirectPort (httproute-redirect-port.yaml)",
    [
      redirectRule("/port", "{port: 8083}"),
      redirectRule("/port-and-host", "{hostname: example.org, port: 8083}"),
      redirectRule("/port-and-status", "{port: 8083, statusCode: 301}"),
      redirectRule("/port-and-host-and-status", "{port: 8083, hostname: example.org, statusCode: 302}"),
    ],
    [
      ["/port", 302, "http://echo:8083/port"],
      ["/port-and-host", 302, "http://example.org:8083/port-and-host"],
      ["/port-and-status", 301, "http://echo:8083/port-and-status"],
      ["/port-and-host-and-status", 302, "http://example.org:8083/port-and-host-and-status"],
    ],
  ],
  [
    "MeshHTTPRouteSchemeRedirect (httproute-redirect-scheme.yaml)",
    [
      redirectRule("/scheme", '{scheme: "https"}'),
      redirectRule("/scheme-and-host", '{hostname: example.org, scheme: "https"}'),
      redirectRule("/scheme-and-status", '{scheme: "https", statusCode: 301}'),
      redirectRule("/scheme-and-host-and-status", '{scheme: "https", statusCode: 302, hostname: example.org}'),
    ],
    [
      ["/scheme", 302, "https://echo/scheme"],
      ["/scheme-and-host", 302, "https://example.org/scheme-and-host"],
      ["/scheme-and-status", 301, "https://echo/scheme-and-status"],
      ["/scheme-and-host-and-status", 302, "https://example.org/scheme-and-host-and-status"],
    ],
  ],
  [
    "MeshHTTPRoute303Redirect, MeshHTTPRoute307Redirect, MeshHTTPRoute308Redirect (httproute-30{3,7,8}-redirect.yaml)",
    [redirectRule("/redirect", "{statusCode: 303}"), redirectRule("/temporary", "{statusCode: 307}"), redirectRule("/permanent", "{statusCode: 308}")],
    [
      ["/redirect", 303, "http://echo/redirect"],
      ["/temporary", 307, "http://echo/temporary"],
      ["/permanent", 308, "http://echo/permanent"],
    ],
  ],
];
describe.each(redirectSuites)("%s", (_name, rules, cases) => {
  const table = meshTable(route("mesh-redirect", `  rules:\n${rules.join("\n")}`));
  it.each(cases)("%s answers %i with Location %s", (path, status, location) => {
    expect(send(table, { path, host: "echo" })).toMatchObject({ action: "redirect", status, location });
  });
});

const headerModifierCases: [string, Record<string, string>, Record<string, string>, string[]][] = [
  ["/set", { "Some-Other-Header": "val" }, { "some-other-header": "val", "x-header-set": "set-overwrites-values" }, []],
  ["/set", { "Some-Other-Header": "val", "X-Header-Set": "some-other-value" }, { "some-other-header": "val", "x-header-set": "set-overwrites-values" }, []],
  ["/add", { "Some-Other-Header": "val" }, { "some-other-header": "val", "x-header-add": "add-appends-values" }, []],
  [
    "/add",
    { "Some-Other-Header": "val", "X-Header-Add": "some-other-value" },
    { "some-other-header": "val", "x-header-add": "some-other-value,add-appends-values" },
    [],
  ],
  ["/remove", { "X-Header-Remove": "val" }, {}, ["x-header-remove"]],
  [
    "/multiple",
    { "X-Header-Set-2": "set-val-2", "X-Header-Add-2": "add-val-2", "X-Header-Remove-2": "remove-val-2", "Another-Header": "another-header-val" },
    {
      "x-header-set-1": "header-set-1",
      "x-header-set-2": "header-set-2",
      "x-header-add-1": "header-add-1",
      "x-header-add-2": "add-val-2,header-add-2",
      "x-header-add-3": "header-add-3",
      "another-header": "another-header-val",
    },
    ["x-header-remove-1", "x-header-remove-2"],
  ],
  [
    "/case-insensitivity",
    {
      "x-header-set": "original-val-set",
      "x-header-add": "original-val-add",
      "x-header-remove": "original-val-remove",
      "Another-Header": "another-header-val",
    },
    { "x-header-set": "header-set", "x-header-add": "original-val-add,header-add", "another-header": "another-header-val" },
    ["x-header-remove"],
  ],
];
const headerModifiers: Record<string, string> = {
  "/set": "{set: [{name: X-Header-Set, value: set-overwrites-values}]}",
  "/add": "{add: [{name: X-Header-Add, value: add-appends-values}]}",
  "/remove": "{remove: [X-Header-Remove]}",
  "/multiple":
    "{set: [{name: X-Header-Set-1, value: header-set-1}, {name: X-Header-Set-2, value: header-set-2}], add: [{name: X-Header-Add-1, value: header-add-1}, {name: X-Header-Add-2, value: header-add-2}, {name: X-Header-Add-3, value: header-add-3}], remove: [X-Header-Remove-1, X-Header-Remove-2]}",
  "/case-insensitivity": "{set: [{name: X-Header-Set, value: header-set}], add: [{name: X-Header-Add, value: header-add}], remove: [X-Header-Remove]}",
};

describe.each([
  ["MeshHTTPRouteRequestHeaderModifier (httproute-request-header-modifier.yaml)", "rule"],
  ["MeshHTTPRouteBackendRequestHeaderModifier (httproute-request-header-modifier-backend.yaml)", "backend"],
] as const)("%s", (_name, level) => {
  const rules = Object.entries(headerModifiers).map(([prefix, modifier]) => {
    const filters = `[{type: RequestHeaderModifier, requestHeaderModifier: ${modifier}}]`;
    return level === "rule"
      ? `  - matches: [{path: {type: PathPrefix, value: ${prefix}}}]\n    filters: ${filters}\n    backendRefs: [{name: echo-v1, port: 8080}]`
      : `  - matches: [{path: {type: PathPrefix, value: ${prefix}}}]\n    backendRefs: [{name: echo-v1, port: 8080, filters: ${filters}}]`;
  });
  const table = meshTable(route("mesh-request-header-modifier", `  rules:\n${rules.join("\n")}`));
  it.each(headerModifierCases)("%s with %j reaches echo-v1 with %j", (path, sent, expected, absent) => {
    const plan = forwarded(send(table, { path, headers: sent }));
    expect(plan.backend.service).toBe("echo-v1");
    for (const [name, value] of Object.entries(expected)) expect(joined(plan.request.headers[name]), name).toBe(value);
    for (const name of absent) expect(plan.request.headers[name], name).toBeUndefined();
  });
});

describe("MeshHTTPRouteRewritePath (httproute-rewrite-path.yaml)", () => {
  const headerModifier =
    "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites-values}], add: [{name: X-Header-Add, value: header-val-1}, {name: X-Header-Add-Append, value: header-val-2}], remove: [X-Header-Remove]}}";
  const rewrite = (prefix: string, path: string, extra = "") =>
    `  - matches: [{path: {type: PathPrefix, value: ${prefix}}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: ${path}}}${extra}]\n    backendRefs: [{name: echo-v1, port: 80}]`;
  const table = meshTable(
    route(
      "mesh-rewrite-path",
      `  rules:\n${[
        rewrite("/prefix/one", "{type: ReplacePrefixMatch, replacePrefixMatch: /one}"),
        rewrite("/strip-prefix", "{type: ReplacePrefixMatch, replacePrefixMatch: /}"),
        rewrite("/full/one", "{type: ReplaceFullPath, replaceFullPath: /one}"),
        rewrite("/full/rewrite-path-and-modify-headers", "{type: ReplaceFullPath, replaceFullPath: /test}", `, ${headerModifier}`),
        rewrite("/prefix/rewrite-path-and-modify-headers", "{type: ReplacePrefixMatch, replacePrefixMatch: /prefix}", `, ${headerModifier}`),
      ].join("\n")}`,
    ),
  );
  it.each([
    ["/prefix/one/two", "/one/two"],
    ["/strip-prefix/three", "/three"],
    ["/strip-prefix", "/"],
    ["/full/one/two", "/one"],
  ])("%s reaches echo-v1 as %s", (path, rewritten) => {
    const plan = forwarded(send(table, { path }));
    expect([plan.backend.service, plan.request.path]).toEqual(["echo-v1", rewritten]);
  });
  const sent = { "X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1", "X-Header-Set": "set-val" };
  it.each([
    ["/full/rewrite-path-and-modify-headers/test", "/test"],
    ["/prefix/rewrite-path-and-modify-headers/one", "/prefix/one"],
  ])("%s reaches echo-v1 as %s with its headers modified", (path, rewritten) => {
    const plan = forwarded(send(table, { path, headers: sent }));
    expect(plan.request.path).toBe(rewritten);
    expect(joined(plan.request.headers["x-header-add"])).toBe("header-val-1");
    expect(joined(plan.request.headers["x-header-add-append"])).toBe("append-val-1,header-val-2");
    expect(plan.request.headers["x-header-set"]).toBe("set-overwrites-values");
    expect(plan.request.headers["x-header-remove"]).toBeUndefined();
  });
});

const setHeaderRule = (backend: string, value: string) => `  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: ${value}}]}}]
    backendRefs: [{name: ${backend}, port: 80}]`;

describe("MeshPorts (mesh-ports.yaml)", () => {
  const table = meshTable(
    [
      route("mesh-split-v1", setHeaderRule("echo-v1", "v1"), service(80, "echo-v1")),
      route("mesh-split-v2", setHeaderRule("echo-v2", "v2"), service(80, "echo-v2").replace(/\n\s+port: 80/, "")),
    ].join("\n---\n"),
  );
  it.each([
    ["explicit port 80, sent to 80: the route applies", { service: "echo-v1", port: 80 }, "v1"],
    ["explicit port 80, sent to 8080: no route", { service: "echo-v1", port: 8080 }, undefined],
    ["no port in the parentRef, sent to 80", { service: "echo-v2", port: 80 }, "v2"],
    ["no port in the parentRef, sent to 8080", { service: "echo-v2", port: 8080 }, "v2"],
  ])("%s", (_title, req, header) => {
    const plan = send(table, req);
    expect(answeringService(plan, req.service)).toBe(req.service);
    expect(responseHeaders(plan)["x-header-set"]).toBe(header);
  });
});

describe("MeshConsumerRoute (mesh-consumer-route.yaml)", () => {
  const table = meshTable(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-echo-add-header, namespace: ${CONSUMER_NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo-v1, namespace: gateway-conformance-mesh}]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: set}]}}]
    backendRefs: [{name: echo-v1, namespace: gateway-conformance-mesh, port: 80}]`);
  it("a client in the route's namespace gets the route (X-Header-Set: set)", () => {
    const plan = forwarded(send(table, { service: "echo-v1", client: CONSUMER_NS }));
    expect(plan.backend.service).toBe("echo-v1");
    expect(responseHeaders(plan)["x-header-set"]).toBe("set");
  });
  it("a client in the Service's namespace does not", () => {
    expect(send(table, { service: "echo-v1", client: "gateway-conformance-mesh" })).toEqual({ action: "passthrough" });
  });
});

describe("MeshFrontend (mesh-frontend.yaml) and MeshFrontendHostname", () => {
  const table = meshTable(route("mesh-split-v1", setHeaderRule("echo-v2", "set"), service(80, "echo-v2").replace(/\n\s+port: 80/, "")));
  it("a request to the Service takes its route", () => {
    expect(responseHeaders(forwarded(send(table, { service: "echo-v2" })))["x-header-set"]).toBe("set");
  });
  it("a request to a pod IP of the same workload takes no route", () => {
    expect(send(table, { toPod: true, host: "10.244.1.7:8080" })).toEqual({ action: "passthrough" });
  });
  it("the Service addressed decides, not the Host header (MeshFrontendHostname)", () => {
    expect(responseHeaders(send(table, { service: "echo-v2", host: "echo-v1" }))["x-header-set"]).toBe("set");
    expect(send(table, { service: "echo-v1", host: "echo-v2" })).toEqual({ action: "passthrough" });
  });
});

describe("MeshTrafficSplit (mesh-split.yaml)", () => {
  const table = meshTable(
    route(
      "mesh-split",
      `  rules:
  - matches: [{path: {type: Exact, value: /v1}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: Exact, value: /v2}}]
    backendRefs: [{name: echo-v2, port: 80}]`,
      service(80).replace(/\n\s+port: 80/, ""),
    ),
  );
  it.each([
    ["/v1", "echo-v1"],
    ["/v2", "echo-v2"],
  ])("%s goes to %s", (path, backend) => {
    expect(forwarded(send(table, { path })).backend.service).toBe(backend);
  });
});

function distribution(plans: RoutePlan[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const p of plans) counts[forwarded(p).backend.service] = (counts[forwarded(p).backend.service] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / plans.length]));
}

describe("MeshHTTPRouteWeight (httproute-weight.yaml)", () => {
  const table = meshTable(
    route("mesh-weighted-backends", "  rules:\n  - backendRefs:\n    - {name: echo-v1, port: 8080, weight: 70}\n    - {name: echo-v2, port: 8080, weight: 30}"),
  );
  it("10,000 requests split 70/30 within the conformance suite's 5% tolerance", () => {
    const random = seededRandom(1426);
    const shares = distribution(Array.from({ length: 10_000 }, () => send(table, {}, random)));
    expect(shares["echo-v1"]).toBeCloseTo(0.7, 1);
    expect(shares["echo-v2"]).toBeCloseTo(0.3, 1);
    expect(Math.abs((shares["echo-v1"] ?? 0) - 0.7)).toBeLessThan(0.05);
  });
});

const grpcRoute = (name: string, rules: string) => `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: ${name}, namespace: gateway-conformance-mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 7070}]
  rules:
${rules}`;
const grpc = (headers: Record<string, string> = {}): TestRequest => ({
  port: 7070,
  method: "POST",
  path: "/grpc.examples.echo.Echo/UnaryEcho",
  headers: { "content-type": "application/grpc", ...headers },
});

describe("MeshGRPCRouteWeight (grpcroute-weight.yaml)", () => {
  const table = meshTable(
    grpcRoute(
      "mesh-grpc-weighted-backends",
      "  - backendRefs:\n    - {name: echo-v1, port: 7070, weight: 70}\n    - {name: echo-v2, port: 7070, weight: 30}\n    - {name: echo-v3, port: 7070, weight: 0}",
    ),
  );
  it("splits 70/30 and never picks the weight-0 backend (which does not even exist)", () => {
    const random = seededRandom(7070);
    const shares = distribution(Array.from({ length: 10_000 }, () => send(table, grpc(), random)));
    expect(Math.abs((shares["echo-v1"] ?? 0) - 0.7)).toBeLessThan(0.05);
    expect(shares["echo-v3"]).toBeUndefined();
  });
});

describe("MeshGRPCRouteRequestHeaderModifier (grpcroute-request-header-modifier.yaml)", () => {
  const rule = (testCase: string, modifier: string, backend: string) =>
    `  - matches: [{headers: [{name: x-test-case, value: ${testCase}}]}]\n    filters: [{type: RequestHeaderModifier, requestHeaderModifier: ${modifier}}]\n    backendRefs: [{name: ${backend}, port: 7070}]`;
  const table = meshTable(
    grpcRoute(
      "grpc-request-header-modifier",
      [
        rule("set", "{set: [{name: x-header-set, value: set-overwrites-values}]}", "echo-v1"),
        rule("add", "{add: [{name: x-header-add, value: add-appends-values}]}", "echo-v1"),
        rule("remove", "{remove: [x-header-remove]}", "echo-v1"),
        rule(
          "multi",
          "{set: [{name: x-header-set-1, value: header-set-1}, {name: x-header-set-2, value: header-set-2}], add: [{name: x-header-add-1, value: header-add-1}, {name: x-header-add-2, value: header-add-2}], remove: [x-header-remove-1, x-header-remove-2]}",
          "echo-v2",
        ),
      ].join("\n"),
    ),
  );
  it.each([
    [
      "set",
      { "x-header-set": "this-value-should-be-overwritten", "some-other-header": "x" },
      "echo-v1",
      { "x-header-set": "set-overwrites-values", "some-other-header": "x" },
      [],
    ],
    ["add", { "x-header-add": "this-value-should-be-appended" }, "echo-v1", { "x-header-add": "this-value-should-be-appended,add-appends-values" }, []],
    ["remove", { "x-header-remove": "this-should-be-removed" }, "echo-v1", {}, ["x-header-remove"]],
    [
      "multi",
      { "x-header-set-2": "set-header-2", "x-header-add-2": "add-header-2", "x-header-remove-2": "should-be-removed-2" },
      "echo-v2",
      { "x-header-set-1": "header-set-1", "x-header-set-2": "header-set-2", "x-header-add-1": "header-add-1", "x-header-add-2": "add-header-2,header-add-2" },
      ["x-header-remove-1", "x-header-remove-2"],
    ],
  ] as const)("x-test-case: %s", (testCase, sent, backend, expected, absent) => {
    const plan = forwarded(send(table, grpc({ "x-test-case": testCase, ...sent })));
    expect([plan.protocol, plan.backend.service]).toEqual(["grpc", backend]);
    for (const [name, value] of Object.entries(expected)) expect(joined(plan.request.headers[name]), name).toBe(value);
    for (const name of absent) expect(plan.request.headers[name], name).toBeUndefined();
  });
});
