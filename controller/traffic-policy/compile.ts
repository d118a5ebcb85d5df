// Reads one BackendTrafficPolicy's spec into the settings a waypoint applies, refusing it whole (a stable code and the field path) at its first mistake.
import { TRAFFIC_POLICY_ERRORS } from "../../contract/error-codes.ts";
import { AmbitError } from "../../contract/errors.ts";
import {
  type CircuitBreakerLimits,
  type FaultInjectionSettings,
  LOAD_BALANCER_TYPES,
  type LoadBalancerType,
  type OutlierDetectionSettings,
  type RetryBudgetSettings,
  type TrafficPolicySettings,
  type TrafficPolicyTarget,
} from "../../contract/traffic-policy.ts";
import { GATEWAY_API_GROUP } from "../../contract/waypoint.ts";
import type { KubeObject } from "../../kube/client.ts";
import { durationMs } from "../../waypoint/routing/index.ts";

export const TrafficPolicyErrorCode = TRAFFIC_POLICY_ERRORS.code;
export type TrafficPolicyErrorCode = (typeof TrafficPolicyErrorCode)[keyof typeof TrafficPolicyErrorCode];

/** Why a policy is Invalid; the message is `<field path>: <what is wrong and what to write>`. */
export class TrafficPolicyError extends AmbitError<TrafficPolicyErrorCode> {
  readonly path: string;
  constructor(code: TrafficPolicyErrorCode, path: string, detail: string) {
    super(code, `${path}: ${detail}`);
    this.name = "TrafficPolicyError";
    this.path = path;
  }
}

/** Envoy's default for every circuit breaker threshold the policy leaves out. */
export const ENVOY_DEFAULT_LIMIT = 1024;
/** Envoy Gateway's passive health check defaults (its BackendTrafficPolicy `healthCheck.passive`). */
const OUTLIER_DEFAULTS = { consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, intervalMs: 3000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 };
/** Envoy's retry budget defaults (`retry_budget`: 20 % and 3). */
const RETRY_BUDGET_DEFAULTS = { percent: 20, minRetryConcurrency: 3 };
/** Gateway API's limit on targetRefs (and on status.ancestors). */
const MAX_TARGETS = 16;
const UINT32_MAX = 4_294_967_295;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Unknown fields are refused, not ignored: `maxConnection:` would otherwise leave the Service unprotected while the status says Accepted. */
function objectAt(v: unknown, path: string, known: readonly string[], hints: Record<string, string> = {}): Record<string, unknown> {
  if (!isObject(v)) throw new TrafficPolicyError(TrafficPolicyErrorCode.malformed, path, "must be an object");
  for (const k of Object.keys(v)) {
    if (known.includes(k)) continue;
    if (hints[k]) throw new TrafficPolicyError(TrafficPolicyErrorCode.unsupportedValue, `${path}.${k}`, hints[k]);
    throw new TrafficPolicyError(TrafficPolicyErrorCode.unknownField, `${path}.${k}`, `unknown field (known: ${known.join(", ")})`);
  }
  return v;
}

function integerAt(v: unknown, path: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v))
    throw new TrafficPolicyError(TrafficPolicyErrorCode.malformed, path, `must be an integer, not ${JSON.stringify(v)}`);
  if (v < min || v > max) throw new TrafficPolicyError(TrafficPolicyErrorCode.outOfRange, path, `must be between ${min} and ${max}, not ${v}`);
  return v;
}

function percentageAt(v: unknown, path: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new TrafficPolicyError(TrafficPolicyErrorCode.malformed, path, `must be a number, not ${JSON.stringify(v)}`);
  if (v < 0 || v > 100) throw new TrafficPolicyError(TrafficPolicyErrorCode.outOfRange, path, `must be a percentage between 0 and 100, not ${v}`);
  return v;
}

function durationAt(v: unknown, path: string, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  const ms = durationMs(v);
  if (ms === undefined)
    throw new TrafficPolicyError(
      TrafficPolicyErrorCode.invalidDuration,
      path,
      `must be a duration such as "30s", "500ms" or "1m30s" (got ${JSON.stringify(v)})`,
    );
  if (ms === 0) throw new TrafficPolicyError(TrafficPolicyErrorCode.invalidDuration, path, "must be longer than 0");
  return ms;
}

function circuitBreaker(v: unknown, path: string): CircuitBreakerLimits {
  const cb = objectAt(v, path, ["maxConnections", "maxPendingRequests", "maxParallelRequests", "maxRequestsPerConnection"], {
    maxParallelRetries: "not supported: bound concurrent retries with retry.budget (percent, minRetryConcurrency)",
  });
  const limit = (field: string) => integerAt(cb[field], `${path}.${field}`, 0, UINT32_MAX, ENVOY_DEFAULT_LIMIT);
  // 0 is Istio's and Envoy's "unlimited" for requests per connection: ported policies keep their meaning.
  const perConnection = integerAt(cb.maxRequestsPerConnection, `${path}.maxRequestsPerConnection`, 0, UINT32_MAX, 0);
  return {
    maxConnections: limit("maxConnections"),
    maxPendingRequests: limit("maxPendingRequests"),
    maxParallelRequests: limit("maxParallelRequests"),
    ...(perConnection > 0 ? { maxRequestsPerConnection: perConnection } : {}),
  };
}

