// L4 policy with Istio's semantics: compilation (L7 handling, invalid policies fail closed) and the destination's decision.
import { describe, expect, it } from "vitest";
import { PolicyStore, matchesPattern } from "../../agent/authorization/index.ts";
import type { InboundAttributes } from "../../agent/dataplane/index.ts";
import type { Workload } from "../../agent/state/index.ts";
import { MAX_POLICY_VALUES, compileAuthorizationPolicy, compileForEnforcers, compilePeerAuthentication } from "../../controller/authorization/index.ts";
import type { KubeObject } from "../../kube/client.ts";
import { DEMO_PAYMENTS } from "../support/demo-mesh.ts";

const payments: Workload = DEMO_PAYMENTS;
const fraud: Workload = { ...payments, uid: "f", name: "fraud-1", workloadName: "fraud", serviceAccount: "fraud", ip: "10.244.2.4", labels: { app: "fraud" } };

const ap = (namespace: string, name: string, spec: Record<string, unknown>, created = "2026-01-01T00:00:00Z"): KubeObject => ({
  apiVersion: "security.ambit.dev/v1",
  kind: "AuthorizationPolicy",
  metadata: { name, namespace, generation: 3, creationTimestamp: created },
  spec,
});
const pa = (namespace: string, name: string, spec: Record<string, unknown>, created = "2026-01-01T00:00:00Z"): KubeObject => ({
  apiVersion: "security.ambit.dev/v1",
  kind: "PeerAuthentication",
  metadata: { name, namespace, creationTimestamp: created },
  spec,
});
const from = (sa: string, namespace = "demo") => ({ trustDomain: "cluster.local", namespace, serviceAccount: sa });

function store(policies: KubeObject[], peers: KubeObject[] = []): PolicyStore {
  const s = new PolicyStore({ rootNamespace: "ambit-system" });
  s.replace(
    policies.map((p) => compileAuthorizationPolicy(p).compiled),
    peers.map((p) => compilePeerAuthentication(p).compiled),
  );
  return s;
}
const conn = (over: Partial<InboundAttributes> = {}): InboundAttributes => ({
  source: from("orders"),
  sourceIp: "10.244.1.5",
  destination: payments,
  destinationIp: payments.ip,
  destinationPort: 8080,
  ...over,
});
const allowed = (s: PolicyStore, c: InboundAttributes) => s.check(c).allowed;

