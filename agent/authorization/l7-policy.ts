// Decides HTTP requests at a waypoint with Istio's semantics (DENY, then ALLOW; AUDIT reported), sharing the L4 matching core.
import type { CompiledL7Authorization, CompiledL7Condition, CompiledL7Operation, CompiledL7Rule, PolicyTarget } from "../../contract/l7-authorization.ts";
import { type SpiffeId, formatSpiffeId } from "../identity/index.ts";
import {
  type ActionBasis,
  type Facts,
  PatternSet,
  type PolicyRef,
  type Predicate,
  type PreparedPolicy,
  type PreparedRule,
  type RuleMatch,
  decideByActions,
  prepareL4Condition,
  preparePorts,
  prepareRule,
} from "./match.ts";
import { PolicyError } from "./policy-store.ts";

/** Istio's answer to a denied request (Envoy's RBAC filter), byte for byte, so clients and tests written for Istio see the same. */
export const RBAC_DENIED_RESPONSE = Object.freeze({
  status: 403,
  headers: Object.freeze({ "content-type": "text/plain" }),
  body: "RBAC: access denied",
});

/** A request as the waypoint sees it, after HBONE and HTTP parsing. */
export interface HttpAuthorizationRequest {
  /** The Gateway (waypoint) handling the request: policies targeting it apply to everything it carries. */
  waypoint: { namespace: string; name: string };
  /** The Service the request is for (from the HBONE `:authority`); policies targeting it apply. Absent: addressed to a workload. */
  service?: { namespace: string; name: string };
  /** The client's identity, proven by its HBONE certificate; absent if the waypoint ever accepts a non-mesh client. */
  source?: SpiffeId;
  /** The client's address, as the HBONE connection reports it. */
  sourceIp?: string;
  /** The original client when one is reported in front of `sourceIp` (no X-Forwarded-For hop is trusted yet): `remoteIpBlocks` and `remote.ip` match it. */
  remoteIp?: string;
  /** The address and port the client asked for (the HBONE `:authority`). */
  destinationIp: string;
  destinationPort: number;
  method: string;
  /** The request target as received; matched as `normalizeRequestPath` returns it, which is also what the waypoint must forward. */
  path: string;
  /** `:authority` (HTTP/2) or `Host` (HTTP/1.1). */
  host: string;
  /** Request headers; names in any case, repeated headers as arrays (Node's `IncomingHttpHeaders` fits). */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** What an L7 rule can see: the L4 facts and the request's. */
interface L7Facts extends Facts {
  method: string;
  path: string;
  /** The authority lower-cased, then (if different) without its port and a trailing dot: a host pattern matches either. */
  hosts: string[];
  header: (name: string) => string | undefined;
}

export type L7RuleMatch = RuleMatch<CompiledL7Operation, CompiledL7Condition>;
type L7Policy = PreparedPolicy<CompiledL7Operation, CompiledL7Condition, L7Facts> & { compiled: CompiledL7Authorization };

export interface L7PolicyExplanation {
  allowed: boolean;
  /** The same words the waypoint logs. */
  reason: string;
  decidedBy: ActionBasis;
  /** The source as policies see it (Istio's form, no scheme); "" without a mesh identity. */
  principal: string;
  /** The path the rules were matched against. */
  path: string;
  /** The DENY or ALLOW rule that decided, for `deny` and `allow`. */
  match?: L7RuleMatch;
  /** Every policy that applies to the request (by Gateway or Service), in evaluation order. */
  applying: PolicyRef[];
  /** AUDIT rules the request matched: logged, never part of the decision. */
  audit: L7RuleMatch[];
  /** What to answer a denied request. */
  response?: typeof RBAC_DENIED_RESPONSE;
}

export interface L7Decision {
  allowed: boolean;
  reason: string;
  /** AUDIT policies (namespace/name) the request matched. */
  audit?: string[];
  response?: typeof RBAC_DENIED_RESPONSE;
}

/** Unreserved characters (RFC 3986) may be percent-encoded without changing the path: decoded so `/%61dmin` is `/admin`. */
const decodeUnreserved = (segment: string): string =>
  segment.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : escape.toUpperCase();
  });

