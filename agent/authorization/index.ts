// Public surface of authorization: the agent's L4 policy store asked on every inbound connection, the waypoint's L7 policy store asked on every request, and their explanations.
export { IpSet } from "./ip-set.ts";
export {
  L7PolicyStore,
  type L7Decision,
  type L7PolicyExplanation,
  type L7RuleMatch,
  RBAC_DENIED_RESPONSE,
  type HttpAuthorizationRequest,
  normalizeRequestPath,
} from "./l7-policy.ts";
export { type ActionBasis, type PolicyRef, matchesPattern } from "./match.ts";
export { type DecisionBasis, type MtlsExplanation, type MtlsLevel, PolicyError, type PolicyExplanation, PolicyStore, type RuleMatch } from "./policy-store.ts";
