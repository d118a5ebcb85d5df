// The waypoint's L7 decision with Istio's semantics: paths, hosts, methods, headers, targets, DENY before ALLOW, AUDIT, the 403, and agreement with the L4 store.
import { describe, expect, it } from "vitest";
import { L7PolicyStore, PolicyStore, RBAC_DENIED_RESPONSE, type HttpAuthorizationRequest, normalizeRequestPath } from "../../agent/authorization/index.ts";
import type { InboundAttributes } from "../../agent/dataplane/index.ts";
import type { Workload } from "../../agent/state/index.ts";
import { compileAuthorizationPolicy, compileWaypointAuthorizationPolicy } from "../../controller/authorization/index.ts";
import type { KubeObject } from "../../kube/client.ts";

const gateway = { group: "gateway.networking.k8s.io", kind: "Gateway", name: "waypoint" };
const paymentsRef = { group: "", kind: "Service", name: "payments" };

const ap = (name: string, spec: Record<string, unknown>, namespace = "demo"): KubeObject => ({
  apiVersion: "security.ambit.dev/v1",
  kind: "AuthorizationPolicy",
  metadata: { name, namespace },
  spec,
});
/** A store from policy specs; each binds to the waypoint unless it names its own targetRefs. */
function store(...specs: Array<Record<string, unknown> | KubeObject>): L7PolicyStore {
  const s = new L7PolicyStore();
  s.replace(
    specs.map((spec, i) => {
      const obj = "metadata" in spec ? (spec as KubeObject) : ap(`p${i}`, { targetRefs: [gateway], ...spec });
      return compileWaypointAuthorizationPolicy(obj).compiled;
    }),
  );
  return s;
}
const request = (over: Partial<HttpAuthorizationRequest> = {}): HttpAuthorizationRequest => ({
  waypoint: { namespace: "demo", name: "waypoint" },
  service: { namespace: "demo", name: "payments" },
  source: { trustDomain: "cluster.local", namespace: "demo", serviceAccount: "orders" },
  sourceIp: "10.244.1.5",
  destinationIp: "10.96.0.20",
  destinationPort: 8080,
  method: "GET",
  path: "/",
  host: "payments.demo.svc.cluster.local",
  headers: {},
  ...over,
});
/** Whether an ALLOW with exactly this operation (or condition) lets the request through. */
const allowsOp = (operation: Record<string, unknown>, over: Partial<HttpAuthorizationRequest>) =>
  store({ rules: [{ to: [{ operation }] }] }).check(request(over)).allowed;
const allowsWhen = (when: Record<string, unknown>, over: Partial<HttpAuthorizationRequest>) =>
  store({ rules: [{ when: [when] }] }).check(request(over)).allowed;

describe("paths (Istio: exact, prefix*, *suffix, *; query ignored; normalized)", () => {
  it.each<[string[], string, boolean]>([
    [["/info"], "/info", true],
    [["/info"], "/info/", false],
    [["/info"], "/INFO", false],
    [["/info"], "/info?debug=1", true],
    [["/info"], "/info#top", true],
    [["/api/*"], "/api/", true],
    [["/api/*"], "/api/v1/users", true],
    [["/api/*"], "/api", false],
    [["/api*"], "/apiary", true],
    [["*.txt"], "/a/b.txt", true],
    [["*.txt"], "/a/b.txt.bak", false],
    [["*"], "/", true],
    [["*"], "/anything/at/all", true],
    [["/admin"], "/public/../admin", true],
    [["/admin"], "/./admin", true],
    [["/admin"], "//admin", true],
    [["/admin"], "/%61dmin", true],
    [["/admin"], "/%2E%2E/admin", true],
    [["/admin"], "\\admin", true],
    [["/a%2Fb"], "/a%2fb", true],
    [["/a/b"], "/a%2Fb", false],
  ])("%j against %s: %s", (paths, path, expected) => {
    expect(allowsOp({ paths }, { path })).toBe(expected);
  });

  it("notPaths excludes, and a DENY on a prefix holds against dot segments and doubled slashes", () => {
    expect(allowsOp({ notPaths: ["/admin/*"] }, { path: "/public" })).toBe(true);
    expect(allowsOp({ notPaths: ["/admin/*"] }, { path: "/admin/users" })).toBe(false);
    const deny = store({ action: "DENY", rules: [{ to: [{ operation: { paths: ["/admin/*"] } }] }] });
    for (const path of ["/admin/x", "//admin/x", "/public/../admin/x", "/%61dmin/x", "/admin/./x"]) expect(deny.check(request({ path })).allowed).toBe(false);
    expect(deny.check(request({ path: "/administrator" })).allowed).toBe(true);
  });

  it("normalizes as documented", () => {
    expect(normalizeRequestPath("/a/b/../c/./d?x=1")).toBe("/a/c/d");
    expect(normalizeRequestPath("/a/b/..")).toBe("/a/");
    expect(normalizeRequestPath("/../..")).toBe("/");
    expect(normalizeRequestPath("/a//b///c/")).toBe("/a/b/c/");
    expect(normalizeRequestPath("/%7euser/%2f%41")).toBe("/~user/%2FA");
    expect(normalizeRequestPath("*")).toBe("*");
  });
});

