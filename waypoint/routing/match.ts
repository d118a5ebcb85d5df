// Selects the rule a request takes among the routes of one Service port, in Gateway API precedence order, and the weighted backend it goes to.
import type { CompiledRoute, CompiledRule, GrpcMatch, HttpMatch, ServicePortRoutes, ValueMatch, WeightedBackend } from "../../contract/routes.ts";

/** Request headers with lower-case names, as node:http hands them over; a repeated header is an array. */
export type HeaderMap = Record<string, string | string[]>;

export interface RoutingRequest {
  method: string;
  /** The request target: path and optional `?query`, not decoded. */
  path: string;
  headers: HeaderMap;
}

export type RuleSelection =
  | { protocol: "http"; route: CompiledRoute; rule: CompiledRule<HttpMatch>; match: HttpMatch }
  | { protocol: "grpc"; route: CompiledRoute; rule: CompiledRule<GrpcMatch>; match: GrpcMatch };

/** A source of uniform numbers in [0, 1): Math.random in production, a seeded generator in tests. */
export type RandomSource = () => number;

interface PreparedRequest {
  method: string;
  path: string;
  query: URLSearchParams | undefined;
  headers: HeaderMap;
  /** `/<service>/<method>` of a gRPC request. */
  grpc: { service: string; method: string } | undefined;
}

type Predicate = (req: PreparedRequest) => boolean;
interface Candidate {
  selection: RuleSelection;
  test: Predicate;
}

/** A route set used as a whole for a client: gRPC requests use the GRPCRoutes when there are any, the HTTPRoutes otherwise. */
interface RouteGroup {
  /** Routes in the group, even those without rules: an attached route with no rule still answers 404. */
  routes: number;
  http: Candidate[];
  grpc: Candidate[];
}