describe("authorization decisions", () => {
  it("allows everything without policies, and nothing once an allow-nothing policy exists", () => {
    expect(allowed(store([]), conn())).toBe(true);
    const s = store([ap("demo", "allow-nothing", {})]);
    expect(s.check(conn())).toMatchObject({ allowed: false, reason: expect.stringContaining("no ALLOW policy matched") });
  });

  it("lets a matching ALLOW through next to allow-nothing, only for the selected workload", () => {
    const s = store([
      ap("demo", "allow-nothing", {}),
      ap("demo", "orders-to-payments", {
        selector: { matchLabels: { app: "payments" } },
        action: "ALLOW",
        rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/orders"] } }] }],
      }),
    ]);
    expect(s.check(conn())).toMatchObject({ allowed: true, reason: "allowed by policy demo/orders-to-payments" });
    expect(allowed(s, conn({ source: from("client") }))).toBe(false);
    expect(allowed(s, conn({ destination: fraud, destinationIp: fraud.ip }))).toBe(false);
  });

  it("DENY beats ALLOW, and root-namespace policies apply mesh-wide", () => {
    const allowAll = ap("demo", "allow-all", { rules: [{}] });
    const deny = ap("ambit-system", "deny-client", { action: "DENY", rules: [{ from: [{ source: { principals: ["*/sa/client"] } }] }] });
    const s = store([allowAll, deny]);
    expect(s.check(conn({ source: from("client") }))).toMatchObject({ allowed: false, reason: "denied by policy ambit-system/deny-client" });
    expect(allowed(s, conn())).toBe(true);
    // A root-namespace policy with a selector reaches matching workloads of every namespace.
    const scoped = store([ap("ambit-system", "deny-fraud", { action: "DENY", selector: { matchLabels: { app: "fraud" } }, rules: [{}] })]);
    expect(allowed(scoped, conn({ destination: fraud, destinationIp: fraud.ip }))).toBe(false);
    expect(allowed(scoped, conn())).toBe(true);
    // A policy of another namespace does not.
    expect(allowed(store([ap("other", "allow-nothing", {})]), conn())).toBe(true);
  });

  it("matches principals, namespaces, IP blocks and ports with their not-forms", () => {
    const rule = (source: Record<string, unknown>, operation?: Record<string, unknown>) =>
      store([ap("demo", "p", { rules: [{ from: [{ source }], ...(operation ? { to: [{ operation }] } : {}) }] })]);
    expect(allowed(rule({ namespaces: ["demo"] }), conn())).toBe(true);
    expect(allowed(rule({ namespaces: ["demo"] }), conn({ source: from("orders", "other") }))).toBe(false);
    expect(allowed(rule({ notNamespaces: ["other"] }), conn({ source: from("orders", "other") }))).toBe(false);
    expect(allowed(rule({ principals: ["cluster.local/ns/demo/*"] }), conn())).toBe(true);
    expect(allowed(rule({ notPrincipals: ["*/sa/orders"] }), conn())).toBe(false);
    expect(allowed(rule({ ipBlocks: ["10.244.1.0/24"] }), conn())).toBe(true);
    expect(allowed(rule({ ipBlocks: ["10.244.2.0/24"] }), conn())).toBe(false);
    expect(allowed(rule({ notIpBlocks: ["10.244.1.5"] }), conn())).toBe(false);
    expect(allowed(rule({ ipBlocks: ["fd00::/8"] }), conn({ sourceIp: "fd00::5" }))).toBe(true);
    // Fields of one source are ANDed: ipBlocks and remoteIpBlocks must both hold.
    expect(allowed(rule({ ipBlocks: ["10.244.1.0/24"], remoteIpBlocks: ["192.0.2.0/24"] }), conn())).toBe(false);
    expect(allowed(rule({ ipBlocks: ["10.244.1.0/24"], remoteIpBlocks: ["10.244.0.0/16"] }), conn())).toBe(true);
    expect(allowed(rule({ notRemoteIpBlocks: ["10.244.1.5"] }), conn())).toBe(false);
    expect(allowed(rule({ namespaces: ["demo"] }, { ports: ["8080"] }), conn())).toBe(true);
    expect(allowed(rule({ namespaces: ["demo"] }, { ports: ["9090"] }), conn())).toBe(false);
    expect(allowed(rule({ namespaces: ["demo"] }, { notPorts: ["8080"] }), conn())).toBe(false);
  });

  it("a plaintext client has no principal: `*` does not match it, notPrincipals does", () => {
    const star = store([ap("demo", "any-mesh", { rules: [{ from: [{ source: { principals: ["*"] } }] }] })]);
    expect(allowed(star, conn())).toBe(true);
    expect(allowed(star, conn({ source: undefined }))).toBe(false);
    const notMesh = store([ap("demo", "deny-plain", { action: "DENY", rules: [{ from: [{ source: { notPrincipals: ["*"] } }] }] })]);
    expect(allowed(notMesh, conn({ source: undefined }))).toBe(false);
    expect(allowed(notMesh, conn())).toBe(true);
  });

  it("evaluates L4 `when` conditions", () => {
    const when = (w: Record<string, unknown>) => store([ap("demo", "w", { rules: [{ when: [w] }] })]);
    expect(allowed(when({ key: "source.namespace", values: ["demo"] }), conn())).toBe(true);
    expect(allowed(when({ key: "destination.port", values: ["9090"] }), conn())).toBe(false);
    expect(allowed(when({ key: "source.ip", notValues: ["10.244.1.0/24"] }), conn())).toBe(false);
    expect(allowed(when({ key: "destination.ip", values: ["10.244.2.0/24"] }), conn())).toBe(true);
    expect(allowed(when({ key: "source.principal", values: ["cluster.local/ns/demo/sa/orders"] }), conn())).toBe(true);
  });

  it("the matcher does exact, prefix, suffix and presence", () => {
    expect(matchesPattern("a/b", "a/b")).toBe(true);
    expect(matchesPattern("a/*", "a/b")).toBe(true);
    expect(matchesPattern("*/b", "a/b")).toBe(true);
    expect(matchesPattern("*", "")).toBe(false);
    expect(matchesPattern("a/*", "b/a")).toBe(false);
  });
});

