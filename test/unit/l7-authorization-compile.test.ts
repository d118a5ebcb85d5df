// Compiling targetRef'd AuthorizationPolicies for the waypoint: accepted L7 fields, every Invalid code with its field path, fail-closed forms, and selector policies untouched.
import { describe, expect, it } from "vitest";
import type { CompiledAuthorization } from "../../contract/authorization.ts";
import {
  PolicyErrorCode,
  compileAuthorizationPolicy,
  compileWaypointAuthorizationPolicy,
  isWaypointPolicy,
  MAX_POLICY_VALUES,
} from "../../controller/authorization/index.ts";
import type { KubeObject } from "../../kube/client.ts";

const ap = (spec: Record<string, unknown>, name = "p"): KubeObject => ({
  apiVersion: "security.ambit.dev/v1",
  kind: "AuthorizationPolicy",
  metadata: { name, namespace: "demo", generation: 7 },
  spec,
});
const gateway = { group: "gateway.networking.k8s.io", kind: "Gateway", name: "waypoint" };
const service = { group: "", kind: "Service", name: "payments" };
const waypoint = (spec: Record<string, unknown>) => compileWaypointAuthorizationPolicy(ap({ targetRefs: [gateway], ...spec }));
const op = (operation: Record<string, unknown>) => ({ rules: [{ to: [{ operation }] }] });

describe("compiling waypoint policies", () => {
  it("keeps every L7 field, header names lower-cased, and names its targets", () => {
    const r = compileWaypointAuthorizationPolicy(
      ap({
        targetRefs: [gateway, service],
        action: "DENY",
        rules: [
          {
            from: [{ source: { principals: ["cluster.local/ns/demo/sa/legacy"], notIpBlocks: ["10.0.0.0/8"] } }],
            to: [
              {
                operation: {
                  hosts: ["Payments.Demo.svc", "*.example.com"],
                  notHosts: ["admin.example.com"],
                  methods: ["POST", "*"],
                  notMethods: ["OPTIONS"],
                  paths: ["/api/*", "*.json", "/exact", "*"],
                  notPaths: ["/api/health"],
                  ports: ["8080"],
                },
              },
            ],
            when: [
              { key: "request.headers[X-Tenant]", values: ["acme", "beta*"], notValues: ["*-test"] },
              { key: "request.headers[authorization]", notValues: ["*"] },
              { key: "source.namespace", values: ["demo"] },
              { key: "destination.port", values: ["8080"] },
            ],
          },
        ],
      }),
    );
    expect(r.error).toBeUndefined();
    expect(r.condition).toMatchObject({ status: "True", reason: "Accepted", observedGeneration: 7 });
    expect(r.condition.message).toBe("enforced at L7 by the waypoint for Gateway demo/waypoint, Service demo/payments");
    expect(r.compiled).toEqual({
      namespace: "demo",
      name: "p",
      targets: [
        { kind: "Gateway", name: "waypoint" },
        { kind: "Service", name: "payments" },
      ],
      action: "DENY",
      rules: [
        {
          from: [{ principals: ["cluster.local/ns/demo/sa/legacy"], notIpBlocks: ["10.0.0.0/8"] }],
          to: [
            {
              hosts: ["Payments.Demo.svc", "*.example.com"],
              notHosts: ["admin.example.com"],
              methods: ["POST", "*"],
              notMethods: ["OPTIONS"],
              paths: ["/api/*", "*.json", "/exact", "*"],
              notPaths: ["/api/health"],
              ports: [8080],
            },
          ],
          when: [
            { key: "request.headers", header: "x-tenant", values: ["acme", "beta*"], notValues: ["*-test"] },
            { key: "request.headers", header: "authorization", notValues: ["*"] },
            { key: "source.namespace", values: ["demo"] },
            { key: "destination.port", values: ["8080"] },
          ],
        },
      ],
    });
  });

  it.each([
    ["a singular targetRef", { targetRef: service }, [{ kind: "Service", name: "payments" }]],
    ["a Service in the core group spelt out", { targetRefs: [{ ...service, group: "core" }] }, [{ kind: "Service", name: "payments" }]],
    ["a Service without a group", { targetRefs: [{ kind: "Service", name: "payments" }] }, [{ kind: "Service", name: "payments" }]],
    ["a namespace equal to its own", { targetRefs: [{ ...gateway, namespace: "demo" }] }, [{ kind: "Gateway", name: "waypoint" }]],
  ])("accepts %s", (_, spec, targets) => {
    const r = compileWaypointAuthorizationPolicy(ap(spec));
    expect(r.condition.reason).toBe("Accepted");
    expect(r.compiled.targets).toEqual(targets);
  });

  it("AUDIT is accepted and says it never changes a decision; ALLOW without rules stays an allow-nothing", () => {
    expect(waypoint({ action: "AUDIT", rules: [{}] }).condition.message).toContain("audited (logged, never changes a decision) at L7");
    expect(waypoint({}).compiled).toMatchObject({ action: "ALLOW", rules: [] });
  });

  it("tells waypoint policies from agent policies", () => {
    expect(isWaypointPolicy(ap({ targetRefs: [gateway] }))).toBe(true);
    expect(isWaypointPolicy(ap({ targetRef: service }))).toBe(true);
    expect(isWaypointPolicy(ap({ selector: { matchLabels: { app: "x" } } }))).toBe(false);
    expect(isWaypointPolicy(ap({}))).toBe(false);
  });
});

