// The matching core every policy evaluator shares (L4 at the node agent, L7 at the waypoint): patterns, sources, ports, L4 conditions and Istio's action order.
import type { AuthorizationAction, CompiledCondition, CompiledSource } from "../../contract/authorization.ts";
import { IpSet } from "./ip-set.ts";

/** Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). */
export function matchesPattern(pattern: string, value: string): boolean {
  if (pattern === "*") return value !== "";
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

/** Istio's string patterns, split once: exact values in a set, prefixes and suffixes in lists, `*` as a flag. */
export class PatternSet {
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

/** What an L4 rule can see of a connection; the waypoint's request facts extend it. */
export interface Facts {
  /** Istio form (no scheme); "" for plaintext. */
  principal: string;
  namespace: string;
  sourceIp: string | undefined;
  /** The original client, when a proxy between it and the enforcer reports one; otherwise the source address is used. */
  remoteIp?: string | undefined;
  destinationIp: string;
  destinationPort: number;
}

/** A test on the facts, built once per config version. */
export type Predicate<F> = (f: F) => boolean;

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

/** A rule as an evaluator runs it; `to` and `when` entries are predicates so each layer adds its own attributes. */
export interface PreparedRule<F extends Facts> {
  from?: PreparedSource[];
  to?: Array<Predicate<F>>;
  when?: Array<Predicate<F>>;
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

/** `ports` / `notPorts` of an operation (the part both layers share). */
export function preparePorts(o: { ports?: number[]; notPorts?: number[] }): Predicate<Facts> {
  const ports = o.ports ? new Set(o.ports.map(Number)) : undefined;
  const notPorts = o.notPorts ? new Set(o.notPorts.map(Number)) : undefined;
  return (f) => (!ports || ports.has(f.destinationPort)) && (!notPorts || !notPorts.has(f.destinationPort));
}

/** A condition holds when its value matches one of `values` (if given) and none of `notValues`. */
export function valuesAndNot<T, F>(values: T | undefined, notValues: T | undefined, test: (set: T, f: F) => boolean): Predicate<F> {
  return (f) => (values === undefined || test(values, f)) && (notValues === undefined || !test(notValues, f));
}

/** One of the L4 `when` keys, which the waypoint evaluates the same way. */
export function prepareL4Condition(c: CompiledCondition): Predicate<Facts> {
  switch (c.key) {
    case "source.ip":
    case "remote.ip":
    case "destination.ip": {
      const key = c.key;
      const ip = (f: Facts) => (key === "destination.ip" ? f.destinationIp : key === "remote.ip" ? (f.remoteIp ?? f.sourceIp) : f.sourceIp);
      return valuesAndNot(
        opt(c.values, (v) => new IpSet(v)),
        opt(c.notValues, (v) => new IpSet(v)),
        (set, f: Facts) => set.has(ip(f)),
      );
    }
    case "destination.port": {
      const build = (values: string[]) => new Set(values.map((v) => String(Number(v))));
      return valuesAndNot(opt(c.values, build), opt(c.notValues, build), (set, f: Facts) => set.has(String(f.destinationPort)));
    }
    case "source.namespace":
      return valuesAndNot(
        opt(c.values, (v) => new PatternSet(v)),
        opt(c.notValues, (v) => new PatternSet(v)),
        (set, f: Facts) => set.has(f.namespace),
      );
    case "source.principal":
      return valuesAndNot(
        opt(c.values, (v) => new PatternSet(v)),
        opt(c.notValues, (v) => new PatternSet(v)),
        (set, f: Facts) => set.has(f.principal),
      );
    default:
      // A key this agent does not know (a newer controller's) matches no value, as it always has: `values` fail, `notValues` hold.
      return valuesAndNot(c.values, c.notValues, () => false);
  }
}

/** A compiled rule as predicates: sources are the same at every layer, operations and conditions are the layer's. */
export function prepareRule<O, C, F extends Facts>(
  r: { from?: CompiledSource[]; to?: O[]; when?: C[] },
  operation: (o: O) => Predicate<F>,
  condition: (c: C) => Predicate<F>,
): PreparedRule<F> {
  const out: PreparedRule<F> = {};
  if (r.from) out.from = r.from.map(prepareSource);
  if (r.to) out.to = r.to.map(operation);
  if (r.when) out.when = r.when.map(condition);
  return out;
}

function sourceMatches(s: PreparedSource, f: Facts): boolean {
  if (s.principals && !s.principals.has(f.principal)) return false;
  if (s.notPrincipals?.has(f.principal)) return false;
  if (s.namespaces && !s.namespaces.has(f.namespace)) return false;
  if (s.notNamespaces?.has(f.namespace)) return false;
  if (s.ipBlocks && !s.ipBlocks.has(f.sourceIp)) return false;
  if (s.notIpBlocks?.has(f.sourceIp)) return false;
  // With no proxy between the client and the enforcer (the node agent's case) the remote address is the source address.
  const remote = f.remoteIp ?? f.sourceIp;
  if (s.remoteIpBlocks && !s.remoteIpBlocks.has(remote)) return false;
  if (s.notRemoteIpBlocks?.has(remote)) return false;
  return true;
}

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
export function matchRule<F extends Facts>(r: PreparedRule<F>, f: F): { from: number; to: number } | undefined {
  const from = firstMatch(r.from, (s) => sourceMatches(s, f));
  if (from === undefined) return undefined;
  const to = firstMatch(r.to, (o) => o(f));
  if (to === undefined) return undefined;
  if (r.when && !r.when.every((c) => c(f))) return undefined;
  return { from, to };
}

export interface PolicyRef {
  namespace: string;
  name: string;
  action: AuthorizationAction;
}

/** The rule of a policy that matched, and which of its clauses did; `O` and `C` are the layer's operation and condition. */
export interface RuleMatch<O, C> {
  policy: PolicyRef;
  /** Index in the compiled rules as the enforcer holds them (at L4 an ALLOW's L7-only rules are already dropped). */
  ruleIndex: number;
  /** The `from` source that matched; absent when the rule has no `from` (any source). */
  from?: { index: number; source: CompiledSource };
  /** The `to` operation that matched; absent when the rule has no `to` (any operation). */
  to?: { index: number; operation: O };
  /** The rule's conditions, all of which held. */
  when?: C[];
}

/** A compiled policy next to its prepared rules: built once per config version. */
export interface PreparedPolicy<O, C, F extends Facts> {
  compiled: {
    namespace: string;
    name: string;
    action: AuthorizationAction;
    rules: Array<{ from?: CompiledSource[]; to?: O[]; when?: C[] }>;
  };
  rules: Array<PreparedRule<F>>;
}

/** The first rule of a policy the facts match, described for logs and `ambit explain`. */
export function firstRuleMatch<O, C, F extends Facts>(p: PreparedPolicy<O, C, F>, f: F): RuleMatch<O, C> | undefined {
  for (let i = 0; i < p.rules.length; i++) {
    const m = matchRule(p.rules[i]!, f);
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
}

/** How the action layers decided: a DENY rule matched; an ALLOW rule matched; no ALLOW policy applies; ALLOW policies apply and none matched. */
export type ActionBasis = "deny" | "allow" | "no-allow-policy" | "no-allow-match";

/** The decision of the action layers; `match` is the DENY or ALLOW rule that decided, when one did. */
export type ActionOutcome<O, C> = {
  /** AUDIT rules the facts matched: reported, never part of the decision. */
  audit: Array<RuleMatch<O, C>>;
} & (
  | { allowed: false; decidedBy: "deny"; match: RuleMatch<O, C> }
  | { allowed: true; decidedBy: "allow"; match: RuleMatch<O, C> }
  | { allowed: true; decidedBy: "no-allow-policy" }
  | { allowed: false; decidedBy: "no-allow-match" }
);

/**
 * Istio's order over the policies that apply (CUSTOM never reaches an enforcer: the controller refuses it): any DENY
 * match denies; then, if any ALLOW policy applies, one must match (an ALLOW without rules matches nothing); AUDIT
 * matches are reported whatever is decided.
 */
export function decideByActions<O, C, F extends Facts>(applicable: Array<PreparedPolicy<O, C, F>>, f: F): ActionOutcome<O, C> {
  const audit = applicable.flatMap((p) => (p.compiled.action === "AUDIT" ? (firstRuleMatch(p, f) ?? []) : []));
  for (const p of applicable) {
    if (p.compiled.action !== "DENY") continue;
    const match = firstRuleMatch(p, f);
    if (match) return { allowed: false, decidedBy: "deny", match, audit };
  }
  const allows = applicable.filter((p) => p.compiled.action === "ALLOW");
  if (allows.length === 0) return { allowed: true, decidedBy: "no-allow-policy", audit };
  for (const p of allows) {
    const match = firstRuleMatch(p, f);
    if (match) return { allowed: true, decidedBy: "allow", match, audit };
  }
  return { allowed: false, decidedBy: "no-allow-match", audit };
}
