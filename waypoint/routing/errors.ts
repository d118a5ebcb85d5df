// Why a route (or one of its rules) is refused: a stable code per kind of mistake, the field path, and the status reason it maps to.

/**
 * Each code names one kind of mistake; the message starts with the field path
 * (`spec.rules[0].matches[1].path.value: must start with "/"`), as the API server's validation does.
 */
export const RouteErrorCode = {
  /** A field has the wrong JSON type or a required field is missing. */
  malformed: "AMBIT_E_ROUTE_MALFORMED",
  /** An enum value this waypoint does not know (path type, method, filter type, scheme, status code ...). */
  unsupportedValue: "AMBIT_E_ROUTE_UNSUPPORTED_VALUE",
  /** A PathPrefix/Exact path or a path replacement that is not a clean absolute path. */
  invalidPath: "AMBIT_E_ROUTE_INVALID_PATH",
  /** A RegularExpression match that does not compile. */
  invalidRegex: "AMBIT_E_ROUTE_INVALID_REGEX",
  /** A header name or value outside RFC 7230, or one header named twice in one modifier. */
  invalidHeader: "AMBIT_E_ROUTE_INVALID_HEADER",
  /** A hostname in a redirect or rewrite that is not a lower-case DNS name. */
  invalidHostname: "AMBIT_E_ROUTE_INVALID_HOSTNAME",
  /** Filters that cannot go together: redirect with rewrite or with backends, a repeated filter, ReplacePrefixMatch without one PathPrefix match. */
  incompatibleFilters: "AMBIT_E_ROUTE_INCOMPATIBLE_FILTERS",
  /** A timeout or backoff that is not a Gateway API duration, or backendRequest longer than request. */
  invalidDuration: "AMBIT_E_ROUTE_INVALID_DURATION",
  /** Retry codes outside 400–599 or attempts below 1. */
  invalidRetry: "AMBIT_E_ROUTE_INVALID_RETRY",
  /** A backendRef without name or port, or a weight outside 0–1,000,000. */
  invalidBackend: "AMBIT_E_ROUTE_INVALID_BACKEND",
  /** A Service parentRef that is malformed or repeats another. */
  invalidParent: "AMBIT_E_ROUTE_INVALID_PARENT",
  /** Two rules with the same name. */
  duplicateRuleName: "AMBIT_E_ROUTE_DUPLICATE_RULE_NAME",
  /** More rules, matches, filters, headers or backends than the API allows. */
  tooMany: "AMBIT_E_ROUTE_TOO_MANY",
  /** A gRPC method match with neither service nor method, or with characters gRPC names cannot have. */
  invalidGrpcMethod: "AMBIT_E_ROUTE_INVALID_GRPC_METHOD",
} as const;
export type RouteErrorCode = (typeof RouteErrorCode)[keyof typeof RouteErrorCode];

/** The `Accepted=False` reason a code reports in the route's status. */
export const acceptedReasonFor = (code: RouteErrorCode): "IncompatibleFilters" | "UnsupportedValue" =>
  code === RouteErrorCode.incompatibleFilters ? "IncompatibleFilters" : "UnsupportedValue";

export class RouteValidationError extends Error {
  readonly code: RouteErrorCode;
  /** Field path inside the route object, e.g. `spec.rules[0].filters[1].requestRedirect.statusCode`. */
  readonly path: string;
  /** Index of the rule the error is in; absent when the whole route is affected (then no rule of it is used). */
  readonly rule: number | undefined;
  constructor(code: RouteErrorCode, path: string, detail: string, rule?: number) {
    super(`${path}: ${detail}`);
    this.name = "RouteValidationError";
    this.code = code;
    this.path = path;
    this.rule = rule;
  }
}
