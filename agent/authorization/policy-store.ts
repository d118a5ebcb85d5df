// Enforces compiled L4 policy at the destination: peer authentication first, then DENY, then ALLOW, with Istio's semantics.
import type {
  CompiledAuthorization,
  CompiledCondition,
  CompiledOperation,
  CompiledPeerAuthentication,
  CompiledRule,
  MtlsMode,
} from "../../contract/authorization.ts";
import type { InboundAttributes, InboundDecision, InboundPolicy } from "../dataplane/index.ts";
import { formatSpiffeId } from "../identity/index.ts";
import type { Workload } from "../state/index.ts";
import {
  type ActionBasis,
  type Facts,
  type RuleMatch as GenericRuleMatch,
  type PolicyRef,
  type PreparedPolicy,
  type PreparedRule,
  decideByActions,
  prepareL4Condition,
  preparePorts,
  prepareRule,
} from "./match.ts";
import { AmbitError } from "../../contract/errors.ts";
import { AGENT_ERRORS } from "../../contract/error-codes.ts";

export class PolicyError extends AmbitError<typeof AGENT_ERRORS.code.policyInvalid> {
  constructor(message: string) {
    super(AGENT_ERRORS.code.policyInvalid, message);
    this.name = "PolicyError";
  }
}

/** A policy as the store evaluates it: built once per config version, so a lookup's cost does not grow with its values. */
type L4Policy = PreparedPolicy<CompiledOperation, CompiledCondition, Facts>;

const prepareL4Rule = (r: CompiledRule): PreparedRule<Facts> => prepareRule(r, preparePorts, prepareL4Condition);

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

/** The rule of a policy that matched a connection, and which of its clauses did. */
export type RuleMatch = GenericRuleMatch<CompiledOperation, CompiledCondition>;

/**
 * How a decision was reached: plaintext refused by STRICT mTLS; a DENY rule matched; an ALLOW rule matched; no
 * ALLOW policy selects the workload (allowed); ALLOW policies select it and none matched (denied).
 */
export type DecisionBasis = "mtls" | ActionBasis;

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
  #authz = new Map<string, L4Policy[]>();
  #peer = new Map<string, CompiledPeerAuthentication[]>();

  constructor(opts: { rootNamespace: string }) {
    this.#rootNamespace = opts.rootNamespace;
  }

  /** Throws (and keeps the previous policies) if any entry is malformed: a config version applies whole or not at all. */
  replace(authorizations: unknown[], peerAuthentications: unknown[]): void {
    const authz = new Map<string, L4Policy[]>();
    for (const a of authorizations) {
      checkShape(a, "authorization policy");
      const p = a as CompiledAuthorization;
      if ((p.action !== "ALLOW" && p.action !== "DENY" && p.action !== "AUDIT") || !Array.isArray(p.rules))
        throw new PolicyError(`authorization policy ${p.namespace}/${p.name} has no valid action and rules`);
      let rules: Array<PreparedRule<Facts>>;
      try {
        rules = p.rules.map(prepareL4Rule);
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
    const named = (m: RuleMatch) => `${m.policy.namespace}/${m.policy.name}`;
    const outcome = decideByActions(applicable, facts);
    const base = { principal, mtls, selecting, audit: outcome.audit };
    switch (outcome.decidedBy) {
      case "deny":
        return { ...base, allowed: false, reason: `denied by policy ${named(outcome.match)}`, decidedBy: "deny", match: outcome.match };
      case "allow":
        return { ...base, allowed: true, reason: `allowed by policy ${named(outcome.match)}`, decidedBy: "allow", match: outcome.match };
      case "no-allow-policy":
        return { ...base, allowed: true, reason: "no ALLOW policy selects the workload", decidedBy: "no-allow-policy" };
      case "no-allow-match":
        return {
          ...base,
          allowed: false,
          reason: `no ALLOW policy matched for ${w.namespace}/${w.name} (from ${principal || conn.sourceIp || "unknown"})`,
          decidedBy: "no-allow-match",
        };
    }
  }

  /** For the admin API. */
  dump(): { authorizations: CompiledAuthorization[]; peerAuthentications: CompiledPeerAuthentication[] } {
    return { authorizations: [...this.#authz.values()].flat().map((p) => p.compiled), peerAuthentications: [...this.#peer.values()].flat() };
  }
}