describe("invalid waypoint policies: one stable code per mistake, naming the field", () => {
  const C = PolicyErrorCode;
  const many = Array.from({ length: MAX_POLICY_VALUES + 1 }, (_, i) => `/p${i}`);
  it.each<[string, Record<string, unknown>, string, string]>([
    ["an unknown operation field", op({ method: ["GET"] }), C.unknownField, "spec.rules[0].to[0].operation.method"],
    ["an unknown targetRef field", { targetRefs: [{ ...gateway, nmae: "x" }] }, C.unknownField, "spec.targetRefs[0].nmae"],
    ["paths that are not a list", op({ paths: "/api" }), C.badValue, "spec.rules[0].to[0].operation.paths"],
    ["an empty header value list", { rules: [{ when: [{ key: "request.headers[x]", values: [] }] }] }, C.badValue, "spec.rules[0].when[0].values"],
    ["an empty from", { rules: [{ from: [] }] }, C.badValue, "spec.rules[0].from"],
    ["an empty principal list", { rules: [{ from: [{ source: { principals: [] } }] }] }, C.badValue, "spec.rules[0].from[0].source.principals"],
    ["an empty notPaths", op({ notPaths: [] }), C.badValue, "spec.rules[0].to[0].operation.notPaths"],
    ["CUSTOM", { action: "CUSTOM", provider: { name: "ext" } }, C.unsupportedAction, "spec.action"],
    ["a provider", { action: "DENY", provider: { name: "ext" } }, C.unsupportedAction, "spec.provider"],
    ["connection.sni", { rules: [{ when: [{ key: "connection.sni", values: ["a"] }] }] }, C.unsupportedAttribute, "spec.rules[0].when[0].key"],
    [
      "an experimental key",
      { rules: [{ when: [{ key: "experimental.envoy.filters.x[y]", values: ["a"] }] }] },
      C.unsupportedAttribute,
      "spec.rules[0].when[0].key",
    ],
    ["more values than a waypoint accepts", op({ paths: many }), C.tooLarge, "spec.rules"],
    ["selector and targetRefs", { selector: { matchLabels: { app: "x" } } }, C.selectorAndTargetRefs, "spec.selector"],
    ["targetRef and targetRefs", { targetRef: service }, C.selectorAndTargetRefs, "spec.targetRef"],
    ["an HTTPRoute target", { targetRefs: [{ group: "gateway.networking.k8s.io", kind: "HTTPRoute", name: "r" }] }, C.targetRef, "spec.targetRefs[0].kind"],
    [
      "a GatewayClass target",
      { targetRefs: [{ group: "gateway.networking.k8s.io", kind: "GatewayClass", name: "c" }] },
      C.targetRef,
      "spec.targetRefs[0].kind",
    ],
    ["a Gateway in the core group", { targetRefs: [{ ...gateway, group: "" }] }, C.targetRef, "spec.targetRefs[0].group"],
    ["a Service in the Gateway API group", { targetRefs: [{ ...service, group: "gateway.networking.k8s.io" }] }, C.targetRef, "spec.targetRefs[0].group"],
    ["a target without a name", { targetRefs: [{ kind: "Service" }] }, C.targetRef, "spec.targetRefs[0].name"],
    ["a target in another namespace", { targetRefs: [{ ...service, namespace: "other" }] }, C.targetRef, "spec.targetRefs[0].namespace"],
    ["an empty targetRefs", { targetRefs: [] }, C.targetRef, "spec.targetRefs"],
    ["a target that is not an object", { targetRefs: ["payments"] }, C.targetRef, "spec.targetRefs[0]"],
    [
      "requestPrincipals",
      { rules: [{ from: [{ source: { requestPrincipals: ["*"] } }] }] },
      C.jwtUnsupported,
      "spec.rules[0].from[0].source.requestPrincipals",
    ],
    [
      "notRequestPrincipals",
      { rules: [{ from: [{ source: { notRequestPrincipals: ["*"] } }] }] },
      C.jwtUnsupported,
      "spec.rules[0].from[0].source.notRequestPrincipals",
    ],
    ["a JWT claim", { rules: [{ when: [{ key: "request.auth.claims[iss]", values: ["x"] }] }] }, C.jwtUnsupported, "spec.rules[0].when[0].key"],
    ["a wildcard inside a path", op({ paths: ["/api/*/users"] }), C.pattern, "spec.rules[0].to[0].operation.paths[0]"],
    ["a path template", op({ paths: ["/api/{*}/users"] }), C.pattern, "spec.rules[0].to[0].operation.paths[0]"],
    ["a path without a leading slash", op({ notPaths: ["/ok", "admin"] }), C.pattern, "spec.rules[0].to[0].operation.notPaths[1]"],
    ["a path with a query", op({ paths: ["/search?q=1"] }), C.pattern, "spec.rules[0].to[0].operation.paths[0]"],
    ["a wildcard inside a host", op({ hosts: ["api.*.example.com"] }), C.pattern, "spec.rules[0].to[0].operation.hosts[0]"],
    ["a host with a path", op({ notHosts: ["example.com/admin"] }), C.pattern, "spec.rules[0].to[0].operation.notHosts[0]"],
    ["a wildcard at both ends", op({ methods: ["*ET*"] }), C.pattern, "spec.rules[0].to[0].operation.methods[0]"],
    ["a lower-case method", op({ methods: ["GET", "post"] }), C.method, "spec.rules[0].to[0].operation.methods[1]"],
    ["a method with a space", op({ notMethods: ["GE T"] }), C.method, "spec.rules[0].to[0].operation.notMethods[0]"],
    ["an empty header name", { rules: [{ when: [{ key: "request.headers[]", values: ["x"] }] }] }, C.header, "spec.rules[0].when[0].key"],
    ["a header name with a space", { rules: [{ when: [{ key: "request.headers[x y]", values: ["x"] }] }] }, C.header, "spec.rules[0].when[0].key"],
    ["a pseudo-header", { rules: [{ when: [{ key: "request.headers[:path]", values: ["/x"] }] }] }, C.header, "spec.rules[0].when[0].key"],
    ["request.headers without brackets", { rules: [{ when: [{ key: "request.headers", values: ["x"] }] }] }, C.header, "spec.rules[0].when[0].key"],
  ])("%s", (_, spec, code, path) => {
    const r = waypoint(spec);
    expect(r.error).toEqual({ code, path });
    expect(r.condition).toMatchObject({ status: "False", reason: "Invalid", observedGeneration: 7 });
    expect(r.condition.message.startsWith(`${path}: `)).toBe(true);
  });

  it("the node agents refuse a targetRef'd policy with their own code", () => {
    expect(compileAuthorizationPolicy(ap({ targetRefs: [gateway] })).error).toEqual({ code: C.forWaypoint, path: "spec.targetRefs" });
  });

  it("fails closed for the targets it names: ALLOW allows nothing, DENY denies everything, AUDIT audits nothing", () => {
    const bad = { rules: [{ to: [{ operation: { methods: ["get"] } }] }] };
    expect(waypoint(bad).compiled).toEqual({ namespace: "demo", name: "p", targets: [{ kind: "Gateway", name: "waypoint" }], action: "ALLOW", rules: [] });
    expect(waypoint(bad).condition.message).toContain("allowing nothing through it for Gateway demo/waypoint until fixed");
    expect(waypoint({ ...bad, action: "DENY" }).compiled).toMatchObject({ action: "DENY", rules: [{}] });
    expect(waypoint({ ...bad, action: "DENY" }).condition.message).toContain("denying every request to Gateway demo/waypoint");
    expect(waypoint({ ...bad, action: "AUDIT" }).compiled).toMatchObject({ action: "AUDIT", rules: [] });
    // CUSTOM cannot be enforced: it fails closed as an ALLOW (allows nothing), never as "no policy".
    expect(waypoint({ action: "CUSTOM", provider: { name: "ext" } }).compiled).toMatchObject({ action: "ALLOW", rules: [] });
  });

  it("an invalid target list fails closed for what it could have meant, or the namespace when nothing is readable", () => {
    const partly = compileWaypointAuthorizationPolicy(ap({ action: "DENY", targetRefs: [{ kind: "Service", name: "payments", group: "wrong" }, { kind: 3 }] }));
    expect(partly.compiled).toMatchObject({ targets: [{ kind: "Service", name: "payments" }], rules: [{}] });
    const unreadable = compileWaypointAuthorizationPolicy(ap({ action: "DENY", targetRefs: "payments" }));
    expect(unreadable.compiled.targets).toBe("namespace");
    expect(unreadable.condition.message).toContain("denying every request to every waypoint target of namespace demo");
    // Selector and targetRefs together: closed at the waypoint for the targets, and at the agents for the selected workloads.
    const both = ap({ action: "DENY", selector: { matchLabels: { app: "payments" } }, targetRefs: [service] });
    expect(compileWaypointAuthorizationPolicy(both).compiled).toMatchObject({ targets: [{ kind: "Service", name: "payments" }], rules: [{}] });
    expect(compileAuthorizationPolicy(both).compiled).toMatchObject({ selector: { app: "payments" }, action: "DENY", rules: [{}] });
  });

  it("a policy without any targetRef is not the waypoint's: Invalid there, but closed for no target", () => {
    const r = compileWaypointAuthorizationPolicy(ap({ action: "DENY", selector: { matchLabels: { app: "x" } } }));
    expect(r.error?.code).toBe(PolicyErrorCode.selectorAndTargetRefs);
    expect(r.compiled.targets).toEqual([]);
    expect(compileWaypointAuthorizationPolicy(ap({ action: "DENY" })).error).toEqual({ code: PolicyErrorCode.targetRef, path: "spec.targetRefs" });
  });
});