function outlierDetection(v: unknown, path: string): OutlierDetectionSettings | undefined {
  const hc = objectAt(v, path, ["passive"], { active: "active health checks are not implemented: use passive (outlier detection)" });
  if (hc.passive === undefined) return undefined;
  const at = `${path}.passive`;
  const p = objectAt(hc.passive, at, ["consecutive5XxErrors", "consecutiveGatewayErrors", "interval", "baseEjectionTime", "maxEjectionPercent"], {
    splitExternalLocalOriginErrors: "not supported: connect failures always count as gateway errors (502)",
    consecutiveLocalOriginFailures: "not supported: connect failures always count as gateway errors (502)",
  });
  return {
    consecutive5xxErrors: integerAt(p.consecutive5XxErrors, `${at}.consecutive5XxErrors`, 0, UINT32_MAX, OUTLIER_DEFAULTS.consecutive5xxErrors),
    consecutiveGatewayErrors: integerAt(p.consecutiveGatewayErrors, `${at}.consecutiveGatewayErrors`, 0, UINT32_MAX, OUTLIER_DEFAULTS.consecutiveGatewayErrors),
    intervalMs: durationAt(p.interval, `${at}.interval`, OUTLIER_DEFAULTS.intervalMs),
    baseEjectionTimeMs: durationAt(p.baseEjectionTime, `${at}.baseEjectionTime`, OUTLIER_DEFAULTS.baseEjectionTimeMs),
    maxEjectionPercent: integerAt(p.maxEjectionPercent, `${at}.maxEjectionPercent`, 0, 100, OUTLIER_DEFAULTS.maxEjectionPercent),
  };
}

function loadBalancer(v: unknown, path: string): { type: LoadBalancerType } {
  const lb = objectAt(v, path, ["type"]);
  if (!LOAD_BALANCER_TYPES.includes(lb.type as LoadBalancerType))
    throw new TrafficPolicyError(
      TrafficPolicyErrorCode.unsupportedValue,
      `${path}.type`,
      `${JSON.stringify(lb.type)} is not supported: write one of ${LOAD_BALANCER_TYPES.join(", ")}`,
    );
  return { type: lb.type as LoadBalancerType };
}

function faultInjection(v: unknown, path: string): FaultInjectionSettings {
  const f = objectAt(v, path, ["delay", "abort"]);
  if (f.delay === undefined && f.abort === undefined) throw new TrafficPolicyError(TrafficPolicyErrorCode.malformed, path, "set delay, abort or both");
  const out: FaultInjectionSettings = {};
  if (f.delay !== undefined) {
    const d = objectAt(f.delay, `${path}.delay`, ["fixedDelay", "percentage"]);
    if (d.fixedDelay === undefined) throw new TrafficPolicyError(TrafficPolicyErrorCode.malformed, `${path}.delay.fixedDelay`, "required");
    out.delay = { fixedDelayMs: durationAt(d.fixedDelay, `${path}.delay.fixedDelay`), percentage: percentageAt(d.percentage, `${path}.delay.percentage`, 100) };
  }
  if (f.abort !== undefined) {
    const at = `${path}.abort`;
    const a = objectAt(f.abort, at, ["httpStatus", "grpcStatus", "percentage"]);
    if ((a.httpStatus === undefined) === (a.grpcStatus === undefined))
      throw new TrafficPolicyError(TrafficPolicyErrorCode.malformed, at, "set exactly one of httpStatus and grpcStatus");
    const percentage = percentageAt(a.percentage, `${at}.percentage`, 100);
    out.abort =
      a.httpStatus !== undefined
        ? { httpStatus: integerAt(a.httpStatus, `${at}.httpStatus`, 200, 599, 0), percentage }
        : { grpcStatus: integerAt(a.grpcStatus, `${at}.grpcStatus`, 0, 16, 0), percentage };
  }
  return out;
}

function retryBudget(v: unknown, path: string): RetryBudgetSettings | undefined {
  const perRoute = "not here: attempts, codes and backoff belong to the HTTPRoute rule's retry field";
  const r = objectAt(v, path, ["budget"], {
    numRetries: perRoute,
    retryOn: perRoute,
    perRetry: perRoute,
    attempts: perRoute,
    codes: perRoute,
    backoff: perRoute,
  });
  if (r.budget === undefined) return undefined;
  const b = objectAt(r.budget, `${path}.budget`, ["percent", "minRetryConcurrency"]);
  return {
    percent: percentageAt(b.percent, `${path}.budget.percent`, RETRY_BUDGET_DEFAULTS.percent),
    minRetryConcurrency: integerAt(b.minRetryConcurrency, `${path}.budget.minRetryConcurrency`, 0, UINT32_MAX, RETRY_BUDGET_DEFAULTS.minRetryConcurrency),
  };
}

