// Enforces compiled L4 policy at the destination: peer authentication first, then DENY, then ALLOW, with Istio's semantics.
import type {
  AuthorizationAction,
  CompiledAuthorization,
  CompiledCondition,
  CompiledOperation,
  CompiledPeerAuthentication,
  CompiledRule,
  CompiledSource,
  MtlsMode,
} from "../../contract/authorization.ts";
import type { InboundAttributes, InboundDecision, InboundPolicy } from "../dataplane/index.ts";
import { formatSpiffeId } from "../identity/index.ts";
import type { Workload } from "../state/index.ts";
import { IpSet } from "./ip-set.ts";

export class PolicyError extends Error {
  readonly code = "AMBIT_E_POLICY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "PolicyError";
  }
}

/** Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). */
export function matchesPattern(pattern: string, value: string): boolean {
  if (pattern === "*") return value !== "";
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

/** Istio's string patterns, split once: exact values in a set, prefixes and suffixes in lists, `*` as a flag. */
class PatternSet {
  readonly #exact = new Set<string>();
  readonly #prefixes: string[] = [];
  readonly #suffixes: string[] = [];
  #presence = false;

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      if (p === "*") this.#presence = true;
      else if (p.endsWith("*")) this.#prefixes.push(p.slice(0, -1));
      else if (p.startsWith("*")) this.#suffixes.push(p.slice(1));
      else this.#exact.add(p);
    }
  }

  has(value: string): boolean {
    if (this.#exact.has(value) || (this.#presence && value !== "")) return true;
    return this.#prefixes.some((p) => value.startsWith(p)) || this.#suffixes.some((s) => value.endsWith(s));
  }
}

interface Facts {
  /** Istio form (no scheme); "" for plaintext. */
  principal: string;
  namespace: string;
  sourceIp: string | undefined;
  destinationIp: string;
  destinationPort: number;
}

/** A source compiled for lookups; absent fields match anything. */
interface PreparedSource {
  principals?: PatternSet;
  notPrincipals?: PatternSet;
  namespaces?: PatternSet;
  notNamespaces?: PatternSet;
  ipBlocks?: IpSet;
  notIpBlocks?: IpSet;
  remoteIpBlocks?: IpSet;
  notRemoteIpBlocks?: IpSet;
}

interface PreparedOperation {
  ports?: Set<number>;
  notPorts?: Set<number>;
}

/** A `when` condition's values as the set its key compares against. */
type ValueSet = IpSet | PatternSet | Set<string>;

interface PreparedCondition {
  test: (values: ValueSet, f: Facts) => boolean;
  values?: ValueSet;
  notValues?: ValueSet;
}

interface PreparedRule {
  from?: PreparedSource[];
  to?: PreparedOperation[];
  when?: PreparedCondition[];
}

/** A policy as the store evaluates it: built once per config version, so a lookup's cost does not grow with its values. */
interface PreparedPolicy {
  compiled: CompiledAuthorization;
  rules: PreparedRule[];
}

const opt = <T, U>(v: T | undefined, f: (v: T) => U): U | undefined => (v === undefined ? undefined : f(v));

function prepareSource(s: CompiledSource): PreparedSource {
  const out: PreparedSource = {};
  for (const k of ["principals", "notPrincipals", "namespaces", "notNamespaces"] as const) {
    const set = opt(s[k], (v) => new PatternSet(v));
    if (set) out[k] = set;
  }
  for (const k of ["ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"] as const) {
    const set = opt(s[k], (v) => new IpSet(v));
    if (set) out[k] = set;
  }
  return out;
}

function prepareCondition(c: CompiledCondition): PreparedCondition {
  const build = (values: string[]): ValueSet => {
    switch (c.key) {
      case "source.ip":
      case "remote.ip":
      case "destination.ip":
        return new IpSet(values);
      case "destination.port":
        return new Set(values.map((v) => String(Number(v))));
      default:
        return new PatternSet(values);
    }
  };
  const test = (set: ValueSet, f: Facts): boolean => {
    switch (c.key) {
      case "source.ip":
      case "remote.ip":
        return (set as IpSet).has(f.sourceIp);
      case "destination.ip":
        return (set as IpSet).has(f.destinationIp);
      case "destination.port":
        return (set as Set<string>).has(String(f.destinationPort));
      case "source.namespace":
        return (set as PatternSet).has(f.namespace);
      case "source.principal":
        return (set as PatternSet).has(f.principal);
    }
  };
  return { test, ...(c.values ? { values: build(c.values) } : {}), ...(c.notValues ? { notValues: build(c.notValues) } : {}) };
}

