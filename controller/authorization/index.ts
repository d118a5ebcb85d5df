// Public surface of policy compilation: AuthorizationPolicy and PeerAuthentication to L4 rules for the node agents, targetRef'd AuthorizationPolicy to L7 rules for waypoints, each with its status condition.
export { type CompileResult, type Condition, MAX_POLICY_VALUES, compileAuthorizationPolicy, compilePeerAuthentication } from "./compile.ts";
export { type EnforcedPolicy, compileForEnforcers, compileWaypointAuthorizationPolicy, isWaypointPolicy } from "./compile-l7.ts";
export { PolicyCompileError, PolicyErrorCode } from "./errors.ts";