const TARGET_GROUPS: Record<TrafficPolicyTarget["kind"], readonly string[]> = {
  Service: ["", "core"],
  HTTPRoute: [GATEWAY_API_GROUP],
  GRPCRoute: [GATEWAY_API_GROUP],
};

function targetOf(raw: unknown, path: string, namespace: string): TrafficPolicyTarget {
  const ref = objectAt(raw, path, ["group", "kind", "name", "namespace"], {
    sectionName: "not supported: a policy applies to every port of a Service and every rule of a route",
  });
  const { group = "", kind, name } = ref;
  if (kind !== "Service" && kind !== "HTTPRoute" && kind !== "GRPCRoute")
    throw new TrafficPolicyError(
      TrafficPolicyErrorCode.targetRef,
      `${path}.kind`,
      `${JSON.stringify(kind)} cannot be targeted: write Service, HTTPRoute or GRPCRoute`,
    );
  if (typeof group !== "string" || !TARGET_GROUPS[kind].includes(group))
    throw new TrafficPolicyError(
      TrafficPolicyErrorCode.targetRef,
      `${path}.group`,
      `${JSON.stringify(group)} is not the group of a ${kind}: write "${TARGET_GROUPS[kind][0]}"`,
    );
  if (typeof name !== "string" || name === "" || name.includes("/"))
    throw new TrafficPolicyError(TrafficPolicyErrorCode.targetRef, `${path}.name`, `must be the name of a ${kind} in namespace ${namespace}`);
  // GEP-713: a policy attaches within its own namespace; another team's Service is theirs to tune.
  if (ref.namespace !== undefined && ref.namespace !== namespace)
    throw new TrafficPolicyError(TrafficPolicyErrorCode.targetRef, `${path}.namespace`, `a policy of namespace ${namespace} may only target its own namespace`);
  return { kind, name };
}

/** The targets as written, each once. */
export function targetsOf(spec: Record<string, unknown>, namespace: string): TrafficPolicyTarget[] {
  const refs = spec.targetRefs;
  if (!Array.isArray(refs) || refs.length === 0)
    throw new TrafficPolicyError(TrafficPolicyErrorCode.targetRef, "spec.targetRefs", "must list at least one Service, HTTPRoute or GRPCRoute");
  if (refs.length > MAX_TARGETS) throw new TrafficPolicyError(TrafficPolicyErrorCode.outOfRange, "spec.targetRefs", `must have at most ${MAX_TARGETS} entries`);
  const targets = refs.map((r, i) => targetOf(r, `spec.targetRefs[${i}]`, namespace));
  return targets.filter((t, i) => targets.findIndex((o) => o.kind === t.kind && o.name === t.name) === i);
}

/** What targetRefs names as far as it can be read, for an Invalid policy's status: entries with a known kind and a name. */
export function readableTargets(spec: unknown): TrafficPolicyTarget[] {
  const refs = isObject(spec) && Array.isArray(spec.targetRefs) ? (spec.targetRefs as unknown[]) : [];
  return refs.flatMap((r) =>
    isObject(r) && (r.kind === "Service" || r.kind === "HTTPRoute" || r.kind === "GRPCRoute") && typeof r.name === "string" && r.name !== ""
      ? [{ kind: r.kind, name: r.name } satisfies TrafficPolicyTarget]
      : [],
  );
}

const SPEC_FIELDS = ["targetRefs", "circuitBreaker", "healthCheck", "loadBalancer", "faultInjection", "retry"];

/** The policy's targets and settings; throws a TrafficPolicyError at the first mistake, so no part of an Invalid policy applies. */
export function compileTrafficPolicySpec(obj: KubeObject): { targets: TrafficPolicyTarget[]; settings: TrafficPolicySettings } {
  const namespace = obj.metadata.namespace ?? "";
  const spec = objectAt(obj.spec, "spec", SPEC_FIELDS, {
    targetRef: "write targetRefs (a list), as GEP-713 asks of new policies",
    targetSelectors: "not supported: name each Service or route in targetRefs",
  });
  const targets = targetsOf(spec, namespace);
  const settings: TrafficPolicySettings = {};
  if (spec.circuitBreaker !== undefined) settings.circuitBreaker = circuitBreaker(spec.circuitBreaker, "spec.circuitBreaker");
  if (spec.healthCheck !== undefined) {
    const outlier = outlierDetection(spec.healthCheck, "spec.healthCheck");
    if (outlier) settings.outlierDetection = outlier;
  }
  if (spec.loadBalancer !== undefined) settings.loadBalancer = loadBalancer(spec.loadBalancer, "spec.loadBalancer");
  if (spec.faultInjection !== undefined) settings.faultInjection = faultInjection(spec.faultInjection, "spec.faultInjection");
  if (spec.retry !== undefined) {
    const budget = retryBudget(spec.retry, "spec.retry");
    if (budget) settings.retryBudget = budget;
  }
  return { targets, settings };
}
