// BackendTrafficPolicy compilation: field validation with codes and paths, defaults, GEP-713 conflicts and TargetNotFound, status ancestors.
import { describe, expect, it } from "vitest";
import { TrafficPolicyErrorCode, compileTrafficPolicies, compileTrafficPolicySpec, nextPolicyAncestors } from "../../controller/traffic-policy/index.ts";
import { TRAFFIC_POLICY_VERSION } from "../../contract/traffic-policy.ts";
import { WAYPOINT_CONTROLLER_NAME } from "../../contract/waypoint.ts";
import type { KubeObject } from "../../kube/client.ts";

const policy = (name: string, spec: unknown, created = "2026-01-01T00:00:00Z", namespace = "shop"): KubeObject => ({
  apiVersion: TRAFFIC_POLICY_VERSION,
  kind: "BackendTrafficPolicy",
  metadata: { name, namespace, creationTimestamp: created, generation: 2, resourceVersion: "7" },
  spec: spec as Record<string, unknown>,
});
const toService = (name = "reviews") => ({ targetRefs: [{ group: "", kind: "Service", name }] });
const everything = () => true;

function errorOf(spec: unknown): { code: string; path: string } {
  const { results } = compileTrafficPolicies([policy("p", spec)], everything);
  return results[0]!.error!;
}