describe("hosts (case-insensitive; a pattern without a port ignores the request's port)", () => {
  it.each<[string[], string, boolean]>([
    [["payments.demo.svc.cluster.local"], "Payments.Demo.SVC.cluster.local", true],
    [["Payments.Demo.svc.cluster.local"], "payments.demo.svc.cluster.local", true],
    [["payments.demo.svc.cluster.local"], "payments.demo.svc.cluster.local:8080", true],
    [["payments.demo.svc.cluster.local"], "payments.demo.svc.cluster.local.", true],
    [["payments.demo.svc.cluster.local:8080"], "payments.demo.svc.cluster.local:8080", true],
    [["payments.demo.svc.cluster.local:8080"], "payments.demo.svc.cluster.local:9090", false],
    [["payments.demo.svc.cluster.local:8080"], "payments.demo.svc.cluster.local", false],
    [["payments:*"], "payments:8080", true],
    [["payments:*"], "payments", false],
    [["*.example.com"], "api.example.com:443", true],
    [["*.example.com"], "example.com", false],
    [["payments.*"], "payments.demo", true],
    [["*"], "anything", true],
    [["[fd00::1]"], "[fd00::1]:8080", true],
    [["10.96.0.20"], "10.96.0.20:8080", true],
  ])("%j against %s: %s", (hosts, host, expected) => {
    expect(allowsOp({ hosts }, { host })).toBe(expected);
  });

  it("notHosts excludes a host whatever port or case is sent", () => {
    const deny = store({ action: "DENY", rules: [{ to: [{ operation: { hosts: ["admin.example.com"] } }] }] });
    for (const host of ["admin.example.com", "ADMIN.example.com", "admin.example.com:80", "admin.example.com."])
      expect(deny.check(request({ host })).allowed).toBe(false);
    expect(allowsOp({ notHosts: ["admin.example.com"] }, { host: "Admin.Example.com:8080" })).toBe(false);
    expect(allowsOp({ notHosts: ["admin.example.com"] }, { host: "api.example.com" })).toBe(true);
  });
});

describe("methods (case-sensitive, Istio's wildcards) and ports", () => {
  it.each<[Record<string, unknown>, Partial<HttpAuthorizationRequest>, boolean]>([
    [{ methods: ["GET", "HEAD"] }, { method: "GET" }, true],
    [{ methods: ["GET"] }, { method: "get" }, false],
    [{ methods: ["GET"] }, { method: "POST" }, false],
    [{ methods: ["*"] }, { method: "PATCH" }, true],
    [{ methods: ["P*"] }, { method: "PUT" }, true],
    [{ notMethods: ["DELETE"] }, { method: "DELETE" }, false],
    [{ notMethods: ["DELETE"] }, { method: "GET" }, true],
    [{ ports: ["8080"], methods: ["GET"] }, { destinationPort: 8080 }, true],
    [{ ports: ["8080"], methods: ["GET"] }, { destinationPort: 9090 }, false],
    [{ notPorts: ["8080"] }, { destinationPort: 8080 }, false],
    // Fields of one operation are ANDed; operations of one rule are ORed.
    [{ methods: ["GET"], paths: ["/a"] }, { method: "GET", path: "/b" }, false],
  ])("%j with %j: %s", (operation, over, expected) => {
    expect(allowsOp(operation, over)).toBe(expected);
  });

  it("operations of a rule are alternatives", () => {
    const s = store({ rules: [{ to: [{ operation: { methods: ["GET"], paths: ["/info*"] } }, { operation: { methods: ["POST"], paths: ["/data"] } }] }] });
    expect(s.check(request({ method: "POST", path: "/data" })).allowed).toBe(true);
    expect(s.check(request({ method: "POST", path: "/info" })).allowed).toBe(false);
    expect(s.explain(request({ method: "POST", path: "/data" })).match).toMatchObject({ ruleIndex: 0, to: { index: 1, operation: { methods: ["POST"] } } });
  });
});

