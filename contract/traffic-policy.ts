// Wire contract of compiled BackendTrafficPolicies (networking.ambit.dev): the resilience a waypoint applies to a Service or a route, durations in ms.

/** Config stream resource type; the key is `namespace/name` of the policy and the value a `CompiledTrafficPolicy`. */
export const TRAFFIC_POLICY_RESOURCE_TYPE = "trafficpolicy";

export const TRAFFIC_POLICY_GROUP = "networking.ambit.dev";
export const TRAFFIC_POLICY_VERSION = "networking.ambit.dev/v1alpha1";
export const TRAFFIC_POLICY_KIND = "BackendTrafficPolicy";
export const TRAFFIC_POLICY_PLURAL = "backendtrafficpolicies";

/** What a `targetRefs` entry names, always in the policy's own namespace. */
export interface TrafficPolicyTarget {
  kind: "Service" | "HTTPRoute" | "GRPCRoute";
  name: string;
}

export const LOAD_BALANCER_TYPES = ["RoundRobin", "LeastRequest", "Random"] as const;
export type LoadBalancerType = (typeof LOAD_BALANCER_TYPES)[number];

/** Envoy's cluster circuit breakers; every field is filled in (Envoy's default 1024 where the policy left it out). */
export interface CircuitBreakerLimits {
  /** Connections open to all endpoints of the Service together. */
  maxConnections: number;
  /** Requests waiting for a connection. */
  maxPendingRequests: number;
  /** Requests in flight to all endpoints together. */
  maxParallelRequests: number;
  /** Requests one upstream connection carries before it is closed; absent: unlimited (Envoy's default). */
  maxRequestsPerConnection?: number;
}

/** `spec.healthCheck.passive`: Envoy's outlier detection. A threshold of 0 turns that detection off. */
export interface OutlierDetectionSettings {
  consecutive5xxErrors: number;
  consecutiveGatewayErrors: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
}

/** Percentages are 0-100 with fractions (Envoy's accuracy is 0.0001 %). */
export interface FaultInjectionSettings {
  delay?: { fixedDelayMs: number; percentage: number };
  /** Exactly one of httpStatus and grpcStatus. */
  abort?: { httpStatus?: number; grpcStatus?: number; percentage: number };
}

/** Envoy's retry budget: concurrent retries may be `percent` of active plus pending requests, never fewer than `minRetryConcurrency`. */
export interface RetryBudgetSettings {
  percent: number;
  minRetryConcurrency: number;
}

/** What one valid policy asks for; a section the policy leaves out is absent (the waypoint then does what it does without a policy). */
export interface TrafficPolicySettings {
  circuitBreaker?: CircuitBreakerLimits;
  outlierDetection?: OutlierDetectionSettings;
  loadBalancer?: { type: LoadBalancerType };
  faultInjection?: FaultInjectionSettings;
  retryBudget?: RetryBudgetSettings;
}

/**
 * A valid policy and the targets where it is in effect: those that exist and that no older policy claims first
 * (GEP-713). An Invalid policy, or one in effect nowhere, is not streamed at all: never half applied.
 */
export interface CompiledTrafficPolicy extends TrafficPolicySettings {
  namespace: string;
  name: string;
  /** RFC 3339, as `metadata.creationTimestamp`: the older policy wins a target. */
  creationTimestamp: string;
  targets: TrafficPolicyTarget[];
}

export const trafficPolicyKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;
