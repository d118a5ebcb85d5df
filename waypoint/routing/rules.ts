// Validates one HTTPRoute or GRPCRoute rule and converts it to its wire form; a rule with any error is dropped whole.
import type {
  BackendTarget,
  CompiledFilter,
  CompiledRule,
  GrpcMatch,
  HttpMatch,
  PathMatchType,
  RedirectStatusCode,
  RouteRetry,
  RouteTimeouts,
  UnresolvedReason,
  WeightedBackend,
} from "../../contract/routes.ts";
import { RouteErrorCode } from "./errors.ts";
import {
  checkHeaderModifier,
  checkHostname,
  checkPathModifier,
  checkPort,
  checkRegex,
  checkValueMatches,
  isObject,
  listAt,
  parseDuration,
  pathProblem,
  type Report,
} from "./fields.ts";
import type { BackendObjectReference, GRPCRouteMatch, GRPCRouteRule, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule } from "./gateway-api.ts";

/** Resolves a well-formed backend reference against the cluster; the compiler records why one did not resolve, for ResolvedRefs. */
export type ResolveBackend = (ref: { group: string; kind: string } & BackendTarget, path: string) => UnresolvedReason | undefined;

export interface RuleContext {
  routeNamespace: string;
  resolve: ResolveBackend;
  report: Report;
}

const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]);
const REDIRECT_CODES = new Set<number>([301, 302, 303, 307, 308]);
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;
/** Filters that may appear more than once in one list; every other type at most once. */
const REPEATABLE = new Set(["RequestMirror", "ExtensionRef"]);
/** Filter type → the field that carries its configuration. */
const FILTER_FIELDS: Record<string, keyof HTTPRouteFilter> = {
  RequestHeaderModifier: "requestHeaderModifier",
  ResponseHeaderModifier: "responseHeaderModifier",
  RequestMirror: "requestMirror",
  RequestRedirect: "requestRedirect",
  URLRewrite: "urlRewrite",
  ExtensionRef: "extensionRef",
  CORS: "cors",
  ExternalAuth: "externalAuth",
};
const HTTP_FILTERS = new Set(["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite"]);
const GRPC_FILTERS = new Set(["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"]);

interface FilterScope {
  supported: ReadonlySet<string>;
  /** The rule's matches are exactly one PathPrefix match: the only case where ReplacePrefixMatch knows what to replace. */
  singlePrefixMatch: boolean;
}

/** Reports into `report` and says whether anything was reported meanwhile. */
function counting(report: Report): { report: Report; failed: () => boolean } {
  let failures = 0;
  return {
    report: (code, path, detail) => {
      failures++;
      report(code, path, detail);
    },
    failed: () => failures > 0,
  };
}

function checkBackendRef(
  ref: BackendObjectReference | undefined,
  path: string,
  ctx: RuleContext,
): ({ group: string; kind: string } & BackendTarget) | undefined {
  if (!isObject(ref)) {
    ctx.report(RouteErrorCode.malformed, path, "must be an object naming a backend");
    return undefined;
  }
  if (typeof ref.name !== "string" || ref.name === "" || ref.name.length > 253) {
    ctx.report(RouteErrorCode.invalidBackend, `${path}.name`, "must name the backend (1 to 253 characters)");
    return undefined;
  }
  const group = ref.group ?? "";
  const kind = ref.kind ?? "Service";
  let port = 0;
  if (group === "" && kind === "Service") {
    if (ref.port === undefined) {
      ctx.report(RouteErrorCode.invalidBackend, `${path}.port`, "must be set for a Service backend");
      return undefined;
    }
    const checked = checkPort(ref.port, `${path}.port`, RouteErrorCode.invalidBackend, ctx.report);
    if (checked === undefined) return undefined;
    port = checked;
  }
  return { group, kind, namespace: ref.namespace ?? ctx.routeNamespace, service: ref.name, port };
}