describe("compilation", () => {
  it("drops ALLOW rules that need L7 (stricter) and says so on the policy", () => {
    const r = compileAuthorizationPolicy(
      ap("demo", "get-only", { rules: [{ to: [{ operation: { methods: ["GET"] } }] }, { from: [{ source: { namespaces: ["demo"] } }] }] }),
    );
    expect(r.compiled.rules).toEqual([{ from: [{ namespaces: ["demo"] }] }]);
    expect(r.condition).toMatchObject({
      status: "True",
      reason: "PartiallyEnforced",
      observedGeneration: 3,
      message: expect.stringContaining("rule 0 needs L7 (methods)"),
    });
    // With its only rule dropped it still exists as an ALLOW policy: the workload then allows nothing else.
    const onlyL7 = store([ap("demo", "get-only", { rules: [{ to: [{ operation: { methods: ["GET"] } }] }] })]);
    expect(allowed(onlyL7, conn())).toBe(false);
  });

  it("keeps the L4 parts of DENY rules that need L7 (denies more)", () => {
    const r = compileAuthorizationPolicy(
      ap("demo", "no-post", {
        action: "DENY",
        rules: [{ from: [{ source: { namespaces: ["legacy"] } }], to: [{ operation: { methods: ["POST"], ports: ["8080"] } }] }],
      }),
    );
    expect(r.compiled.rules).toEqual([{ from: [{ namespaces: ["legacy"] }], to: [{ ports: [8080] }] }]);
    expect(r.condition.reason).toBe("PartiallyEnforced");
    const s = store([ap("demo", "no-post", { action: "DENY", rules: [{ to: [{ operation: { methods: ["POST"] } }] }] })]);
    expect(allowed(s, conn())).toBe(false);
  });

  it("an invalid policy names the field, is never partly applied, and fails closed", () => {
    const badAllow = compileAuthorizationPolicy(
      ap("demo", "bad", {
        selector: { matchLabels: { app: "payments" } },
        rules: [{ from: [{ source: { namespaces: ["demo"] } }], to: [{ operation: { ports: ["8080", "http"] } }] }],
      }),
    );
    expect(badAllow.condition).toMatchObject({
      status: "False",
      reason: "Invalid",
      message: expect.stringContaining('spec.rules[0].to[0].operation.ports[1]: "http" is not a port number'),
    });
    expect(badAllow.compiled).toMatchObject({ action: "ALLOW", rules: [] });
    expect(
      allowed(store([ap("demo", "bad", { selector: { matchLabels: { app: "payments" } }, rules: [{ to: [{ operation: { ports: ["http"] } }] }] })]), conn()),
    ).toBe(false);

    const badDeny = compileAuthorizationPolicy(ap("demo", "bad-deny", { action: "DENY", rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }] }));
    expect(badDeny.condition.message).toContain('spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" is not an IP address or CIDR block');
    expect(badDeny.compiled).toMatchObject({ action: "DENY", rules: [{}] });

    for (const spec of [
      { action: "CUSTOM" },
      { action: "DENY", provider: { name: "ext" } },
      { rules: [{ from: [{ source: { principals: ["spiffe://cluster.local/ns/a/sa/b"] } }] }] },
      { rules: [{ when: [{ key: "bogus.key", values: ["x"] }] }] },
      { selector: "app=payments" },
    ]) {
      expect(compileAuthorizationPolicy(ap("demo", "x", spec)).condition.reason).toBe("Invalid");
    }
  });

  it("never enforces a policy bound to a waypoint by targetRefs at L4 (no widening to the namespace); its status is the waypoint's", () => {
    // payments already has an ALLOW for orders only; a waypoint-bound ALLOW for legacy must not let legacy in.
    const onlyOrders = ap("demo", "orders-only", {
      selector: { matchLabels: { app: "payments" } },
      rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/orders"] } }] }],
    });
    const forWaypoint = ap("demo", "via-waypoint", {
      targetRefs: [{ kind: "Service", group: "", name: "payments" }],
      rules: [{ from: [{ source: { namespaces: ["legacy"] } }] }],
    });
    /** What the controller hands the node agents: the L4 side of each policy, when it has one. */
    const agentStore = (policies: KubeObject[]) => {
      const s = new PolicyStore({ rootNamespace: "ambit-system" });
      s.replace(
        policies.flatMap((p) => compileForEnforcers(p).l4?.compiled ?? []),
        [],
      );
      return s;
    };
    const legacy = conn({ source: { trustDomain: "cluster.local", namespace: "legacy", serviceAccount: "client" } });
    expect(allowed(agentStore([onlyOrders]), legacy)).toBe(false);
    expect(allowed(agentStore([onlyOrders, forWaypoint]), legacy)).toBe(false);
    // Nor does it narrow anything: fraud has no ALLOW of its own, and the waypoint policy gives it none.
    expect(allowed(agentStore([forWaypoint]), conn({ destination: fraud, destinationIp: fraud.ip }))).toBe(true);
    const enforced = compileForEnforcers(forWaypoint);
    expect(enforced.l4).toBeUndefined();
    expect(enforced.l7?.compiled).toMatchObject({ targets: [{ kind: "Service", name: "payments" }], action: "ALLOW" });
    expect(enforced.condition).toMatchObject({ status: "True", reason: "Accepted", message: "enforced at L7 by the waypoint for Service demo/payments" });
    // Read alone for the node agents (never done by the controller), it stays refused rather than namespace-wide.
    expect(compileAuthorizationPolicy(forWaypoint).condition).toMatchObject({
      reason: "Invalid",
      message: expect.stringContaining("spec.targetRefs: binds the policy to a waypoint"),
    });
  });

  it("a policy with both a selector and targetRefs is Invalid at both enforcers, each failing closed for what it covers", () => {
    const both = compileForEnforcers(
      ap("demo", "both", { selector: { matchLabels: { app: "payments" } }, targetRefs: [{ kind: "Service", group: "", name: "payments" }] }),
    );
    expect(both.l4?.compiled).toMatchObject({ action: "ALLOW", rules: [], selector: { app: "payments" } });
    expect(both.l7?.compiled).toMatchObject({ action: "ALLOW", rules: [], targets: [{ kind: "Service", name: "payments" }] });
    expect(both.condition).toMatchObject({ reason: "Invalid", message: expect.stringContaining("only one of selector, targetRef and targetRefs") });
    const selectorOnly = compileForEnforcers(ap("demo", "l4", { selector: { matchLabels: { app: "payments" } } }));
    expect([selectorOnly.l7, selectorOnly.condition.reason]).toEqual([undefined, "Accepted"]);
  });
});