describe("request.headers conditions", () => {
  it.each<[Record<string, unknown>, HttpAuthorizationRequest["headers"], boolean]>([
    [{ key: "request.headers[x-tenant]", values: ["acme"] }, { "x-tenant": "acme" }, true],
    [{ key: "request.headers[x-tenant]", values: ["acme"] }, { "x-tenant": "ACME" }, false],
    [{ key: "request.headers[X-Tenant]", values: ["acme"] }, { "x-tenant": "acme" }, true],
    [{ key: "request.headers[x-tenant]", values: ["acme"] }, { "X-TENANT": "acme" }, true],
    [{ key: "request.headers[x-tenant]", values: ["acme"] }, {}, false],
    [{ key: "request.headers[authorization]", values: ["Bearer *"] }, { authorization: "Bearer abc" }, true],
    [{ key: "request.headers[user-agent]", values: ["*-bot"] }, { "user-agent": "crawler-bot" }, true],
    // `*` is presence: an empty value is present, a missing header is not.
    [{ key: "request.headers[x-debug]", values: ["*"] }, { "x-debug": "" }, true],
    [{ key: "request.headers[x-debug]", values: ["*"] }, {}, false],
    [{ key: "request.headers[x-debug]", notValues: ["*"] }, {}, true],
    [{ key: "request.headers[x-debug]", notValues: ["*"] }, { "x-debug": "1" }, false],
    [{ key: "request.headers[x-tenant]", notValues: ["evil"] }, {}, true],
    [{ key: "request.headers[x-tenant]", values: ["a*"], notValues: ["ab*"] }, { "x-tenant": "abc" }, false],
    // Repeated headers are matched as one comma-separated value, as Istio does.
    [{ key: "request.headers[x-tenant]", values: ["a,b"] }, { "x-tenant": ["a", "b"] }, true],
    [{ key: "request.headers[x-tenant]", values: ["a"] }, { "x-tenant": ["a", "b"] }, false],
  ])("%j with %j: %s", (when, headers, expected) => {
    expect(allowsWhen(when, { headers })).toBe(expected);
  });
});

describe("sources and L4 conditions at the waypoint use the agent's matching", () => {
  const from = (source: Record<string, unknown>) => store({ rules: [{ from: [{ source }] }] });
  it.each<[Record<string, unknown>, Partial<HttpAuthorizationRequest>, boolean]>([
    [{ principals: ["cluster.local/ns/demo/sa/orders"] }, {}, true],
    [{ principals: ["*/sa/orders"] }, {}, true],
    [{ principals: ["*"] }, { source: undefined }, false],
    [{ notPrincipals: ["*"] }, { source: undefined }, true],
    [{ namespaces: ["demo"] }, {}, true],
    [{ notNamespaces: ["demo"] }, {}, false],
    [{ ipBlocks: ["10.244.1.0/24"] }, {}, true],
    [{ ipBlocks: ["10.244.2.0/24"] }, {}, false],
    [{ remoteIpBlocks: ["10.244.1.5"] }, {}, true],
    [{ remoteIpBlocks: ["10.244.1.5"] }, { remoteIp: "192.0.2.7" }, false],
    [{ remoteIpBlocks: ["192.0.2.0/24"] }, { remoteIp: "192.0.2.7" }, true],
  ])("%j with %j: %s", (source, over, expected) => {
    expect(from(source).check(request(over)).allowed).toBe(expected);
  });

  it("evaluates L4 when keys", () => {
    expect(allowsWhen({ key: "source.principal", values: ["cluster.local/ns/demo/sa/orders"] }, {})).toBe(true);
    expect(allowsWhen({ key: "destination.port", notValues: ["8080"] }, {})).toBe(false);
    expect(allowsWhen({ key: "destination.ip", values: ["10.96.0.0/16"] }, {})).toBe(true);
    expect(allowsWhen({ key: "remote.ip", values: ["192.0.2.7"] }, { remoteIp: "192.0.2.7" })).toBe(true);
  });
});

