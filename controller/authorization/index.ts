// Public surface of policy compilation: AuthorizationPolicy and PeerAuthentication to L4 rules plus their status condition.
export { type CompileResult, type Condition, MAX_POLICY_VALUES, compileAuthorizationPolicy, compilePeerAuthentication } from "./compile.ts";
export { PolicyCompileError, PolicyErrorCode } from "./errors.ts";