describe("BackendTrafficPolicy fields", () => {
  it("compiles every section, durations in ms", () => {
    const { targets, settings } = compileTrafficPolicySpec(
      policy("p", {
        ...toService(),
        circuitBreaker: { maxConnections: 10, maxPendingRequests: 1, maxRequestsPerConnection: 5 },
        healthCheck: { passive: { consecutive5XxErrors: 3, interval: "1s", baseEjectionTime: "1m30s", maxEjectionPercent: 50 } },
        loadBalancer: { type: "LeastRequest" },
        faultInjection: { delay: { fixedDelay: "2s", percentage: 12.5 }, abort: { grpcStatus: 14 } },
        retry: { budget: { percent: 25 } },
      }),
    );
    expect(targets).toEqual([{ kind: "Service", name: "reviews" }]);
    expect(settings).toEqual({
      circuitBreaker: { maxConnections: 10, maxPendingRequests: 1, maxParallelRequests: 1024, maxRequestsPerConnection: 5 },
      outlierDetection: { consecutive5xxErrors: 3, consecutiveGatewayErrors: 0, intervalMs: 1000, baseEjectionTimeMs: 90_000, maxEjectionPercent: 50 },
      loadBalancer: { type: "LeastRequest" },
      faultInjection: { delay: { fixedDelayMs: 2000, percentage: 12.5 }, abort: { grpcStatus: 14, percentage: 100 } },
      retryBudget: { percent: 25, minRetryConcurrency: 3 },
    });
  });

  it("fills Envoy's defaults: 1024 for absent limits, unlimited requests per connection for 0", () => {
    const { settings } = compileTrafficPolicySpec(
      policy("p", { ...toService(), circuitBreaker: { maxRequestsPerConnection: 0 }, healthCheck: { passive: {} } }),
    );
    expect(settings.circuitBreaker).toEqual({ maxConnections: 1024, maxPendingRequests: 1024, maxParallelRequests: 1024 });
    expect(settings.outlierDetection).toEqual({
      consecutive5xxErrors: 5,
      consecutiveGatewayErrors: 0,
      intervalMs: 3000,
      baseEjectionTimeMs: 30_000,
      maxEjectionPercent: 10,
    });
  });

  it.each([
    [{ ...toService(), circuitBreaker: { maxConnection: 1 } }, TrafficPolicyErrorCode.unknownField, "spec.circuitBreaker.maxConnection"],
    [{ ...toService(), circuitBreaker: { maxConnections: -1 } }, TrafficPolicyErrorCode.outOfRange, "spec.circuitBreaker.maxConnections"],
    [{ ...toService(), circuitBreaker: { maxConnections: "10" } }, TrafficPolicyErrorCode.malformed, "spec.circuitBreaker.maxConnections"],
    [{ ...toService(), healthCheck: { passive: { interval: "3 seconds" } } }, TrafficPolicyErrorCode.invalidDuration, "spec.healthCheck.passive.interval"],
    [
      { ...toService(), healthCheck: { passive: { baseEjectionTime: "0s" } } },
      TrafficPolicyErrorCode.invalidDuration,
      "spec.healthCheck.passive.baseEjectionTime",
    ],
    [
      { ...toService(), healthCheck: { passive: { maxEjectionPercent: 101 } } },
      TrafficPolicyErrorCode.outOfRange,
      "spec.healthCheck.passive.maxEjectionPercent",
    ],
    [{ ...toService(), healthCheck: { active: { type: "HTTP" } } }, TrafficPolicyErrorCode.unsupportedValue, "spec.healthCheck.active"],
    [{ ...toService(), loadBalancer: { type: "ConsistentHash" } }, TrafficPolicyErrorCode.unsupportedValue, "spec.loadBalancer.type"],
    [{ ...toService(), faultInjection: {} }, TrafficPolicyErrorCode.malformed, "spec.faultInjection"],
    [{ ...toService(), faultInjection: { abort: { httpStatus: 600 } } }, TrafficPolicyErrorCode.outOfRange, "spec.faultInjection.abort.httpStatus"],
    [{ ...toService(), faultInjection: { abort: { httpStatus: 503, grpcStatus: 14 } } }, TrafficPolicyErrorCode.malformed, "spec.faultInjection.abort"],
    [{ ...toService(), faultInjection: { abort: { grpcStatus: 17 } } }, TrafficPolicyErrorCode.outOfRange, "spec.faultInjection.abort.grpcStatus"],
    [{ ...toService(), faultInjection: { delay: { percentage: 5 } } }, TrafficPolicyErrorCode.malformed, "spec.faultInjection.delay.fixedDelay"],
    [
      { ...toService(), faultInjection: { delay: { fixedDelay: "1s", percentage: 150 } } },
      TrafficPolicyErrorCode.outOfRange,
      "spec.faultInjection.delay.percentage",
    ],
    [{ ...toService(), retry: { numRetries: 3 } }, TrafficPolicyErrorCode.unsupportedValue, "spec.retry.numRetries"],
    [{}, TrafficPolicyErrorCode.targetRef, "spec.targetRefs"],
    [{ targetRefs: [{ group: "", kind: "Gateway", name: "w" }] }, TrafficPolicyErrorCode.targetRef, "spec.targetRefs[0].kind"],
    [{ targetRefs: [{ group: "", kind: "HTTPRoute", name: "r" }] }, TrafficPolicyErrorCode.targetRef, "spec.targetRefs[0].group"],
    [{ targetRefs: [{ group: "", kind: "Service", name: "r", namespace: "other" }] }, TrafficPolicyErrorCode.targetRef, "spec.targetRefs[0].namespace"],
    [
      { targetRefs: [{ group: "", kind: "Service", name: "r", sectionName: "http" }] },
      TrafficPolicyErrorCode.unsupportedValue,
      "spec.targetRefs[0].sectionName",
    ],
  ])("refuses %j with its code and field path", (spec, code, path) => {
    expect(errorOf(spec)).toEqual({ code, path });
  });

  it("an Invalid policy applies nowhere and says so on every target it names", () => {
    const { policies, results } = compileTrafficPolicies(
      [policy("p", { ...toService(), circuitBreaker: { maxConnections: 1 }, loadBalancer: { type: "Maglev" } })],
      everything,
    );
    expect(policies).toEqual([]);
    expect(results[0]!.ancestors).toEqual([
      {
        ancestorRef: { group: "", kind: "Service", name: "reviews", namespace: "shop" },
        controllerName: WAYPOINT_CONTROLLER_NAME,
        conditions: [expect.objectContaining({ type: "Accepted", status: "False", reason: "Invalid", observedGeneration: 2 })],
      },
    ]);
    expect(results[0]!.ancestors[0]!.conditions[0]!.message).toMatch(/^spec\.loadBalancer\.type: "Maglev" is not supported/);
  });

  it("an Invalid policy whose targets cannot be read reports on its Namespace", () => {
    const { results } = compileTrafficPolicies([policy("p", { targetRefs: "reviews" })], everything);
    expect(results[0]!.ancestors[0]!.ancestorRef).toEqual({ group: "", kind: "Namespace", name: "shop", namespace: "shop" });
  });
});

