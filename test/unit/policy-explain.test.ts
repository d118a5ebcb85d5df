// PolicyStore.explain: what it reports, and that it agrees with enforcement (check) and with a naive reading of Istio's semantics on generated cases.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IpSet, PolicyStore, matchesPattern } from "../../agent/authorization/index.ts";
import type { InboundAttributes } from "../../agent/dataplane/index.ts";
import type { Workload } from "../../agent/state/index.ts";
import type {
  CompiledAuthorization,
  CompiledCondition,
  CompiledOperation,
  CompiledPeerAuthentication,
  CompiledRule,
  CompiledSource,
} from "../../contract/authorization.ts";
import { formatSpiffeId } from "../../contract/spiffe.ts";
import { compileAuthorizationPolicy } from "../../controller/authorization/index.ts";
import { DEMO_PAYMENTS } from "../support/demo-mesh.ts";

const RUNS = { numRuns: 1000, seed: 20261206 };
const ROOT = "ambit-system";

const payments: Workload = DEMO_PAYMENTS;

describe("explain", () => {
  const store = (authz: CompiledAuthorization[], peer: CompiledPeerAuthentication[] = []) => {
    const s = new PolicyStore({ rootNamespace: ROOT });
    s.replace(authz, peer);
    return s;
  };
  const conn = (sa: string | undefined, port = 8080): InboundAttributes => ({
    ...(sa ? { source: { trustDomain: "cluster.local", namespace: "demo", serviceAccount: sa } } : {}),
    sourceIp: "10.244.1.4",
    destination: payments,
    destinationIp: payments.ip,
    destinationPort: port,
  });
  const compiled = (name: string, spec: Record<string, unknown>) =>
    compileAuthorizationPolicy({ apiVersion: "security.ambit.dev/v1", kind: "AuthorizationPolicy", metadata: { name, namespace: "demo" }, spec }).compiled;
  const policies = [
    compiled("allow-nothing", {}),
    compiled("payments-from-orders", {
      selector: { matchLabels: { app: "payments" } },
      rules: [
        {
          from: [{ source: { namespaces: ["other"] } }, { source: { principals: ["cluster.local/ns/demo/sa/orders"] } }],
          to: [{ operation: { ports: ["8080"] } }],
        },
      ],
    }),
    compiled("deny-legacy", { action: "DENY", rules: [{ from: [{ source: { principals: ["*/sa/legacy"] } }] }] }),
    compiled("audit-all", { action: "AUDIT", rules: [{}] }),
  ];

  it("names the ALLOW rule and the clauses that matched", () => {
    const e = store(policies).explain(conn("orders"));
    expect(e).toMatchObject({
      allowed: true,
      decidedBy: "allow",
      reason: "allowed by policy demo/payments-from-orders",
      principal: "cluster.local/ns/demo/sa/orders",
      match: {
        policy: { namespace: "demo", name: "payments-from-orders", action: "ALLOW" },
        ruleIndex: 0,
        from: { index: 1, source: { principals: ["cluster.local/ns/demo/sa/orders"] } },
        to: { index: 0, operation: { ports: [8080] } },
      },
      mtls: { mode: "PERMISSIVE" },
    });
    expect(e.selecting.map((p) => p.name)).toEqual(["allow-nothing", "payments-from-orders", "deny-legacy", "audit-all"]);
    expect(e.audit).toEqual([{ policy: { namespace: "demo", name: "audit-all", action: "AUDIT" }, ruleIndex: 0 }]);
  });

  it("says deny because ALLOW policies select the workload and none matched, and names the DENY rule when one matches", () => {
    expect(store(policies).explain(conn("client"))).toMatchObject({ allowed: false, decidedBy: "no-allow-match" });
    expect(store(policies).explain(conn("orders", 9090))).toMatchObject({ allowed: false, decidedBy: "no-allow-match" });
    expect(store(policies).explain(conn("legacy"))).toMatchObject({
      allowed: false,
      decidedBy: "deny",
      match: { policy: { name: "deny-legacy", action: "DENY" }, ruleIndex: 0, from: { index: 0 } },
    });
    expect(store([]).explain(conn("client"))).toMatchObject({ allowed: true, decidedBy: "no-allow-policy", selecting: [] });
  });

  it("reports the PeerAuthentication that sets the mode, and STRICT refusing plaintext", () => {
    const peer: CompiledPeerAuthentication[] = [
      { namespace: ROOT, name: "mesh", mode: "PERMISSIVE", portLevel: {}, createdAt: "" },
      { namespace: "demo", name: "payments-strict", selector: { app: "payments" }, mode: "STRICT", portLevel: { "9090": "DISABLE" }, createdAt: "" },
    ];
    expect(store([], peer).explain(conn(undefined))).toMatchObject({
      allowed: false,
      decidedBy: "mtls",
      mtls: { mode: "STRICT", peerAuthentication: { namespace: "demo", name: "payments-strict", level: "workload" } },
    });
    expect(store([], peer).explain(conn(undefined, 9090)).mtls).toEqual({
      mode: "DISABLE",
      peerAuthentication: { namespace: "demo", name: "payments-strict", level: "port" },
    });
    expect(store([], peer.slice(0, 1)).explain(conn(undefined)).mtls).toEqual({
      mode: "PERMISSIVE",
      peerAuthentication: { namespace: ROOT, name: "mesh", level: "mesh" },
    });
  });
});