/**
 * The path policies match, as Istio's BASE normalization plus MERGE_SLASHES: the query and fragment removed, `\` read
 * as `/`, unreserved percent-escapes decoded, repeated slashes merged and `.`/`..` segments resolved. Merging slashes is
 * stricter than Istio's default, so `//admin` cannot slip past a DENY for `/admin*`. `%2F` stays encoded: it is data, not
 * a separator. The waypoint must forward this path, never the raw one, or the backend could see a path the policy did not.
 */
export function normalizeRequestPath(target: string): string {
  const raw = target.split(/[?#]/, 1)[0]!;
  if (!raw.startsWith("/") && !raw.startsWith("\\")) return raw;
  const out: string[] = [];
  const segments = decodeUnreserved(raw.replace(/\\/g, "/")).split("/").slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === "..") out.pop();
    if (segment === "." || segment === "..") {
      // A trailing dot segment leaves a directory: "/a/b/.." is "/a/".
      if (last) out.push("");
      return;
    }
    if (segment === "" && !last) return;
    out.push(segment);
  });
  return `/${out.join("/")}`;
}

/** The forms of an authority a host pattern may match: as sent (lower-cased), and without port and trailing dot. */
function hostForms(authority: string): string[] {
  const full = authority.toLowerCase();
  const bare = (full.startsWith("[") ? full.slice(0, full.indexOf("]") + 1) || full : full.replace(/:\d*$/, "")).replace(/\.$/, "");
  return bare === full ? [full] : [full, bare];
}

/** Istio's header values: `*` means "present", even when empty; other patterns as everywhere. */
function headerValues(patterns: readonly string[]): (value: string | undefined) => boolean {
  const present = patterns.includes("*");
  const rest = new PatternSet(patterns.filter((p) => p !== "*"));
  return (value) => value !== undefined && (present || rest.has(value));
}

function prepareOperation(o: CompiledL7Operation): Predicate<L7Facts> {
  const ports = preparePorts(o);
  const set = (patterns: string[] | undefined, lower = false) =>
    patterns ? new PatternSet(lower ? patterns.map((p) => p.toLowerCase()) : patterns) : undefined;
  const methods = set(o.methods);
  const notMethods = set(o.notMethods);
  const paths = set(o.paths);
  const notPaths = set(o.notPaths);
  const hosts = set(o.hosts, true);
  const notHosts = set(o.notHosts, true);
  return (f) =>
    ports(f) &&
    (!methods || methods.has(f.method)) &&
    !notMethods?.has(f.method) &&
    (!paths || paths.has(f.path)) &&
    !notPaths?.has(f.path) &&
    (!hosts || f.hosts.some((h) => hosts.has(h))) &&
    !(notHosts && f.hosts.some((h) => notHosts.has(h)));
}

function prepareCondition(c: CompiledL7Condition): Predicate<L7Facts> {
  if (c.key !== "request.headers") return prepareL4Condition(c);
  const { header } = c;
  const values = c.values ? headerValues(c.values) : undefined;
  const notValues = c.notValues ? headerValues(c.notValues) : undefined;
  return (f) => {
    const value = f.header(header);
    return (!values || values(value)) && !notValues?.(value);
  };
}

const prepareL7Rule = (r: CompiledL7Rule): PreparedRule<L7Facts> => prepareRule(r, prepareOperation, prepareCondition);

const isTarget = (t: unknown): t is PolicyTarget =>
  typeof t === "object" &&
  t !== null &&
  ((t as PolicyTarget).kind === "Gateway" || (t as PolicyTarget).kind === "Service") &&
  typeof (t as PolicyTarget).name === "string";

/** Whether a policy applies: it targets the request's waypoint or Service (in their namespace), or, invalid and unreadable, their namespace. */
function applies(p: CompiledL7Authorization, r: HttpAuthorizationRequest): boolean {
  const gateway = p.namespace === r.waypoint.namespace;
  const service = r.service !== undefined && p.namespace === r.service.namespace;
  if (p.targets === "namespace") return gateway || service;
  return p.targets.some((t) => (t.kind === "Gateway" ? gateway && t.name === r.waypoint.name : service && t.name === r.service!.name));
}

/** Lower-cases header names once per request, and only when a rule asks about a header. */
function headerLookup(headers: HttpAuthorizationRequest["headers"]): (name: string) => string | undefined {
  let lowered: Map<string, string> | undefined;
  return (name) => {
    if (!lowered) {
      lowered = new Map();
      for (const [k, v] of Object.entries(headers)) {
        if (v === undefined) continue;
        // Repeated headers are one comma-separated value, as Istio matches them.
        const joined = typeof v === "string" ? v : v.join(",");
        const key = k.toLowerCase();
        lowered.set(key, lowered.has(key) ? `${lowered.get(key)},${joined}` : joined);
      }
    }
    return lowered.get(name);
  };
}