function checkRedirect(spec: HTTPRouteFilter["requestRedirect"], path: string, scope: FilterScope, report: Report): CompiledFilter | undefined {
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const out: Extract<CompiledFilter, { type: "RequestRedirect" }> = { type: "RequestRedirect", statusCode: 302 };
  if (spec.scheme !== undefined) {
    if (spec.scheme !== "http" && spec.scheme !== "https") {
      return void report(RouteErrorCode.unsupportedValue, `${path}.scheme`, `must be "http" or "https" (got ${JSON.stringify(spec.scheme)})`);
    }
    out.scheme = spec.scheme;
  }
  if (spec.hostname !== undefined) out.hostname = checkHostname(spec.hostname, `${path}.hostname`, report);
  if (spec.port !== undefined) out.port = checkPort(spec.port, `${path}.port`, RouteErrorCode.malformed, report);
  if (spec.statusCode !== undefined) {
    if (!REDIRECT_CODES.has(spec.statusCode)) {
      return void report(RouteErrorCode.unsupportedValue, `${path}.statusCode`, `must be 301, 302, 303, 307 or 308 (got ${JSON.stringify(spec.statusCode)})`);
    }
    out.statusCode = spec.statusCode as RedirectStatusCode;
  }
  if (spec.path !== undefined) {
    out.path = checkPathModifier(spec.path, `${path}.path`, report);
    if (out.path?.type === "ReplacePrefixMatch" && !scope.singlePrefixMatch) {
      return void report(RouteErrorCode.incompatibleFilters, `${path}.path`, "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix");
    }
  }
  return out;
}

function checkRewrite(spec: HTTPRouteFilter["urlRewrite"], path: string, scope: FilterScope, report: Report): CompiledFilter | undefined {
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const out: Extract<CompiledFilter, { type: "URLRewrite" }> = { type: "URLRewrite" };
  if (spec.hostname !== undefined) out.hostname = checkHostname(spec.hostname, `${path}.hostname`, report);
  if (spec.path !== undefined) {
    out.path = checkPathModifier(spec.path, `${path}.path`, report);
    if (out.path?.type === "ReplacePrefixMatch" && !scope.singlePrefixMatch) {
      return void report(RouteErrorCode.incompatibleFilters, `${path}.path`, "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix");
    }
  }
  return out;
}

/** A mirror whose backend does not resolve is dropped (the spec's rule); the rule itself stays. */
function checkMirror(spec: HTTPRouteFilter["requestMirror"], path: string, ctx: RuleContext): CompiledFilter | null | undefined {
  if (!isObject(spec)) return void ctx.report(RouteErrorCode.malformed, path, "must be an object with a backendRef");
  let percent = 100;
  if (spec.percent !== undefined && spec.fraction !== undefined) {
    return void ctx.report(RouteErrorCode.malformed, path, "may set percent or fraction, not both");
  }
  if (spec.percent !== undefined) {
    if (!Number.isInteger(spec.percent) || spec.percent < 0 || spec.percent > 100) {
      return void ctx.report(RouteErrorCode.malformed, `${path}.percent`, "must be an integer from 0 to 100");
    }
    percent = spec.percent;
  }
  if (spec.fraction !== undefined) {
    const { numerator, denominator = 100 } = isObject(spec.fraction) ? spec.fraction : {};
    if (!Number.isInteger(numerator) || !Number.isInteger(denominator) || (numerator as number) < 0 || denominator < 1 || (numerator as number) > denominator) {
      return void ctx.report(RouteErrorCode.malformed, `${path}.fraction`, "must have integers 0 <= numerator <= denominator, denominator >= 1");
    }
    percent = ((numerator as number) * 100) / denominator;
  }
  const ref = checkBackendRef(spec.backendRef, `${path}.backendRef`, ctx);
  if (ref === undefined) return undefined;
  if (ctx.resolve(ref, `${path}.backendRef`) !== undefined) return null;
  return { type: "RequestMirror", backend: { namespace: ref.namespace, service: ref.service, port: ref.port }, percent };
}

