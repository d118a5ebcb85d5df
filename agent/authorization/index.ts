// Public surface of L4 authorization in the agent: the policy store the data path asks on every inbound connection, and its explanations.
export { IpSet } from "./ip-set.ts";
export { type DecisionBasis, type MtlsExplanation, type MtlsLevel, PolicyError, type PolicyExplanation, PolicyStore, type RuleMatch } from "./policy-store.ts";
export { type PolicyRef, matchesPattern } from "./match.ts";
