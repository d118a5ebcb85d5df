// Gateway API HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1) as the Kubernetes API returns them: every field optional, since defaults and CEL rules may be missing.

export interface ObjectMeta {
  namespace?: string;
  name?: string;
  creationTimestamp?: string;
  generation?: number;
}

export interface ParentReference {
  /** Default "gateway.networking.k8s.io"; a Service parent needs "" explicitly. */
  group?: string;
  /** Default "Gateway". */
  kind?: string;
  namespace?: string;
  name?: string;
  /** For a Service: the port's name. */
  sectionName?: string;
  port?: number;
}

export interface BackendObjectReference {
  /** Default "" (core). */
  group?: string;
  /** Default "Service". */
  kind?: string;
  name?: string;
  namespace?: string;
  port?: number;
}

export interface GatewayHeader {
  name?: string;
  value?: string;
}

export interface HeaderFilterSpec {
  set?: GatewayHeader[];
  add?: GatewayHeader[];
  remove?: string[];
}

export interface PathModifierSpec {
  type?: string;
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface RequestMirrorSpec {
  backendRef?: BackendObjectReference;
  percent?: number;
  fraction?: { numerator?: number; denominator?: number };
}

export interface HTTPRouteFilter {
  type?: string;
  requestHeaderModifier?: HeaderFilterSpec;
  responseHeaderModifier?: HeaderFilterSpec;
  requestMirror?: RequestMirrorSpec;
  requestRedirect?: { scheme?: string; hostname?: string; path?: PathModifierSpec; port?: number; statusCode?: number };
  urlRewrite?: { hostname?: string; path?: PathModifierSpec };
  extensionRef?: { group?: string; kind?: string; name?: string };
  cors?: unknown;
  externalAuth?: unknown;
}

export type GRPCRouteFilter = Pick<HTTPRouteFilter, "type" | "requestHeaderModifier" | "responseHeaderModifier" | "requestMirror" | "extensionRef">;

export interface ValueMatchSpec {
  type?: string;
  name?: string;
  value?: string;
}

export interface HTTPRouteMatch {
  path?: { type?: string; value?: string };
  headers?: ValueMatchSpec[];
  queryParams?: ValueMatchSpec[];
  method?: string;
}

export interface GRPCRouteMatch {
  method?: { type?: string; service?: string; method?: string };
  headers?: ValueMatchSpec[];
}

export interface HTTPBackendRef extends BackendObjectReference {
  /** Default 1. */
  weight?: number;
  filters?: HTTPRouteFilter[];
}

export interface GRPCBackendRef extends BackendObjectReference {
  weight?: number;
  filters?: GRPCRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { codes?: number[]; attempts?: number; backoff?: string };
  sessionPersistence?: unknown;
}

export interface GRPCRouteRule {
  name?: string;
  matches?: GRPCRouteMatch[];
  filters?: GRPCRouteFilter[];
  backendRefs?: GRPCBackendRef[];
  sessionPersistence?: unknown;
}

export interface HTTPRoute {
  apiVersion?: string;
  kind: "HTTPRoute";
  metadata?: ObjectMeta;
  spec?: { parentRefs?: ParentReference[]; hostnames?: string[]; rules?: HTTPRouteRule[] };
}

export interface GRPCRoute {
  apiVersion?: string;
  kind: "GRPCRoute";
  metadata?: ObjectMeta;
  spec?: { parentRefs?: ParentReference[]; hostnames?: string[]; rules?: GRPCRouteRule[] };
}

export type MeshRoute = HTTPRoute | GRPCRoute;

/** A status condition as the controller writes it into `status.parents[].conditions` (it adds lastTransitionTime). */
export interface RouteCondition {
  type: "Accepted" | "ResolvedRefs" | "PartiallyInvalid";
  status: "True" | "False";
  reason: string;
  message: string;
  observedGeneration?: number;
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: RouteCondition[];
}