describe("BackendTrafficPolicy attachment (GEP-713)", () => {
  it("the oldest policy wins a target; the younger is Conflicted there and keeps its other targets", () => {
    const young = policy(
      "young",
      { targetRefs: [...toService().targetRefs, { group: "gateway.networking.k8s.io", kind: "HTTPRoute", name: "r" }] },
      "2026-02-01T00:00:00Z",
    );
    const old = policy("old", toService(), "2026-01-01T00:00:00Z");
    const { policies, results } = compileTrafficPolicies([young, old], everything);
    expect(policies.map((p) => [p.name, p.targets])).toEqual([
      ["old", [{ kind: "Service", name: "reviews" }]],
      ["young", [{ kind: "HTTPRoute", name: "r" }]],
    ]);
    const [youngStatus, oldStatus] = results;
    expect(youngStatus!.ancestors.map((a) => a.conditions[0]!.reason)).toEqual(["Conflicted", "Accepted"]);
    expect(youngStatus!.ancestors[0]!.conditions[0]!.message).toContain("shop/old is older");
    expect(youngStatus!.ancestors[1]!.ancestorRef).toEqual({ group: "gateway.networking.k8s.io", kind: "HTTPRoute", name: "r", namespace: "shop" });
    expect(oldStatus!.ancestors.map((a) => a.conditions[0]!.reason)).toEqual(["Accepted"]);
  });

  it("same creation time: namespace/name alphabetically", () => {
    const { policies } = compileTrafficPolicies([policy("b", toService()), policy("a", toService())], everything);
    expect(policies.map((p) => p.name)).toEqual(["a"]);
  });

  it("a missing target is TargetNotFound and claims nothing; an Invalid policy claims nothing either", () => {
    const exists = (_ns: string, t: { name: string }) => t.name !== "gone";
    const { policies, results } = compileTrafficPolicies(
      [
        policy("invalid", { ...toService(), loadBalancer: { type: "x" } }, "2025-01-01T00:00:00Z"),
        policy("missing", toService("gone"), "2025-06-01T00:00:00Z"),
        policy("valid", toService(), "2026-01-01T00:00:00Z"),
      ],
      exists,
    );
    expect(policies.map((p) => p.name)).toEqual(["valid"]);
    expect(results[1]!.ancestors[0]!.conditions[0]).toMatchObject({ status: "False", reason: "TargetNotFound" });
  });
});

describe("BackendTrafficPolicy status", () => {
  it("keeps other controllers' ancestors and a condition's transition time while its status holds", () => {
    const obj = policy("p", toService());
    const [result] = compileTrafficPolicies([obj], everything).results;
    const first = nextPolicyAncestors(obj, result!.ancestors, "T1")!;
    expect(first[0]!.conditions[0]!.lastTransitionTime).toBe("T1");
    const other = { ancestorRef: { group: "", kind: "Service", name: "reviews", namespace: "shop" }, controllerName: "example.com/other", conditions: [] };
    const written = { ...obj, status: { ancestors: [other, ...first] } };
    expect(nextPolicyAncestors(written, result!.ancestors, "T2")).toBeUndefined();
    const conflicted = result!.ancestors.map((a) => ({ ...a, conditions: [{ ...a.conditions[0]!, status: "False" as const, reason: "Conflicted" as const }] }));
    const next = nextPolicyAncestors(written, conflicted, "T3")!;
    expect(next[0]).toEqual(other);
    expect(next[1]!.conditions[0]!.lastTransitionTime).toBe("T3");
  });
});