// ---- agreement on generated cases: explain against check (enforcement) and against a naive evaluator written from Istio's docs.

const PRINCIPALS = ["cluster.local/ns/demo/sa/orders", "cluster.local/ns/demo/*", "*/sa/client", "*", "cluster.local/ns/other/sa/x"];
const NAMESPACES = ["demo", "other", "*", "de*"];
const BLOCKS = ["10.0.0.0/8", "10.244.1.0/24", "10.244.2.7", "192.168.0.0/16", "fd00::/8"];
const PORTS = [80, 8080, 9090];
const pick = <T>(xs: readonly T[]) => fc.subarray([...xs], { minLength: 1 });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });
const strip = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

const source: fc.Arbitrary<CompiledSource> = fc
  .record({
    principals: opt(pick(PRINCIPALS)),
    notPrincipals: opt(pick(PRINCIPALS)),
    namespaces: opt(pick(NAMESPACES)),
    notNamespaces: opt(pick(NAMESPACES)),
    ipBlocks: opt(pick(BLOCKS)),
    notIpBlocks: opt(pick(BLOCKS)),
    remoteIpBlocks: opt(pick(BLOCKS)),
  })
  .map(strip);
const operation: fc.Arbitrary<CompiledOperation> = fc.record({ ports: opt(pick(PORTS)), notPorts: opt(pick(PORTS)) }).map(strip);
const condition: fc.Arbitrary<CompiledCondition> = fc.oneof(
  fc.record({ key: fc.constant("source.namespace" as const), values: pick(NAMESPACES) }),
  fc.record({ key: fc.constant("source.principal" as const), notValues: pick(PRINCIPALS) }),
  fc.record({ key: fc.constant("destination.port" as const), values: pick(PORTS.map(String)) }),
  fc.record({ key: fc.constant("source.ip" as const), values: pick(BLOCKS) }),
  fc.record({ key: fc.constant("destination.ip" as const), notValues: pick(BLOCKS) }),
);
const rule: fc.Arbitrary<CompiledRule> = fc
  .record({
    from: opt(fc.array(source, { minLength: 1, maxLength: 3 })),
    to: opt(fc.array(operation, { minLength: 1, maxLength: 2 })),
    when: opt(fc.array(condition, { minLength: 1, maxLength: 2 })),
  })
  .map(strip);