describe("peer authentication", () => {
  it("STRICT refuses plaintext, PERMISSIVE (the default) accepts it, mTLS passes either way", () => {
    expect(allowed(store([]), conn({ source: undefined }))).toBe(true);
    const strict = store([], [pa("demo", "strict", { mtls: { mode: "STRICT" } })]);
    expect(strict.check(conn({ source: undefined }))).toMatchObject({ allowed: false, reason: expect.stringContaining("STRICT mTLS") });
    expect(allowed(strict, conn())).toBe(true);
  });

  it("workload beats namespace beats mesh; UNSET inherits; port overrides apply to selector policies only", () => {
    const s = store(
      [],
      [
        pa("ambit-system", "mesh", { mtls: { mode: "STRICT" } }),
        pa("demo", "ns", { mtls: { mode: "UNSET" } }),
        pa("demo", "payments", { selector: { matchLabels: { app: "payments" } }, mtls: { mode: "PERMISSIVE" }, portLevelMtls: { "9090": { mode: "STRICT" } } }),
      ],
    );
    expect(s.mtlsMode(payments, 8080)).toBe("PERMISSIVE");
    expect(s.mtlsMode(payments, 9090)).toBe("STRICT");
    expect(s.mtlsMode(fraud, 8080)).toBe("STRICT");
    const oldest = store(
      [],
      [
        pa("demo", "b", { selector: { matchLabels: { app: "payments" } }, mtls: { mode: "PERMISSIVE" } }, "2026-02-01T00:00:00Z"),
        pa("demo", "a", { selector: { matchLabels: { app: "payments" } }, mtls: { mode: "STRICT" } }, "2026-01-01T00:00:00Z"),
      ],
    );
    expect(oldest.mtlsMode(payments, 8080)).toBe("STRICT");
  });

  it("an invalid mode fails closed to STRICT", () => {
    const r = compilePeerAuthentication(pa("demo", "typo", { mtls: { mode: "STRICTLY" } }));
    expect(r.condition.reason).toBe("Invalid");
    expect(r.compiled.mode).toBe("STRICT");
  });

  it("refuses a malformed compiled policy whole, keeping the previous set", () => {
    const s = store([ap("demo", "allow-nothing", {})]);
    expect(() => s.replace([{ namespace: "demo", name: "x", action: "MAYBE", rules: [] }], [])).toThrow(/no valid action/);
    expect(allowed(s, conn())).toBe(false);
  });
});

