// Wire contract of compiled L7 policy: AuthorizationPolicy bound by targetRefs to a waypoint (Gateway) or a Service, as the waypoint enforces it.
import type { AuthorizationAction, CompiledCondition, CompiledOperation, CompiledSource } from "./authorization.ts";

export { GATEWAY_API_GROUP } from "./waypoint.ts";

/**
 * What a `targetRefs` entry binds a policy to, always in the policy's own namespace: a Gateway (a waypoint: the policy
 * applies to all traffic through it) or a Service (the policy applies at its waypoint to traffic for that Service).
 */
export interface PolicyTarget {
  kind: "Gateway" | "Service";
  name: string;
}

/**
 * `to[].operation` at L7. Patterns are Istio's: exact, `prefix*`, `*suffix`, or `*` (any). Methods and paths are
 * case-sensitive; hosts are not, and a host pattern without a port matches the request's host with any port.
 */
export interface CompiledL7Operation extends CompiledOperation {
  hosts?: string[];
  notHosts?: string[];
  methods?: string[];
  notMethods?: string[];
  /** Matched against the normalized path without its query. */
  paths?: string[];
  notPaths?: string[];
}

/** `request.headers[<name>]`: `header` is lower-cased (names are case-insensitive); `*` in values means "present". */
export interface CompiledHeaderCondition {
  key: "request.headers";
  header: string;
  values?: string[];
  notValues?: string[];
}

export type CompiledL7Condition = CompiledCondition | CompiledHeaderCondition;

/** A rule matches when every present part does; an absent `from`/`to` matches every source/operation. */
export interface CompiledL7Rule {
  from?: CompiledSource[];
  to?: CompiledL7Operation[];
  when?: CompiledL7Condition[];
}

export interface CompiledL7Authorization {
  namespace: string;
  name: string;
  /**
   * The Gateways and Services of `namespace` the policy applies to. "namespace" only for an invalid policy whose
   * targetRefs could not be read: it then fails closed for every waypoint target of its namespace.
   */
  targets: PolicyTarget[] | "namespace";
  action: AuthorizationAction;
  /** ALLOW with no rules allows nothing; DENY with no rules denies nothing. */
  rules: CompiledL7Rule[];
}

/** The `when` key of a header condition, as written in a policy and shown by `ambit explain`. */
export const headerConditionKey = (header: string): string => `request.headers[${header}]`;