const authorization: fc.Arbitrary<CompiledAuthorization> = fc
  .record({
    namespace: fc.constantFrom("demo", "other", ROOT),
    name: fc.constantFrom("a", "b", "c", "d"),
    selector: opt(fc.constantFrom({ app: "payments" }, { app: "fraud" }, { tier: "backend" })),
    action: fc.constantFrom("ALLOW" as const, "DENY" as const, "AUDIT" as const),
    rules: fc.array(rule, { maxLength: 3 }),
  })
  .map((p) => strip(p) as CompiledAuthorization);
const peer: fc.Arbitrary<CompiledPeerAuthentication> = fc
  .record({
    namespace: fc.constantFrom("demo", ROOT),
    name: fc.constantFrom("p", "q"),
    selector: opt(fc.constantFrom({ app: "payments" }, { app: "fraud" })),
    mode: fc.constantFrom("UNSET" as const, "DISABLE" as const, "PERMISSIVE" as const, "STRICT" as const),
    portLevel: fc.dictionary(fc.constantFrom("80", "8080"), fc.constantFrom("UNSET" as const, "PERMISSIVE" as const, "STRICT" as const)),
    createdAt: fc.constantFrom("2026-01-01", "2026-02-01"),
  })
  .map(strip);
const connection: fc.Arbitrary<InboundAttributes> = fc.record({
  source: opt(
    fc.record({
      trustDomain: fc.constant("cluster.local"),
      namespace: fc.constantFrom("demo", "other"),
      serviceAccount: fc.constantFrom("orders", "client", "x"),
    }),
  ),
  sourceIp: fc.constantFrom("10.244.1.4", "10.244.2.7", "192.168.3.4", "fd00::1", undefined),
  destination: fc.constantFrom(payments, { ...payments, labels: { app: "payments", tier: "backend" } }, { ...payments, labels: {} }),
  destinationIp: fc.constantFrom(payments.ip, "10.244.2.7"),
  destinationPort: fc.constantFrom(...PORTS),
}) as fc.Arbitrary<InboundAttributes>;

/** Istio's L4 semantics read literally, with none of the store's indexing: the yardstick for both. */
function naive(authz: CompiledAuthorization[], c: InboundAttributes) {
  const principal = c.source ? formatSpiffeId(c.source).slice("spiffe://".length) : "";
  const ns = c.source?.namespace ?? "";
  const anyOf = (patterns: string[] | undefined, v: string) => patterns === undefined || patterns.some((p) => matchesPattern(p, v));
  const noneOf = (patterns: string[] | undefined, v: string) => patterns === undefined || !patterns.some((p) => matchesPattern(p, v));
  const inBlocks = (blocks: string[] | undefined, ip: string | undefined) => blocks === undefined || new IpSet(blocks).has(ip);
  const outBlocks = (blocks: string[] | undefined, ip: string | undefined) => blocks === undefined || !new IpSet(blocks).has(ip);
  const src = (s: CompiledSource) =>
    anyOf(s.principals, principal) &&
    noneOf(s.notPrincipals, principal) &&
    anyOf(s.namespaces, ns) &&
    noneOf(s.notNamespaces, ns) &&
    inBlocks(s.ipBlocks, c.sourceIp) &&
    outBlocks(s.notIpBlocks, c.sourceIp) &&
    inBlocks(s.remoteIpBlocks, c.sourceIp) &&
    outBlocks(s.notRemoteIpBlocks, c.sourceIp);
  const op = (o: CompiledOperation) => (o.ports === undefined || o.ports.includes(c.destinationPort)) && !(o.notPorts ?? []).includes(c.destinationPort);
  const holds = (k: CompiledCondition, values: string[]) => {
    if (k.key === "source.ip" || k.key === "remote.ip") return new IpSet(values).has(c.sourceIp);
    if (k.key === "destination.ip") return new IpSet(values).has(c.destinationIp);
    if (k.key === "destination.port") return values.map(Number).includes(c.destinationPort);
    return values.some((p) => matchesPattern(p, k.key === "source.namespace" ? ns : principal));
  };
  const cond = (k: CompiledCondition) => (!k.values || holds(k, k.values)) && (!k.notValues || !holds(k, k.notValues));
  const ruleMatches = (r: CompiledRule) => (!r.from || r.from.some(src)) && (!r.to || r.to.some(op)) && (!r.when || r.when.every(cond));
  const w = c.destination;
  const selected = authz.filter(
    (p) => (p.namespace === ROOT || p.namespace === w.namespace) && Object.entries(p.selector ?? {}).every(([k, v]) => w.labels[k] === v),
  );
  return { principal, selected, ruleMatches, src, op };
}