function checkFilters(specs: HTTPRouteFilter[], path: string, scope: FilterScope, ctx: RuleContext): CompiledFilter[] {
  const out: CompiledFilter[] = [];
  const seen = new Set<string>();
  specs.forEach((f, i) => {
    const at = `${path}[${i}]`;
    if (!isObject(f) || typeof f.type !== "string") return ctx.report(RouteErrorCode.malformed, at, "must be an object with a type");
    const field = FILTER_FIELDS[f.type];
    if (field === undefined || !scope.supported.has(f.type)) {
      return ctx.report(
        RouteErrorCode.unsupportedValue,
        `${at}.type`,
        `filter type ${JSON.stringify(f.type)} is not supported here (supported: ${[...scope.supported].join(", ")})`,
      );
    }
    for (const other of Object.values(FILTER_FIELDS)) {
      if (other !== field && f[other] !== undefined) return ctx.report(RouteErrorCode.malformed, `${at}.${other}`, `must not be set when type is ${f.type}`);
    }
    if (seen.has(f.type) && !REPEATABLE.has(f.type)) return ctx.report(RouteErrorCode.incompatibleFilters, `${at}.type`, `${f.type} may appear only once`);
    seen.add(f.type);
    let filter: CompiledFilter | null | undefined;
    if (f.type === "RequestHeaderModifier" || f.type === "ResponseHeaderModifier") {
      const modifier = checkHeaderModifier(f[field] as HTTPRouteFilter["requestHeaderModifier"], `${at}.${field}`, ctx.report);
      filter = modifier && { type: f.type, ...modifier };
    } else if (f.type === "RequestRedirect") filter = checkRedirect(f.requestRedirect, `${at}.requestRedirect`, scope, ctx.report);
    else if (f.type === "URLRewrite") filter = checkRewrite(f.urlRewrite, `${at}.urlRewrite`, scope, ctx.report);
    else filter = checkMirror(f.requestMirror, `${at}.requestMirror`, ctx);
    if (filter) out.push(filter);
  });
  if (seen.has("RequestRedirect") && seen.has("URLRewrite")) {
    ctx.report(RouteErrorCode.incompatibleFilters, path, "RequestRedirect and URLRewrite cannot be used together");
  }
  return out;
}

function checkBackends(specs: HTTPRouteRule["backendRefs"], path: string, scope: FilterScope, ctx: RuleContext): WeightedBackend[] {
  return listAt(specs, path, 16, ctx.report).flatMap((spec, i) => {
    const at = `${path}[${i}]`;
    const ref = checkBackendRef(spec, at, ctx);
    if (ref === undefined) return [];
    const weight = spec.weight ?? 1;
    if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
      ctx.report(RouteErrorCode.invalidBackend, `${at}.weight`, `must be an integer from 0 to 1000000 (got ${JSON.stringify(spec.weight)})`);
      return [];
    }
    const filters = checkFilters(listAt(spec.filters, `${at}.filters`, 16, ctx.report), `${at}.filters`, scope, ctx);
    const backend: WeightedBackend = { namespace: ref.namespace, service: ref.service, port: ref.port, weight, filters };
    const unresolved = ctx.resolve(ref, at);
    if (unresolved !== undefined) backend.unresolved = unresolved;
    return [backend];
  });
}

function checkTimeouts(spec: HTTPRouteRule["timeouts"], path: string, report: Report): RouteTimeouts | undefined {
  if (spec === undefined) return undefined;
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const out: RouteTimeouts = {};
  if (spec.request !== undefined) out.requestMs = parseDuration(spec.request, `${path}.request`, report);
  if (spec.backendRequest !== undefined) out.backendRequestMs = parseDuration(spec.backendRequest, `${path}.backendRequest`, report);
  if (out.requestMs !== undefined && out.requestMs > 0 && out.backendRequestMs !== undefined && out.backendRequestMs > out.requestMs) {
    report(RouteErrorCode.invalidDuration, `${path}.backendRequest`, "must not be longer than the request timeout, which covers every backend request");
  }
  return out;
}