function prepareRule(r: CompiledRule): PreparedRule {
  const out: PreparedRule = {};
  if (r.from) out.from = r.from.map(prepareSource);
  if (r.to)
    out.to = r.to.map((o) => ({
      ...(o.ports ? { ports: new Set(o.ports.map(Number)) } : {}),
      ...(o.notPorts ? { notPorts: new Set(o.notPorts.map(Number)) } : {}),
    }));
  if (r.when) out.when = r.when.map(prepareCondition);
  return out;
}

function sourceMatches(s: PreparedSource, f: Facts): boolean {
  if (s.principals && !s.principals.has(f.principal)) return false;
  if (s.notPrincipals?.has(f.principal)) return false;
  if (s.namespaces && !s.namespaces.has(f.namespace)) return false;
  if (s.notNamespaces?.has(f.namespace)) return false;
  if (s.ipBlocks && !s.ipBlocks.has(f.sourceIp)) return false;
  if (s.notIpBlocks?.has(f.sourceIp)) return false;
  // No proxy stands between the client and the destination agent: the remote address is the source address.
  if (s.remoteIpBlocks && !s.remoteIpBlocks.has(f.sourceIp)) return false;
  if (s.notRemoteIpBlocks?.has(f.sourceIp)) return false;
  return true;
}

const operationMatches = (o: PreparedOperation, f: Facts): boolean =>
  (!o.ports || o.ports.has(f.destinationPort)) && (!o.notPorts || !o.notPorts.has(f.destinationPort));

/** -1: the rule has no such list (matches anything); otherwise the index of the first entry that matched, or undefined. */
function firstMatch<T>(list: T[] | undefined, test: (item: T) => boolean): number | undefined {
  if (!list) return -1;
  const i = list.findIndex(test);
  return i < 0 ? undefined : i;
}

/**
 * The one matching core, for enforcement and explanation alike: whether a rule matches and, if so, which `from` and
 * `to` entries did (-1 when the rule has none). Allocates only on a match, so the per-connection cost stays flat.
 */
function matchRule(r: PreparedRule, f: Facts): { from: number; to: number } | undefined {
  const from = firstMatch(r.from, (s) => sourceMatches(s, f));
  if (from === undefined) return undefined;
  const to = firstMatch(r.to, (o) => operationMatches(o, f));
  if (to === undefined) return undefined;
  if (r.when && !r.when.every((c) => (!c.values || c.test(c.values, f)) && (!c.notValues || !c.test(c.notValues, f)))) return undefined;
  return { from, to };
}

const selects = (p: { namespace: string; selector?: Record<string, string>; selectorKeys?: string[] }, w: Workload, rootNamespace: string): boolean =>
  (p.namespace === rootNamespace || p.namespace === w.namespace) &&
  (!p.selector || Object.entries(p.selector).every(([k, v]) => w.labels[k] === v)) &&
  (!p.selectorKeys || p.selectorKeys.every((k) => w.labels[k] !== undefined));

/** Namespace- or mesh-wide: no selector of either kind. */
const scopeWide = (p: { selector?: unknown; selectorKeys?: unknown }) => !p.selector && !p.selectorKeys;

function checkShape(value: unknown, kind: string): void {
  const v = value as Record<string, unknown> | null;
  if (!v || typeof v.namespace !== "string" || typeof v.name !== "string") throw new PolicyError(`a ${kind} without namespace and name`);
}

/** Which PeerAuthentication setting decided the mode: a workload policy's port-level or own mode, the namespace's, the mesh's. */
export type MtlsLevel = "port" | "workload" | "namespace" | "mesh";

export interface MtlsExplanation {
  mode: Exclude<MtlsMode, "UNSET">;
  /** Absent: no PeerAuthentication sets a mode, so the default (PERMISSIVE) applies. */
  peerAuthentication?: { namespace: string; name: string; level: MtlsLevel };
}

export interface PolicyRef {
  namespace: string;
  name: string;
  action: AuthorizationAction;
}

