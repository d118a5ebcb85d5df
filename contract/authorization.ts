// Wire contract of compiled L4 policy: AuthorizationPolicy and PeerAuthentication as the destination agent enforces them.

/** AUDIT never changes a decision: agents log the connections its rules match, with the policy's name. */
export type AuthorizationAction = "ALLOW" | "DENY" | "AUDIT";
export type MtlsMode = "UNSET" | "DISABLE" | "PERMISSIVE" | "STRICT";

/** Attributes an L4 rule may look at; anything else in a `when` is L7 (or unknown, which is invalid). */
export const L4_CONDITION_KEYS = ["source.ip", "remote.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"] as const;
export type L4ConditionKey = (typeof L4_CONDITION_KEYS)[number];

/** One `from[].source`, L4 fields only. Absent fields match anything; principals lack the `spiffe://` scheme (Istio's form). */
export interface CompiledSource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  /** Matched against the original client address; at L4 the agent sees it directly, so it is the source address too. */
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

export interface CompiledOperation {
  ports?: number[];
  notPorts?: number[];
}

export interface CompiledCondition {
  key: L4ConditionKey;
  values?: string[];
  notValues?: string[];
}

/** A rule matches when every present part does; an absent `from`/`to` matches every source/operation. */
export interface CompiledRule {
  from?: CompiledSource[];
  to?: CompiledOperation[];
  when?: CompiledCondition[];
}

export interface CompiledAuthorization {
  namespace: string;
  name: string;
  /** `spec.selector.matchLabels`; absent (with no `selectorKeys`) selects the whole scope. */
  selector?: Record<string, string>;
  /** Labels a selected workload must carry, whatever their value: what an invalid selector could have meant. */
  selectorKeys?: string[];
  action: AuthorizationAction;
  /** ALLOW with no rules allows nothing; DENY with no rules denies nothing. */
  rules: CompiledRule[];
}

export interface CompiledPeerAuthentication {
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  /** As on CompiledAuthorization: labels that must be present, from an invalid selector. */
  selectorKeys?: string[];
  mode: MtlsMode;
  /** Target port (as a string) -> mode; only honoured on selector policies, as in Istio. */
  portLevel: Record<string, MtlsMode>;
  /** Among several selector policies for one workload the oldest wins. */
  createdAt: string;
}