function checkRetry(spec: HTTPRouteRule["retry"], path: string, report: Report): RouteRetry | undefined {
  if (spec === undefined) return undefined;
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const codes = listAt(spec.codes, `${path}.codes`, 100, report);
  codes.forEach((code, i) => {
    if (!Number.isInteger(code) || code < 400 || code > 599)
      report(RouteErrorCode.invalidRetry, `${path}.codes[${i}]`, `must be an HTTP status from 400 to 599 (got ${JSON.stringify(code)})`);
  });
  const out: RouteRetry = { codes: [...new Set(codes)] };
  if (spec.attempts !== undefined) {
    if (!Number.isInteger(spec.attempts) || spec.attempts < 1) report(RouteErrorCode.invalidRetry, `${path}.attempts`, "must be an integer of at least 1");
    else out.attempts = spec.attempts;
  }
  if (spec.backoff !== undefined) out.backoffMs = parseDuration(spec.backoff, `${path}.backoff`, report);
  return out;
}

function checkHttpMatch(spec: HTTPRouteMatch, path: string, report: Report): HttpMatch | undefined {
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const pathSpec = spec.path ?? {};
  const type = pathSpec.type ?? "PathPrefix";
  let value = pathSpec.value ?? "/";
  if (type !== "Exact" && type !== "PathPrefix" && type !== "RegularExpression") {
    return void report(RouteErrorCode.unsupportedValue, `${path}.path.type`, `must be Exact, PathPrefix or RegularExpression (got ${JSON.stringify(type)})`);
  }
  if (typeof value !== "string" || value.length > 1024)
    return void report(RouteErrorCode.malformed, `${path}.path.value`, "must be a string of at most 1024 characters");
  if (type === "RegularExpression") {
    if (!checkRegex(value, `${path}.path.value`, report)) return undefined;
  } else {
    const problem = pathProblem(value);
    if (problem !== undefined) return void report(RouteErrorCode.invalidPath, `${path}.path.value`, problem);
    // "/abc/" and "/abc" are the same prefix: the trailing "/" is ignored when matching.
    if (type === "PathPrefix" && value.length > 1 && value.endsWith("/")) value = value.slice(0, -1);
  }
  const out: HttpMatch = {
    path: { type: type satisfies PathMatchType, value },
    headers: checkValueMatches(listAt(spec.headers, `${path}.headers`, 16, report), `${path}.headers`, "header", report),
    queryParams: checkValueMatches(listAt(spec.queryParams, `${path}.queryParams`, 16, report), `${path}.queryParams`, "query", report),
  };
  if (spec.method !== undefined) {
    if (!HTTP_METHODS.has(spec.method))
      return void report(RouteErrorCode.unsupportedValue, `${path}.method`, `must be an upper-case HTTP method (got ${JSON.stringify(spec.method)})`);
    out.method = spec.method;
  }
  return out;
}

function checkGrpcMatch(spec: GRPCRouteMatch, path: string, report: Report): GrpcMatch | undefined {
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const out: GrpcMatch = { headers: checkValueMatches(listAt(spec.headers, `${path}.headers`, 16, report), `${path}.headers`, "header", report) };
  if (spec.method === undefined) return out;
  const m = spec.method;
  const at = `${path}.method`;
  if (!isObject(m)) return void report(RouteErrorCode.malformed, at, "must be an object");
  const type = m.type ?? "Exact";
  if (type !== "Exact" && type !== "RegularExpression")
    return void report(RouteErrorCode.unsupportedValue, `${at}.type`, `must be Exact or RegularExpression (got ${JSON.stringify(type)})`);
  if (!m.service && !m.method) return void report(RouteErrorCode.invalidGrpcMethod, at, "must set service, method or both");
  out.method = { type };
  for (const part of ["service", "method"] as const) {
    const value = m[part];
    if (value === undefined || value === "") continue;
    if (typeof value !== "string" || value.length > 1024)
      return void report(RouteErrorCode.malformed, `${at}.${part}`, "must be a string of at most 1024 characters");
    if (type === "RegularExpression") {
      if (!checkRegex(value, `${at}.${part}`, report)) return undefined;
    } else if (!(part === "service" ? GRPC_SERVICE : GRPC_METHOD).test(value)) {
      const what = part === "service" ? "a dotted gRPC service name (letters, digits, _)" : "a gRPC method name (letters, digits, _)";
      return void report(RouteErrorCode.invalidGrpcMethod, `${at}.${part}`, `must be ${what} (got ${JSON.stringify(value)})`);
    }
    out.method[part] = value;
  }
  return out;
}