/** The rule of a policy that matched a connection, and which of its clauses did. */
export interface RuleMatch {
  policy: PolicyRef;
  /** Index in the compiled rules (as the agent holds them: an ALLOW's L7-only rules are already dropped). */
  ruleIndex: number;
  /** The `from` source that matched; absent when the rule has no `from` (any source). */
  from?: { index: number; source: CompiledSource };
  /** The `to` operation that matched; absent when the rule has no `to` (any port). */
  to?: { index: number; operation: CompiledOperation };
  /** The rule's conditions, all of which held. */
  when?: CompiledCondition[];
}

/**
 * How a decision was reached: plaintext refused by STRICT mTLS; a DENY rule matched; an ALLOW rule matched; no
 * ALLOW policy selects the workload (allowed); ALLOW policies select it and none matched (denied).
 */
export type DecisionBasis = "mtls" | "deny" | "allow" | "no-allow-policy" | "no-allow-match";

export interface PolicyExplanation {
  allowed: boolean;
  /** The same words the data path logs. */
  reason: string;
  decidedBy: DecisionBasis;
  /** The source as policies see it (Istio's form, no scheme); "" for plaintext. */
  principal: string;
  mtls: MtlsExplanation;
  /** The matching DENY or ALLOW rule, for `deny` and `allow`. */
  match?: RuleMatch;
  /** Every authorization policy that selects the destination, in evaluation order. */
  selecting: PolicyRef[];
  /** AUDIT rules the connection matched: logged, never part of the decision. */
  audit: RuleMatch[];
}

/** The node's policies, indexed by namespace; replaced whole on every config version. */
export class PolicyStore implements InboundPolicy {
  readonly #rootNamespace: string;
  #authz = new Map<string, PreparedPolicy[]>();
  #peer = new Map<string, CompiledPeerAuthentication[]>();

  constructor(opts: { rootNamespace: string }) {
    this.#rootNamespace = opts.rootNamespace;
  }

  /** Throws (and keeps the previous policies) if any entry is malformed: a config version applies whole or not at all. */
  replace(authorizations: unknown[], peerAuthentications: unknown[]): void {
    const authz = new Map<string, PreparedPolicy[]>();
    for (const a of authorizations) {
      checkShape(a, "authorization policy");
      const p = a as CompiledAuthorization;
      if ((p.action !== "ALLOW" && p.action !== "DENY" && p.action !== "AUDIT") || !Array.isArray(p.rules))
        throw new PolicyError(`authorization policy ${p.namespace}/${p.name} has no valid action and rules`);
      let rules: PreparedRule[];
      try {
        rules = p.rules.map(prepareRule);
      } catch (err) {
        throw new PolicyError(`authorization policy ${p.namespace}/${p.name}: ${(err as Error).message}`);
      }
      let list = authz.get(p.namespace);
      if (!list) authz.set(p.namespace, (list = []));
      list.push({ compiled: p, rules });
    }
    const peer = new Map<string, CompiledPeerAuthentication[]>();
    for (const a of peerAuthentications) {
      checkShape(a, "peer authentication");
      const p = a as CompiledPeerAuthentication;
      peer.set(p.namespace, [...(peer.get(p.namespace) ?? []), p]);
    }
    this.#authz = authz;
    this.#peer = peer;
  }

  /** Most specific wins: workload selector (oldest first) > namespace > mesh; UNSET inherits; the default is PERMISSIVE. */
  mtlsMode(w: Workload, port: number): Exclude<MtlsMode, "UNSET"> {
    return this.#mtls(w, port).mode;
  }

