// Public surface of BackendTrafficPolicy compilation: spec to waypoint settings, GEP-713 attachment and conflicts, and the status the leader writes.
export { ENVOY_DEFAULT_LIMIT, TrafficPolicyError, TrafficPolicyErrorCode, compileTrafficPolicySpec } from "./compile.ts";
export {
  type CompiledTrafficPolicies,
  type PolicyAncestorStatus,
  type PolicyCondition,
  type TargetExists,
  type TrafficPolicyResult,
  compileTrafficPolicies,
} from "./attach.ts";
export { nextPolicyAncestors, writeTrafficPolicyStatuses } from "./status.ts";
export { type TrafficPolicySources, TrafficPolicyState } from "./state.ts";