describe("Istio's order: DENY, then ALLOW; AUDIT never decides", () => {
  const allowOrders = { rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/orders"] } }] }] };
  const denyPost = { action: "DENY", rules: [{ to: [{ operation: { methods: ["POST"] } }] }] };
  const auditAdmin = { action: "AUDIT", rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] };
  const legacy = { trustDomain: "cluster.local", namespace: "legacy", serviceAccount: "client" };
  it.each<[string, Array<Record<string, unknown>>, Partial<HttpAuthorizationRequest>, boolean, string, string[]]>([
    ["no policy: allowed", [], {}, true, "no-allow-policy", []],
    ["ALLOW without rules allows nothing", [{}], {}, false, "no-allow-match", []],
    ["a matching ALLOW", [allowOrders], {}, true, "allow", []],
    ["an ALLOW that does not match", [allowOrders], { source: legacy }, false, "no-allow-match", []],
    ["DENY beats a matching ALLOW", [allowOrders, denyPost], { method: "POST" }, false, "deny", []],
    ["DENY alone leaves the rest allowed", [denyPost], { method: "GET" }, true, "no-allow-policy", []],
    ["AUDIT alone allows and reports", [auditAdmin], { path: "/admin/x" }, true, "no-allow-policy", ["demo/p0"]],
    ["AUDIT next to allow-nothing: still denied, still reported", [auditAdmin, {}], { path: "/admin" }, false, "no-allow-match", ["demo/p0"]],
    ["AUDIT next to a DENY that matches", [auditAdmin, denyPost], { method: "POST", path: "/admin" }, false, "deny", ["demo/p0"]],
    ["AUDIT that does not match reports nothing", [auditAdmin, allowOrders], { path: "/x" }, true, "allow", []],
  ])("%s", (_, specs, over, allowed, decidedBy, audit) => {
    const e = store(...specs).explain(request(over));
    expect(e).toMatchObject({ allowed, decidedBy });
    expect(e.audit.map((m) => `${m.policy.namespace}/${m.policy.name}`)).toEqual(audit);
    expect(e.response).toEqual(allowed ? undefined : RBAC_DENIED_RESPONSE);
  });

  it("answers a denial as Istio does, in one place", () => {
    expect(RBAC_DENIED_RESPONSE).toEqual({ status: 403, headers: { "content-type": "text/plain" }, body: "RBAC: access denied" });
    expect(store(denyPost).check(request({ method: "POST" }))).toEqual({ allowed: false, reason: "denied by policy demo/p0", response: RBAC_DENIED_RESPONSE });
    expect(store(allowOrders).check(request())).toEqual({ allowed: true, reason: "allowed by policy demo/p0" });
  });

  it("explains which policy, rule and clauses decided", () => {
    const s = store(allowOrders, {
      action: "DENY",
      rules: [
        { to: [{ operation: { methods: ["DELETE"] } }] },
        {
          from: [{ source: { namespaces: ["other"] } }, { source: { namespaces: ["demo"] } }],
          to: [{ operation: { paths: ["/x"] } }, { operation: { paths: ["/admin/*"] } }],
          when: [{ key: "request.headers[x-tenant]", values: ["*"] }],
        },
      ],
    });
    const e = s.explain(request({ path: "/admin/../admin/users?x=1", headers: { "X-Tenant": "acme" } }));
    expect(e).toMatchObject({
      allowed: false,
      decidedBy: "deny",
      reason: "denied by policy demo/p1",
      principal: "cluster.local/ns/demo/sa/orders",
      path: "/admin/users",
    });
    expect(e.match).toEqual({
      policy: { namespace: "demo", name: "p1", action: "DENY" },
      ruleIndex: 1,
      from: { index: 1, source: { namespaces: ["demo"] } },
      to: { index: 1, operation: { paths: ["/admin/*"] } },
      when: [{ key: "request.headers", header: "x-tenant", values: ["*"] }],
    });
    expect(e.applying).toEqual([
      { namespace: "demo", name: "p0", action: "ALLOW" },
      { namespace: "demo", name: "p1", action: "DENY" },
    ]);
    expect(s.explain(request({ source: legacy, method: "GET", path: "/q" })).reason).toBe(
      "no ALLOW policy matched GET /q for demo/payments (from cluster.local/ns/legacy/sa/client)",
    );
  });
});