  /** The mode and the PeerAuthentication (and level) that set it; none when the default applies. */
  #mtls(w: Workload, port: number): MtlsExplanation {
    const own = this.#peer.get(w.namespace) ?? [];
    // RFC 3339 timestamps order by code unit; localeCompare would load ICU's collation data (~2.5 MiB of RSS).
    const workloadLevel = own
      .filter((p) => !scopeWide(p) && selects(p, w, ""))
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0))[0];
    const namespaceLevel = own.find(scopeWide);
    const meshLevel = (this.#peer.get(this.#rootNamespace) ?? []).find(scopeWide);
    const candidates: Array<[MtlsMode | undefined, CompiledPeerAuthentication | undefined, MtlsLevel]> = [
      [workloadLevel?.portLevel[String(port)], workloadLevel, "port"],
      [workloadLevel?.mode, workloadLevel, "workload"],
      [namespaceLevel?.mode, namespaceLevel, "namespace"],
      [meshLevel?.mode, meshLevel, "mesh"],
    ];
    for (const [mode, p, level] of candidates) {
      if (mode && mode !== "UNSET" && p) return { mode, peerAuthentication: { namespace: p.namespace, name: p.name, level } };
    }
    return { mode: "PERMISSIVE" };
  }

  /** The data path's question: the decision alone, taken by `explain` so the two can never disagree. */
  check(conn: InboundAttributes): InboundDecision {
    const e = this.explain(conn);
    return e.audit.length
      ? { allowed: e.allowed, reason: e.reason, audit: e.audit.map((m) => `${m.policy.namespace}/${m.policy.name}`) }
      : { allowed: e.allowed, reason: e.reason };
  }

  /**
   * The decision for one connection with everything that led to it: the peer authentication mode and where it
   * comes from, the DENY or ALLOW rule that matched (which `from` source and `to` operation), or why no match
   * means allow or deny, the policies that select the destination, and AUDIT matches. `check` is this function.
   */
  explain(conn: InboundAttributes): PolicyExplanation {
    const w = conn.destination;
    const principal = conn.source ? formatSpiffeId(conn.source).replace(/^spiffe:\/\//, "") : "";
    const mtls = this.#mtls(w, conn.destinationPort);
    const applicable = [
      ...(this.#authz.get(w.namespace) ?? []),
      ...(w.namespace === this.#rootNamespace ? [] : (this.#authz.get(this.#rootNamespace) ?? [])),
    ].filter((p) => selects(p.compiled, w, this.#rootNamespace));
    const selecting = applicable.map((p) => ({ namespace: p.compiled.namespace, name: p.compiled.name, action: p.compiled.action }));
    if (!conn.source && mtls.mode === "STRICT") {
      return {
        allowed: false,
        reason: `STRICT mTLS for ${w.namespace}/${w.name}:${conn.destinationPort} requires a mesh identity; the client sent plaintext`,
        decidedBy: "mtls",
        principal,
        mtls,
        selecting,
        audit: [],
      };
    }
    const facts: Facts = {
      principal,
      namespace: conn.source?.namespace ?? "",
      sourceIp: conn.sourceIp,
      destinationIp: conn.destinationIp,
      destinationPort: conn.destinationPort,
    };
    const firstRule = (p: PreparedPolicy): RuleMatch | undefined => {
      for (let i = 0; i < p.rules.length; i++) {
        const m = matchRule(p.rules[i]!, facts);
        if (!m) continue;
        const rule = p.compiled.rules[i]!;
        return {
          policy: { namespace: p.compiled.namespace, name: p.compiled.name, action: p.compiled.action },
          ruleIndex: i,
          ...(m.from >= 0 ? { from: { index: m.from, source: rule.from![m.from]! } } : {}),
          ...(m.to >= 0 ? { to: { index: m.to, operation: rule.to![m.to]! } } : {}),
          ...(rule.when ? { when: rule.when } : {}),
        };
      }
      return undefined;
    };
    const named = (p: PreparedPolicy) => `${p.compiled.namespace}/${p.compiled.name}`;
    // AUDIT never changes the decision (Istio's semantics): its matches are only reported, whatever is decided.
    const audit = applicable.flatMap((p) => (p.compiled.action === "AUDIT" ? (firstRule(p) ?? []) : []));
    const base = { principal, mtls, selecting, audit };
    for (const p of applicable) {
      if (p.compiled.action !== "DENY") continue;
      const match = firstRule(p);
      if (match) return { ...base, allowed: false, reason: `denied by policy ${named(p)}`, decidedBy: "deny", match };
    }
    const allows = applicable.filter((p) => p.compiled.action === "ALLOW");
    if (allows.length === 0) return { ...base, allowed: true, reason: "no ALLOW policy selects the workload", decidedBy: "no-allow-policy" };
    for (const p of allows) {
      const match = firstRule(p);
      if (match) return { ...base, allowed: true, reason: `allowed by policy ${named(p)}`, decidedBy: "allow", match };
    }
    return {
      ...base,
      allowed: false,
      reason: `no ALLOW policy matched for ${w.namespace}/${w.name} (from ${principal || conn.sourceIp || "unknown"})`,
      decidedBy: "no-allow-match",
    };
  }

  /** For the admin API. */
  dump(): { authorizations: CompiledAuthorization[]; peerAuthentications: CompiledPeerAuthentication[] } {
    return { authorizations: [...this.#authz.values()].flat().map((p) => p.compiled), peerAuthentications: [...this.#peer.values()].flat() };
  }
}
