// Stable codes for every way the compiler finds an AuthorizationPolicy or PeerAuthentication Invalid, each naming the field path.

/** One code per kind of mistake, so status consumers, `ambit explain` and docs can tell them apart without parsing messages. */
export const PolicyErrorCode = {
  /** A field the security.istio.io/v1 schema does not have (a typo that would otherwise be ignored). */
  unknownField: "AMBIT_E_POLICY_UNKNOWN_FIELD",
  /** A value of the wrong shape: not a list, not a port, not a CIDR block, a principal with the spiffe:// scheme... */
  badValue: "AMBIT_E_POLICY_BAD_VALUE",
  /** `spec.selector` cannot be read. */
  selector: "AMBIT_E_POLICY_SELECTOR",
  /** CUSTOM, `provider`, or an action that is not ALLOW, DENY or AUDIT. */
  unsupportedAction: "AMBIT_E_POLICY_UNSUPPORTED_ACTION",
  /** A `when` key Ambit does not evaluate where the policy is enforced. */
  unsupportedAttribute: "AMBIT_E_POLICY_UNSUPPORTED_ATTRIBUTE",
  /** More values than an enforcer accepts in one policy. */
  tooLarge: "AMBIT_E_POLICY_TOO_LARGE",
  /** A policy bound by targetRefs read for the node agents: it belongs to a waypoint. */
  forWaypoint: "AMBIT_E_POLICY_FOR_WAYPOINT",
  /** Both `selector` and `targetRef(s)`, or both `targetRef` and `targetRefs` (Istio refuses them too). */
  selectorAndTargetRefs: "AMBIT_E_POLICY_SELECTOR_AND_TARGET_REFS",
  /** A targetRef that is not a Gateway (gateway.networking.k8s.io) or a Service (core) of the policy's namespace. */
  targetRef: "AMBIT_E_POLICY_TARGET_REF",
  /** `requestPrincipals`, `notRequestPrincipals` or `request.auth.*`: they need JWT validation, which Ambit does not do. */
  jwtUnsupported: "AMBIT_E_POLICY_JWT_UNSUPPORTED",
  /** A host, path or method pattern that could never match as meant: `*` inside, a path without `/`, a path template. */
  pattern: "AMBIT_E_POLICY_PATTERN",
  /** A method that is not an upper-case HTTP token (methods are matched case-sensitively). */
  method: "AMBIT_E_POLICY_METHOD",
  /** `request.headers[<name>]` without a valid header name. */
  header: "AMBIT_E_POLICY_HEADER",
} as const;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

/** Why a policy is Invalid; the message is `<field path>: <what is wrong and what to write>`. */
export class PolicyCompileError extends Error {
  readonly code: PolicyErrorCode;
  /** The field that is wrong, e.g. `spec.rules[0].to[1].operation.paths[2]`. */
  readonly path: string;
  constructor(code: PolicyErrorCode, path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = "PolicyCompileError";
    this.code = code;
    this.path = path;
  }
}