describe("which policies apply: by Gateway, by Service, in their namespace", () => {
  const denyAll = (name: string, targetRefs: unknown, namespace = "demo") => ap(name, { action: "DENY", targetRefs, rules: [{}] }, namespace);
  it.each<[string, KubeObject, Partial<HttpAuthorizationRequest>, boolean]>([
    ["a Gateway policy covers every service through it", denyAll("gw", [gateway]), { service: { namespace: "demo", name: "fraud" } }, false],
    ["a Gateway policy covers requests to workloads", denyAll("gw", [gateway]), { service: undefined }, false],
    ["another waypoint's policy does not apply", denyAll("gw", [{ ...gateway, name: "other" }]), {}, true],
    ["a Service policy covers its service", denyAll("svc", [paymentsRef]), {}, false],
    ["a Service policy leaves other services", denyAll("svc", [paymentsRef]), { service: { namespace: "demo", name: "fraud" } }, true],
    ["a Service policy of another namespace does not apply", denyAll("svc", [paymentsRef], "other"), {}, true],
    [
      "a Gateway policy of the service's namespace needs the waypoint's namespace",
      denyAll("gw", [gateway], "apps"),
      { service: { namespace: "apps", name: "payments" } },
      true,
    ],
    [
      "a Service policy applies through a waypoint of another namespace",
      denyAll("svc", [paymentsRef], "apps"),
      { service: { namespace: "apps", name: "payments" } },
      false,
    ],
  ])("%s", (_, policy, over, allowed) => {
    expect(store(policy).check(request(over)).allowed).toBe(allowed);
  });

  it("an invalid policy fails closed where it could have applied", () => {
    const badDeny = ap("bad", { action: "DENY", targetRefs: [paymentsRef], rules: [{ to: [{ operation: { methods: ["get"] } }] }] });
    expect(store(badDeny).check(request({ method: "POST" })).allowed).toBe(false);
    expect(store(badDeny).check(request({ service: { namespace: "demo", name: "fraud" } })).allowed).toBe(true);
    const unreadable = ap("bad", { action: "DENY", targetRefs: "payments", rules: [{}] });
    expect(store(unreadable).check(request({ service: { namespace: "demo", name: "fraud" } })).allowed).toBe(false);
    expect(store(unreadable).check(request({ waypoint: { namespace: "mesh", name: "w" }, service: { namespace: "other", name: "x" } })).allowed).toBe(true);
    const badAllow = ap("bad", { targetRefs: [paymentsRef], rules: [{ from: [{ source: { requestPrincipals: ["*"] } }] }] });
    expect(store(badAllow).check(request()).allowed).toBe(false);
  });

  it("refuses a malformed compiled policy whole, keeping the previous set", () => {
    const s = store({});
    expect(() => s.replace([{ namespace: "demo", name: "x", action: "ALLOW", rules: [], targets: "all" }])).toThrow(/no valid targets/);
    expect(() => s.replace([{ namespace: "demo", name: "x", action: "CUSTOM", rules: [], targets: [] }])).toThrow(/no valid action/);
    expect(s.check(request()).allowed).toBe(false);
    expect(s.dump()).toHaveLength(1);
  });
});

describe("one matching implementation: L4-only rules decide the same at the agent and at the waypoint", () => {
  const payments: Workload = {
    uid: "p",
    namespace: "demo",
    name: "payments-1",
    workloadName: "payments",
    serviceAccount: "payments",
    node: "n",
    ip: "10.244.2.3",
    captured: true,
    labels: { app: "payments" },
  };
  const rules = [
    { from: [{ source: { principals: ["cluster.local/ns/demo/*"], notIpBlocks: ["10.244.1.128/25"] } }], to: [{ operation: { ports: ["8080"] } }] },
    {
      from: [{ source: { namespaces: ["legacy"] } }],
      when: [
        { key: "source.ip", values: ["10.244.0.0/16"] },
        { key: "destination.port", notValues: ["9090"] },
      ],
    },
  ];
  it.each(["ALLOW", "DENY"])("%s", (action) => {
    const agent = new PolicyStore({ rootNamespace: "ambit-system" });
    agent.replace([compileAuthorizationPolicy(ap("p", { action, selector: { matchLabels: { app: "payments" } }, rules })).compiled], []);
    const waypoint = store(ap("p", { action, targetRefs: [gateway], rules }));
    for (const namespace of ["demo", "legacy", "other"])
      for (const sourceIp of ["10.244.1.5", "10.244.1.200", "192.0.2.1"])
        for (const port of [8080, 9090]) {
          const source = { trustDomain: "cluster.local", namespace, serviceAccount: "client" };
          const conn: InboundAttributes = { source, sourceIp, destination: payments, destinationIp: payments.ip, destinationPort: port };
          const l4 = agent.explain(conn);
          const l7 = waypoint.explain(request({ source, sourceIp, destinationIp: payments.ip, destinationPort: port }));
          expect([namespace, sourceIp, port, l7.allowed, l7.decidedBy, l7.match?.ruleIndex]).toEqual([
            namespace,
            sourceIp,
            port,
            l4.allowed,
            l4.decidedBy,
            l4.match?.ruleIndex,
          ]);
        }
  });
});