describe("policies that must not fail open or wide (issue 10)", () => {
  const invalid = (r: { condition: { reason: string; message: string } }, field: string) => {
    expect(r.condition.reason).toBe("Invalid");
    expect(r.condition.message).toContain(field);
  };

  it("refuses unknown fields at every level instead of ignoring them (item 5)", () => {
    // `rule:` for `rules:` used to deny nothing; now it denies everything the policy selects.
    const typoDeny = compileAuthorizationPolicy(ap("demo", "d", { action: "DENY", rule: [{ from: [{ source: { namespaces: ["legacy"] } }] }] }));
    invalid(typoDeny, "spec.rule: unknown field");
    expect(allowed(store([ap("demo", "d", { action: "DENY", rule: [{}] })]), conn())).toBe(false);
    // `frm:` used to allow everyone; now the ALLOW allows nothing.
    const typoAllow = ap("demo", "a", { rules: [{ frm: [{ source: { namespaces: ["demo"] } }] }] });
    invalid(compileAuthorizationPolicy(typoAllow), "spec.rules[0].frm: unknown field");
    expect(allowed(store([typoAllow]), conn({ source: from("anyone", "elsewhere") }))).toBe(false);
    // `mtl:` used to leave the namespace permissive; now it is STRICT until fixed.
    const typoPeer = pa("demo", "p", { mtl: { mode: "STRICT" } });
    invalid(compilePeerAuthentication(typoPeer), "spec.mtl: unknown field");
    expect(allowed(store([], [typoPeer]), conn({ source: undefined }))).toBe(false);
    for (const [spec, field] of [
      [{ rules: [{ from: [{ source: { namespaces: ["a"] }, sourc: {} }] }] }, "spec.rules[0].from[0].sourc"],
      [{ rules: [{ to: [{ operation: { ports: ["1"] }, extra: 1 }] }] }, "spec.rules[0].to[0].extra"],
      [{ rules: [{ when: [{ key: "source.ip", values: ["10.0.0.1"], notvalues: ["x"] }] }] }, "spec.rules[0].when[0].notvalues"],
      [{ selector: { matchLabels: { app: "x" }, matchExpressions: [] } }, "spec.selector.matchExpressions"],
    ] as const) {
      invalid(compileAuthorizationPolicy(ap("demo", "x", spec as unknown as Record<string, unknown>)), field);
    }
    invalid(compilePeerAuthentication(pa("demo", "p", { mtls: { mode: "STRICT", mod: "DISABLE" } })), "spec.mtls.mod");
  });

  it("an invalid selector fails closed only for the workloads it could have selected, never the namespace (item 6)", () => {
    // A number where a label string belongs: read as the label it would have been.
    const numeric = ap("demo", "deny-payments", {
      action: "DENY",
      selector: { matchLabels: { app: "payments", version: 2 } },
      rules: [{ from: [{ source: { namespaces: ["legacy"] } }] }],
    });
    const r = compileAuthorizationPolicy(numeric);
    invalid(r, "spec.selector.matchLabels");
    expect(r.compiled).toMatchObject({ action: "DENY", rules: [{}], selector: { app: "payments", version: "2" } });
    const v2 = { ...payments, labels: { app: "payments", version: "2" } };
    const s = store([numeric]);
    expect(allowed(s, conn({ destination: v2 }))).toBe(false);
    expect(allowed(s, conn())).toBe(true);
    expect(allowed(s, conn({ destination: fraud, destinationIp: fraud.ip }))).toBe(true);
    // A misspelt matchLabels is read as meant; a value that cannot be read keeps its key as a requirement.
    const misspelt = store([ap("demo", "m", { action: "DENY", selector: { matchLabel: { app: "payments" } } })]);
    expect(allowed(misspelt, conn())).toBe(false);
    expect(allowed(misspelt, conn({ destination: fraud, destinationIp: fraud.ip }))).toBe(true);
    const keyed = compileAuthorizationPolicy(ap("demo", "k", { action: "DENY", selector: { matchLabels: { app: { nested: true } } } }));
    expect(keyed.compiled).toMatchObject({ selectorKeys: ["app"] });
    const noApp = { ...fraud, labels: { tier: "x" } };
    expect(allowed(store([ap("demo", "k", { action: "DENY", selector: { matchLabels: { app: { nested: true } } } })]), conn({ destination: noApp }))).toBe(
      true,
    );
    // The same for an invalid ALLOW and an invalid PeerAuthentication: only the selected workloads are closed.
    const badAllow = store([ap("demo", "a", { selector: { matchLabels: { app: "payments", n: 1 } }, rules: [{ frm: [] }] })]);
    expect(allowed(badAllow, conn({ destination: { ...payments, labels: { app: "payments", n: "1" } } }))).toBe(false);
    expect(allowed(badAllow, conn({ destination: fraud, destinationIp: fraud.ip }))).toBe(true);
    const badPeer = store([], [pa("demo", "p", { selector: { matchLabels: { app: "payments" }, extra: 1 }, mtls: { mode: "PERMISSIVE" } })]);
    expect(badPeer.mtlsMode(payments, 8080)).toBe("STRICT");
    expect(badPeer.mtlsMode(fraud, 8080)).toBe("PERMISSIVE");
  });

  it("AUDIT never changes a decision; the store reports which AUDIT policies matched (item 7)", () => {
    const audit = ap("demo", "audit-legacy", { action: "AUDIT", rules: [{ from: [{ source: { namespaces: ["legacy"] } }] }] });
    expect(compileAuthorizationPolicy(audit)).toMatchObject({ compiled: { action: "AUDIT" }, condition: { reason: "Accepted" } });
    const legacy = conn({ source: from("client", "legacy") });
    expect(store([audit]).check(legacy)).toEqual({ allowed: true, reason: "no ALLOW policy selects the workload", audit: ["demo/audit-legacy"] });
    expect(store([audit]).check(conn())).toEqual({ allowed: true, reason: "no ALLOW policy selects the workload" });
    // Next to allow-nothing it neither allows nor denies: still denied, still reported.
    expect(store([audit, ap("demo", "allow-nothing", {})]).check(legacy)).toMatchObject({ allowed: false, audit: ["demo/audit-legacy"] });
    // An AUDIT that cannot be read audits nothing and denies nothing.
    const bad = compileAuthorizationPolicy(ap("demo", "bad-audit", { action: "AUDIT", rules: [{ frm: [] }] }));
    expect(bad.compiled).toMatchObject({ action: "AUDIT", rules: [] });
    expect(allowed(store([ap("demo", "bad-audit", { action: "AUDIT", rules: [{ frm: [] }] })]), legacy)).toBe(true);
  });

  it("portLevelMtls without a selector is Invalid, as Istio refuses it (item 8)", () => {
    const r = compilePeerAuthentication(pa("demo", "ns", { mtls: { mode: "STRICT" }, portLevelMtls: { "8080": { mode: "DISABLE" } } }));
    invalid(r, "spec.portLevelMtls: requires spec.selector");
    expect(r.compiled).toMatchObject({ mode: "STRICT", portLevel: {} });
    expect(store([], [pa("demo", "ns", { mtls: { mode: "PERMISSIVE" }, portLevelMtls: { "8080": { mode: "DISABLE" } } })]).mtlsMode(payments, 8080)).toBe(
      "STRICT",
    );
  });

  it("bounds a policy's size with an Invalid reason that says what to do (item 2)", () => {
    const blocks = (n: number) => Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    const big = compileAuthorizationPolicy(ap("demo", "big", { action: "DENY", rules: [{ from: [{ source: { ipBlocks: blocks(MAX_POLICY_VALUES + 1) } }] }] }));
    invalid(big, `more than the ${MAX_POLICY_VALUES} an agent accepts`);
    expect(big.condition.message).toContain("aggregate IP blocks");
    // 20,000 blocks (the case) are accepted and decided right, at both ends of the sorted set.
    const twenty = ap("demo", "deny-20k", { action: "DENY", rules: [{ from: [{ source: { ipBlocks: blocks(20_000) } }] }] });
    expect(compileAuthorizationPolicy(twenty).condition.reason).toBe("Accepted");
    const s = store([twenty]);
    expect(allowed(s, conn({ sourceIp: "10.0.0.0" }))).toBe(false);
    expect(allowed(s, conn({ sourceIp: "10.0.78.31" }))).toBe(false);
    expect(allowed(s, conn({ sourceIp: "10.0.78.32" }))).toBe(true);
    expect(allowed(s, conn({ sourceIp: "10.244.1.5" }))).toBe(true);
  });
});
