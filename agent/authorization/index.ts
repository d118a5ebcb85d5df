// Public surface of L4 authorization in the agent: the policy store the data path asks on every inbound connection, and its explanations.
export { IpSet } from "./ip-set.ts";
export {
  type DecisionBasis,
  type MtlsExplanation,
  type MtlsLevel,
  PolicyError,
  type PolicyExplanation,
  type PolicyRef,
  PolicyStore,
  type RuleMatch,
  matchesPattern,
} from "./policy-store.ts";
