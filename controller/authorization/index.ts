// Public surface of policy compilation: AuthorizationPolicy and PeerAuthentication to L4 rules plus their status condition.
export { type CompileResult, type Condition, compileAuthorizationPolicy, compilePeerAuthentication } from "./compile.ts";