describe("selector policies compile exactly as before", () => {
  // Written out by hand from the compiler before L7 existed: any change here changes what node agents enforce.
  it.each<[string, Record<string, unknown>, Omit<CompiledAuthorization, "namespace" | "name">, string]>([
    ["allow-nothing", {}, { action: "ALLOW", rules: [] }, "Accepted"],
    [
      "L4 rules",
      {
        selector: { matchLabels: { app: "payments" } },
        rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/orders"] } }], to: [{ operation: { ports: ["8080"] } }] }],
      },
      { selector: { app: "payments" }, action: "ALLOW", rules: [{ from: [{ principals: ["cluster.local/ns/demo/sa/orders"] }], to: [{ ports: [8080] }] }] },
      "Accepted",
    ],
    [
      "an ALLOW rule needing L7 is dropped",
      {
        selector: { matchLabels: { app: "payments" } },
        rules: [{ to: [{ operation: { methods: ["GET"], paths: ["/x"] } }] }, { from: [{ source: { namespaces: ["demo"] } }] }],
      },
      { selector: { app: "payments" }, action: "ALLOW", rules: [{ from: [{ namespaces: ["demo"] }] }] },
      "PartiallyEnforced",
    ],
    [
      "a DENY rule needing L7 keeps its L4 parts",
      {
        action: "DENY",
        rules: [
          {
            from: [{ source: { requestPrincipals: ["*"], namespaces: ["legacy"] } }],
            to: [{ operation: { hosts: ["a"], ports: [80] } }],
            when: [
              { key: "request.headers[x]", values: ["y"] },
              { key: "source.ip", values: ["10.0.0.0/8"] },
            ],
          },
        ],
      },
      { action: "DENY", rules: [{ from: [{ namespaces: ["legacy"] }], to: [{ ports: [80] }], when: [{ key: "source.ip", values: ["10.0.0.0/8"] }] }] },
      "PartiallyEnforced",
    ],
    [
      "a lower-case method is still only a dropped L7 field at L4",
      { rules: [{ to: [{ operation: { methods: ["get"] } }] }] },
      { action: "ALLOW", rules: [] },
      "PartiallyEnforced",
    ],
  ])("%s", (_, spec, expected, reason) => {
    const r = compileAuthorizationPolicy(ap(spec));
    expect(r.compiled).toEqual({ namespace: "demo", name: "p", ...expected });
    expect(r.condition.reason).toBe(reason);
    expect(r.error).toBeUndefined();
  });
});
