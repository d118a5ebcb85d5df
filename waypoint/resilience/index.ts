// Public surface of the waypoint's resilience: per-Service state from BackendTrafficPolicies, and the parts the proxy calls per request.
export { type RouteRef, type ResilienceOptions, ResiliencePolicies, type ServiceResilience } from "./policies.ts";
export { type FaultDecision, FaultInjector } from "./fault-injector.ts";
export { type Admission, type BreakerOverflow, type BreakerSlot, CircuitBreaker } from "./circuit-breaker.ts";
export { OutlierDetector, type UpstreamOutcome } from "./outlier-detector.ts";
export { type LoadBalancer, createLoadBalancer } from "./load-balancer.ts";
export { RetryBudget } from "./retry-budget.ts";
export { type Clock, type Random, monotonicClock, seededRandom } from "./sources.ts";
