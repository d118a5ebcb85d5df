// Wire contract of compiled L7 routes: the Gateway API HTTPRoutes and GRPCRoutes attached to one Service port, as the controller streams them to waypoints.

/** Config stream resource type; the key is `routesKey(...)` and the value a `ServicePortRoutes`. */
export const ROUTES_RESOURCE_TYPE = "routes";

/** `<namespace>/<service>:<port>`: one resource per Service port that has at least one route attached. */
export const routesKey = (r: { namespace: string; service: string; port: number }): string => `${r.namespace}/${r.service}:${r.port}`;

/**
 * Every route attached to one Service port (GAMMA: a `parentRef` of group "" and kind Service).
 * A client in namespace N uses the consumer routes of namespace N when there is at least one, and the producer routes
 * otherwise: the two sets never merge (GEP-1294, "Multiple routes for a Service").
 */
export interface ServicePortRoutes {
  namespace: string;
  service: string;
  port: number;
  /** Routes in the Service's own namespace: they apply to clients of every namespace without consumer routes here. */
  producer: CompiledRoute[];
  /** Routes in other namespaces: each applies only to clients in the route's own namespace. */
  consumer: CompiledRoute[];
}

export type CompiledRoute = CompiledHttpRoute | CompiledGrpcRoute;

/** What identifies a route and breaks precedence ties between routes: older first, then `namespace/name` alphabetically. */
export interface RouteIdentity {
  namespace: string;
  name: string;
  /** RFC 3339, as `metadata.creationTimestamp`. */
  creationTimestamp: string;
}

export interface CompiledHttpRoute extends RouteIdentity {
  kind: "HTTPRoute";
  rules: CompiledRule<HttpMatch>[];
}

export interface CompiledGrpcRoute extends RouteIdentity {
  kind: "GRPCRoute";
  rules: CompiledRule<GrpcMatch>[];
}

/** One valid rule. Rules that failed validation are not sent (the route's status says PartiallyInvalid). */
export interface CompiledRule<M> {
  /** `rules[].name`, when set (unique within the route). */
  name?: string;
  /** Position in `spec.rules`: what status messages, logs and metrics name when the rule has no name. */
  index: number;
  /** Never empty: a rule without matches matches every request (HTTP: the default PathPrefix "/"). The rule applies if any match does. */
  matches: M[];
  /** In spec order; applied before the backend's own filters. */
  filters: CompiledFilter[];
  /** Empty only when a RequestRedirect filter answers instead (HTTP); otherwise requests get 500. */
  backends: WeightedBackend[];
  timeouts?: RouteTimeouts;
  retry?: RouteRetry;
}

export type PathMatchType = "Exact" | "PathPrefix" | "RegularExpression";
export type ValueMatchType = "Exact" | "RegularExpression";

/**
 * Regular expressions (paths, headers, query parameters, gRPC service and method) are ECMAScript syntax and must match
 * the whole value, as RE2's full match does in Envoy-based meshes.
 */
export interface ValueMatch {
  /** Header names are lower case (they compare case-insensitively); query parameter names keep their case. */
  name: string;
  type: ValueMatchType;
  value: string;
}

/** All present parts must hold. */
export interface HttpMatch {
  /** PathPrefix values carry no trailing "/" (except "/" itself): "/abc/" and "/abc" mean the same prefix. */
  path: { type: PathMatchType; value: string };
  /** Upper case. */
  method?: string;
  headers: ValueMatch[];
  queryParams: ValueMatch[];
}

export interface GrpcMatch {
  /** Absent: every service and method. An absent `service` or `method` inside matches any. */
  method?: { type: ValueMatchType; service?: string; method?: string };
  headers: ValueMatch[];
}

export interface HeaderValue {
  /** Lower case: the modifier compares names case-insensitively. */
  name: string;
  value: string;
}

export interface HeaderModifier {
  set: HeaderValue[];
  add: HeaderValue[];
  /** Lower case. */
  remove: string[];
}

export type PathModifier = { type: "ReplaceFullPath"; value: string } | { type: "ReplacePrefixMatch"; value: string };

/** Where a request (or a mirrored copy) is sent: a Service port. */
export interface BackendTarget {
  namespace: string;
  service: string;
  port: number;
}

export type RedirectStatusCode = 301 | 302 | 303 | 307 | 308;

export type CompiledFilter =
  | ({ type: "RequestHeaderModifier" } & HeaderModifier)
  | ({ type: "ResponseHeaderModifier" } & HeaderModifier)
  | {
      type: "RequestRedirect";
      /** Absent: the request's scheme. */
      scheme?: "http" | "https";
      /** Absent: the request's host. */
      hostname?: string;
      /** Absent: 80/443 when `scheme` is set, else the Service port the request was sent to. */
      port?: number;
      path?: PathModifier;
      statusCode: RedirectStatusCode;
    }
  | { type: "URLRewrite"; hostname?: string; path?: PathModifier }
  /** Fire and forget: responses from the mirror are ignored. `percent` is 0–100, fractions included (100 when the route gave neither). */
  | { type: "RequestMirror"; backend: BackendTarget; percent: number };

/** Why a backend cannot take traffic: the share of requests it would have had are answered 500 (gRPC: UNAVAILABLE). */
export type UnresolvedReason = "BackendNotFound" | "RefNotPermitted" | "InvalidKind";

export interface WeightedBackend extends BackendTarget {
  /** 0–1,000,000; a share of the sum of the rule's weights. A rule whose weights are all 0 answers 500. */
  weight: number;
  /** Filters of this backendRef only, applied after the rule's filters when this backend is chosen. */
  filters: CompiledFilter[];
  /** Present when the reference did not resolve; the backend keeps its weight so its share fails as the spec requires. */
  unresolved?: UnresolvedReason;
}

/** Milliseconds; 0 disables the timeout. */
export interface RouteTimeouts {
  requestMs?: number;
  backendRequestMs?: number;
}

export interface RouteRetry {
  /** HTTP status codes (400–599) that make a backend request be retried; connection errors always do. */
  codes: number[];
  /** Retries after the first attempt; absent: the waypoint's default. */
  attempts?: number;
  /** Minimum wait between attempts; absent: the waypoint's default. */
  backoffMs?: number;
}