describe("explain agrees with enforcement", () => {
  it("on generated policies, peer authentications and connections", () => {
    fc.assert(
      fc.property(
        // Names unique per namespace, as Kubernetes keeps them.
        fc.uniqueArray(authorization, { maxLength: 6, selector: (p) => `${p.namespace}/${p.name}` }),
        fc.uniqueArray(peer, { maxLength: 3, selector: (p) => `${p.namespace}/${p.name}` }),
        connection,
        (authz, peers, c) => {
          const store = new PolicyStore({ rootNamespace: ROOT });
          store.replace(authz, peers);
          const e = store.explain(c);
          const d = store.check(c);
          // Enforcement and explanation: the same decision, reason and audit list.
          expect(d.allowed).toBe(e.allowed);
          expect(d.reason).toBe(e.reason);
          expect(d.audit ?? []).toEqual(e.audit.map((m) => `${m.policy.namespace}/${m.policy.name}`));
          expect(e.mtls.mode).toBe(store.mtlsMode(c.destination, c.destinationPort));

          // Both against the naive reading.
          const ref = naive(authz, c);
          if (e.decidedBy === "mtls") {
            expect(c.source).toBeUndefined();
            expect(e.mtls.mode).toBe("STRICT");
            return;
          }
          const matching = (action: string) => ref.selected.filter((p) => p.action === action && p.rules.some(ref.ruleMatches));
          const expected = matching("DENY").length > 0 ? false : ref.selected.every((p) => p.action !== "ALLOW") || matching("ALLOW").length > 0;
          expect(e.allowed).toBe(expected);
          expect(e.selecting.map((p) => `${p.namespace}/${p.name}/${p.action}`).sort()).toEqual(
            ref.selected.map((p) => `${p.namespace}/${p.name}/${p.action}`).sort(),
          );
          expect(e.audit.length).toBe(matching("AUDIT").length);
          const expectedBasis = matching("DENY").length
            ? "deny"
            : ref.selected.every((p) => p.action !== "ALLOW")
              ? "no-allow-policy"
              : matching("ALLOW").length
                ? "allow"
                : "no-allow-match";
          expect(e.decidedBy).toBe(expectedBasis);
          // The named rule matches, it is the policy's first matching rule, and the named clauses are the first that match.
          for (const m of [...(e.match ? [e.match] : []), ...e.audit]) {
            const p = authz.find(
              (a) => a.namespace === m.policy.namespace && a.name === m.policy.name && a.action === m.policy.action && ref.selected.includes(a),
            )!;
            expect(p.rules.findIndex(ref.ruleMatches)).toBe(m.ruleIndex);
            const r = p.rules[m.ruleIndex]!;
            expect(m.from?.index ?? -1).toBe(r.from ? r.from.findIndex(ref.src) : -1);
            expect(m.to?.index ?? -1).toBe(r.to ? r.to.findIndex(ref.op) : -1);
            if (m.from) expect(m.from.source).toBe(r.from![m.from.index]);
          }
          expect(e.match === undefined).toBe(e.decidedBy === "no-allow-policy" || e.decidedBy === "no-allow-match");
        },
      ),
      RUNS,
    );
  });
});