/** The wire form of `spec.rules[index]` of an HTTPRoute, or undefined when anything in it is invalid (all errors reported). */
export function compileHttpRule(spec: HTTPRouteRule, index: number, ctx: RuleContext): CompiledRule<HttpMatch> | undefined {
  const path = `spec.rules[${index}]`;
  const { report, failed } = counting(ctx.report);
  const checked = { ...ctx, report };
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const matchSpecs = listAt(spec.matches, `${path}.matches`, 64, report);
  const matches = matchSpecs.length === 0 ? [defaultHttpMatch()] : matchSpecs.flatMap((m, i) => checkHttpMatch(m, `${path}.matches[${i}]`, report) ?? []);
  const scope = { supported: HTTP_FILTERS, singlePrefixMatch: matches.length === 1 && matches[0]?.path.type === "PathPrefix" };
  const filters = checkFilters(listAt(spec.filters, `${path}.filters`, 16, report), `${path}.filters`, scope, checked);
  const backends = checkBackends(spec.backendRefs, `${path}.backendRefs`, scope, checked);
  if ((spec.backendRefs?.length ?? 0) > 0 && filters.some((f) => f.type === "RequestRedirect")) {
    report(RouteErrorCode.incompatibleFilters, `${path}.filters`, "a RequestRedirect answers the request itself: it cannot be used with backendRefs");
  }
  const timeouts = checkTimeouts(spec.timeouts, `${path}.timeouts`, report);
  const retry = checkRetry(spec.retry, `${path}.retry`, report);
  if (failed()) return undefined;
  return withOptional({ index, matches, filters, backends }, spec.name, timeouts, retry);
}

/** The wire form of `spec.rules[index]` of a GRPCRoute, or undefined when anything in it is invalid. */
export function compileGrpcRule(spec: GRPCRouteRule, index: number, ctx: RuleContext): CompiledRule<GrpcMatch> | undefined {
  const path = `spec.rules[${index}]`;
  const { report, failed } = counting(ctx.report);
  const checked = { ...ctx, report };
  if (!isObject(spec)) return void report(RouteErrorCode.malformed, path, "must be an object");
  const matchSpecs = listAt(spec.matches, `${path}.matches`, 64, report);
  const matches = matchSpecs.length === 0 ? [{ headers: [] }] : matchSpecs.flatMap((m, i) => checkGrpcMatch(m, `${path}.matches[${i}]`, report) ?? []);
  const scope = { supported: GRPC_FILTERS, singlePrefixMatch: false };
  const filters = checkFilters(listAt(spec.filters, `${path}.filters`, 16, report), `${path}.filters`, scope, checked);
  const backends = checkBackends(spec.backendRefs, `${path}.backendRefs`, scope, checked);
  if (failed()) return undefined;
  return withOptional({ index, matches, filters, backends }, spec.name, undefined, undefined);
}

const defaultHttpMatch = (): HttpMatch => ({ path: { type: "PathPrefix", value: "/" }, headers: [], queryParams: [] });

function withOptional<M>(rule: CompiledRule<M>, name: string | undefined, timeouts: RouteTimeouts | undefined, retry: RouteRetry | undefined): CompiledRule<M> {
  if (name !== undefined) rule.name = name;
  if (timeouts !== undefined) rule.timeouts = timeouts;
  if (retry !== undefined) rule.retry = retry;
  return rule;
}