/** A waypoint's L7 policies; replaced whole on every config version, like the agent's PolicyStore. */
export class L7PolicyStore {
  #policies: L7Policy[] = [];

  /** Throws (and keeps the previous policies) if any entry is malformed: a config version applies whole or not at all. */
  replace(policies: unknown[]): void {
    const next: L7Policy[] = [];
    for (const raw of policies) {
      const p = raw as CompiledL7Authorization;
      if (!p || typeof p.namespace !== "string" || typeof p.name !== "string") throw new PolicyError("an L7 authorization policy without namespace and name");
      if ((p.action !== "ALLOW" && p.action !== "DENY" && p.action !== "AUDIT") || !Array.isArray(p.rules))
        throw new PolicyError(`L7 authorization policy ${p.namespace}/${p.name} has no valid action and rules`);
      if (p.targets !== "namespace" && !(Array.isArray(p.targets) && p.targets.every(isTarget)))
        throw new PolicyError(`L7 authorization policy ${p.namespace}/${p.name} has no valid targets`);
      try {
        next.push({ compiled: p, rules: p.rules.map(prepareL7Rule) });
      } catch (err) {
        throw new PolicyError(`L7 authorization policy ${p.namespace}/${p.name}: ${(err as Error).message}`);
      }
    }
    this.#policies = next;
  }

  /** The waypoint's question: the decision alone, taken by `explain` so the two can never disagree. */
  check(request: HttpAuthorizationRequest): L7Decision {
    const e = this.explain(request);
    return {
      allowed: e.allowed,
      reason: e.reason,
      ...(e.audit.length ? { audit: e.audit.map((m) => `${m.policy.namespace}/${m.policy.name}`) } : {}),
      ...(e.response ? { response: e.response } : {}),
    };
  }

  /** The decision with the policies that apply, the rule (and which `from`, `to` and `when`) that decided, and AUDIT matches. */
  explain(request: HttpAuthorizationRequest): L7PolicyExplanation {
    const applicable = this.#policies.filter((p) => applies(p.compiled, request));
    const principal = request.source ? formatSpiffeId(request.source).replace(/^spiffe:\/\//, "") : "";
    const path = normalizeRequestPath(request.path);
    const facts: L7Facts = {
      principal,
      namespace: request.source?.namespace ?? "",
      sourceIp: request.sourceIp,
      remoteIp: request.remoteIp,
      destinationIp: request.destinationIp,
      destinationPort: request.destinationPort,
      method: request.method,
      path,
      hosts: hostForms(request.host),
      header: headerLookup(request.headers),
    };
    const outcome = decideByActions(applicable, facts);
    const target = request.service ? `${request.service.namespace}/${request.service.name}` : `waypoint ${request.waypoint.namespace}/${request.waypoint.name}`;
    const base = {
      principal,
      path,
      applying: applicable.map((p) => ({ namespace: p.compiled.namespace, name: p.compiled.name, action: p.compiled.action })),
      audit: outcome.audit,
    };
    const named = (m: L7RuleMatch) => `${m.policy.namespace}/${m.policy.name}`;
    switch (outcome.decidedBy) {
      case "deny":
        return {
          ...base,
          allowed: false,
          decidedBy: "deny",
          reason: `denied by policy ${named(outcome.match)}`,
          match: outcome.match,
          response: RBAC_DENIED_RESPONSE,
        };
      case "allow":
        return { ...base, allowed: true, decidedBy: "allow", reason: `allowed by policy ${named(outcome.match)}`, match: outcome.match };
      case "no-allow-policy":
        return { ...base, allowed: true, decidedBy: "no-allow-policy", reason: `no ALLOW policy applies to ${target}` };
      case "no-allow-match":
        return {
          ...base,
          allowed: false,
          decidedBy: "no-allow-match",
          reason: `no ALLOW policy matched ${request.method} ${path} for ${target} (from ${principal || request.sourceIp || "unknown"})`,
          response: RBAC_DENIED_RESPONSE,
        };
    }
  }

  /** For the admin API. */
  dump(): CompiledL7Authorization[] {
    return this.#policies.map((p) => p.compiled);
  }
}