/** Oldest route first, then `namespace/name` alphabetically: how routes break precedence ties. */
export function routeAgeOrder(a: CompiledRoute, b: CompiledRoute): number {
  const age = (Date.parse(a.creationTimestamp) || 0) - (Date.parse(b.creationTimestamp) || 0);
  if (age !== 0) return age;
  const ka = `${a.namespace}/${a.name}`;
  const kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * HTTP match precedence (HTTPRouteRule.matches): Exact path, then the longest PathPrefix, then a method, then more header
 * matches, then more query matches; then the older route, `namespace/name`, and rule order. RegularExpression paths are
 * ours to place: after every PathPrefix (so a regex never shadows a prefix written for the same paths), longest first.
 */
function httpOrder(a: Candidate, b: Candidate): number {
  const ma = a.selection.match as HttpMatch;
  const mb = b.selection.match as HttpMatch;
  const typeRank = { Exact: 0, PathPrefix: 1, RegularExpression: 2 } as const;
  return (
    typeRank[ma.path.type] - typeRank[mb.path.type] ||
    mb.path.value.length - ma.path.value.length ||
    Number(mb.method !== undefined) - Number(ma.method !== undefined) ||
    mb.headers.length - ma.headers.length ||
    mb.queryParams.length - ma.queryParams.length ||
    tieOrder(a, b)
  );
}

/** gRPC precedence (GRPCRouteRule.matches): more characters of service, then of method, then more header matches; then as HTTP. */
function grpcOrder(a: Candidate, b: Candidate): number {
  const ma = a.selection.match as GrpcMatch;
  const mb = b.selection.match as GrpcMatch;
  return (
    (mb.method?.service?.length ?? 0) - (ma.method?.service?.length ?? 0) ||
    (mb.method?.method?.length ?? 0) - (ma.method?.method?.length ?? 0) ||
    mb.headers.length - ma.headers.length ||
    tieOrder(a, b)
  );
}

const tieOrder = (a: Candidate, b: Candidate): number => routeAgeOrder(a.selection.route, b.selection.route) || a.selection.rule.index - b.selection.rule.index;

class RegexCache {
  readonly #compiled = new Map<string, RegExp>();
  /** Whole-value match, as RE2 full match in Envoy-based meshes. */
  get(pattern: string): RegExp {
    let re = this.#compiled.get(pattern);
    if (re === undefined) {
      re = new RegExp(`^(?:${pattern})$`);
      this.#compiled.set(pattern, re);
    }
    return re;
  }
}

function valueTest(m: ValueMatch, regexes: RegexCache): (value: string | undefined) => boolean {
  if (m.type === "Exact") return (value) => value === m.value;
  const re = regexes.get(m.value);
  return (value) => value !== undefined && re.test(value);
}

/** A repeated header compares as its values joined by ",", the combination RFC 7230 allows. */
const headerValue = (headers: HeaderMap, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? v.join(",") : v;
};

function headerTests(matches: ValueMatch[], regexes: RegexCache): Predicate[] {
  return matches.map((m) => {
    const test = valueTest(m, regexes);
    return (req) => test(headerValue(req.headers, m.name));
  });
}

function httpPredicate(match: HttpMatch, regexes: RegexCache): Predicate {
  const tests: Predicate[] = [];
  const { type, value } = match.path;
  if (type === "Exact") tests.push((req) => req.path === value);
  else if (type === "RegularExpression") {
    const re = regexes.get(value);
    tests.push((req) => re.test(req.path));
  } else if (value !== "/") {
    // Element-wise prefix: "/abc" matches "/abc", "/abc/" and "/abc/def", never "/abcd".
    tests.push((req) => req.path.startsWith(value) && (req.path.length === value.length || req.path[value.length] === "/"));
  }
  if (match.method !== undefined) tests.push((req) => req.method === match.method);
  tests.push(...headerTests(match.headers, regexes));
  for (const q of match.queryParams) {
    const test = valueTest(q, regexes);
    tests.push((req) => test(req.query?.get(q.name) ?? undefined));
  }
  return (req) => tests.every((t) => t(req));
}

function grpcPredicate(match: GrpcMatch, regexes: RegexCache): Predicate {
  const tests: Predicate[] = [(req) => req.grpc !== undefined];
  const m = match.method;
  for (const part of ["service", "method"] as const) {
    const wanted = m?.[part];
    if (wanted === undefined) continue;
    const test = valueTest({ name: part, type: m?.type ?? "Exact", value: wanted }, regexes);
    tests.push((req) => test(req.grpc?.[part]));
  }
  tests.push(...headerTests(match.headers, regexes));
  return (req) => tests.every((t) => t(req));
}

function buildGroup(routes: CompiledRoute[], regexes: RegexCache): RouteGroup {
  const group: RouteGroup = { routes: routes.length, http: [], grpc: [] };
  for (const route of routes) {
    if (route.kind === "HTTPRoute") {
      for (const rule of route.rules) {
        for (const match of rule.matches) group.http.push({ selection: { protocol: "http", route, rule, match }, test: httpPredicate(match, regexes) });
      }
    } else {
      for (const rule of route.rules) {
        for (const match of rule.matches) group.grpc.push({ selection: { protocol: "grpc", route, rule, match }, test: grpcPredicate(match, regexes) });
      }
    }
  }
  // Array.prototype.sort is stable: matches of one rule keep their order.
  group.http.sort(httpOrder);
  group.grpc.sort(grpcOrder);
  return group;
}

/** `/<service>/<method>` with content-type application/grpc*: what makes a request gRPC. */
function grpcCall(path: string, headers: HeaderMap): PreparedRequest["grpc"] {
  const contentType = headerValue(headers, "content-type");
  if (contentType === undefined || !/^application\/grpc(\+|;|$)/i.test(contentType)) return undefined;
  const parts = path.split("/");
  if (parts.length !== 3 || parts[0] !== "" || !parts[1] || !parts[2]) return undefined;
  return { service: parts[1], method: parts[2] };
}

function prepare(request: RoutingRequest): PreparedRequest {
  const q = request.path.indexOf("?");
  const path = q === -1 ? request.path : request.path.slice(0, q);
  return {
    method: request.method.toUpperCase(),
    path,
    query: q === -1 ? undefined : new URLSearchParams(request.path.slice(q + 1)),
    headers: request.headers,
    grpc: grpcCall(path, request.headers),
  };
}

/** The routes of one Service port, prepared once per config version: sorted candidates and compiled regular expressions. */
export class ServicePortRouteTable {
  readonly #producer: RouteGroup;
  readonly #consumers = new Map<string, RouteGroup>();

  constructor(routes: ServicePortRoutes) {
    const regexes = new RegexCache();
    this.#producer = buildGroup(routes.producer, regexes);
    const byNamespace = Map.groupBy(routes.consumer, (r) => r.namespace);
    for (const [namespace, list] of byNamespace) this.#consumers.set(namespace, buildGroup(list, regexes));
  }

  /**
   * The rule for a request from a client in `clientNamespace`; "no-rule-matched" when routes apply but none of their rules
   * matches (the spec's 404), "no-routes" when no route applies to this client (the request goes where it was sent).
   * Consumer routes of the client's namespace replace the producer routes for that client; the two never merge (GEP-1294).
   */
  select(request: RoutingRequest, clientNamespace: string): RuleSelection | "no-rule-matched" | "no-routes" {
    const group = this.#consumers.get(clientNamespace) ?? this.#producer;
    if (group.routes === 0) return "no-routes";
    const prepared = prepare(request);
    // GRPCRoutes and HTTPRoutes never merge: a gRPC call uses the GRPCRoutes when the group has any.
    const candidates = prepared.grpc !== undefined && group.grpc.length > 0 ? group.grpc : group.http;
    return candidates.find((c) => c.test(prepared))?.selection ?? "no-rule-matched";
  }
}

/**
 * Picks a backend in proportion to its weight. Undefined when there is none to pick: no backends, or every weight 0
 * (both answered 500). An unresolved backend can be picked: its share of requests fails, as the spec requires.
 */
export function chooseBackend(backends: WeightedBackend[], random: RandomSource): WeightedBackend | undefined {
  let total = 0;
  for (const b of backends) total += b.weight;
  if (total === 0) return undefined;
  let point = random() * total;
  for (const b of backends) {
    if (b.weight === 0) continue;
    if (point < b.weight) return b;
    point -= b.weight;
  }
  // Floating-point rounding can leave the point just past the last share.
  return backends.findLast((b) => b.weight > 0);
}
