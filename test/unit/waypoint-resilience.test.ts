// The waypoint's resilience parts with a fake clock and seeded randomness: faults, circuit breaking, outlier detection, load balancing, retry budget, state across config versions.
import { describe, expect, it } from "vitest";
import type { CompiledTrafficPolicy, OutlierDetectionSettings } from "../../contract/traffic-policy.ts";
import {
  CircuitBreaker,
  FaultInjector,
  OutlierDetector,
  ResiliencePolicies,
  RetryBudget,
  createLoadBalancer,
  seededRandom,
} from "../../waypoint/resilience/index.ts";

function fakeClock(start = 1000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("FaultInjector", () => {
  it("aborts 50 % of 1,000 seeded requests, within ±5 %", () => {
    const faults = new FaultInjector({ abort: { httpStatus: 503, percentage: 50 } }, seededRandom(42));
    const aborted = Array.from({ length: 1000 }, () => faults.decide()).filter((d) => d.abort).length;
    expect(aborted).toBeGreaterThanOrEqual(450);
    expect(aborted).toBeLessThanOrEqual(550);
  });

  it("delays then aborts, drawing each independently, with Envoy's response flags", () => {
    const faults = new FaultInjector({ delay: { fixedDelayMs: 2000, percentage: 10 }, abort: { grpcStatus: 14, percentage: 20 } }, seededRandom(7));
    const decisions = Array.from({ length: 10_000 }, () => faults.decide());
    const delayed = decisions.filter((d) => d.delayMs === 2000).length;
    const both = decisions.filter((d) => d.delayMs && d.abort).length;
    expect(delayed / 10_000).toBeCloseTo(0.1, 1);
    expect(both / 10_000).toBeCloseTo(0.02, 1);
    expect(decisions.find((d) => d.delayMs && d.abort)).toEqual({ delayMs: 2000, abort: { grpcStatus: 14 }, responseFlags: ["DI", "FI"] });
  });

  it("100 % always and 0 % never, whatever the generator says", () => {
    expect(new FaultInjector({ abort: { httpStatus: 500, percentage: 100 } }, () => 0.9999999).decide().abort).toEqual({ httpStatus: 500 });
    expect(new FaultInjector({ abort: { httpStatus: 500, percentage: 0 } }, () => 0).decide()).toEqual({ responseFlags: [] });
  });
});

describe("CircuitBreaker", () => {
  it("overflows at maxPendingRequests with UO, and admits again after a release", () => {
    const breaker = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 2, maxParallelRequests: 10 });
    const first = breaker.tryAcquire("pending");
    const second = breaker.tryAcquire("pending");
    expect(first.admitted && second.admitted).toBe(true);
    expect(breaker.tryAcquire("pending")).toEqual({ admitted: false, overflow: "maxPendingRequests", responseFlag: "UO" });
    if (first.admitted) {
      first.release();
      first.release(); // idempotent: a double release must not open a second slot
    }
    expect(breaker.counts().pending).toBe(1);
    expect(breaker.tryAcquire("pending").admitted).toBe(true);
    expect(breaker.tryAcquire("pending").admitted).toBe(false);
  });

  it("counts connections and parallel requests against their own limits; limits change under live counts", () => {
    const breaker = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1, maxParallelRequests: 2, maxRequestsPerConnection: 3 });
    expect(breaker.tryAcquire("connection").admitted).toBe(true);
    expect(breaker.tryAcquire("connection")).toMatchObject({ admitted: false, overflow: "maxConnections" });
    const r1 = breaker.tryAcquire("request");
    breaker.tryAcquire("request");
    expect(breaker.tryAcquire("request")).toMatchObject({ admitted: false, overflow: "maxParallelRequests" });
    breaker.setLimits({ maxConnections: 1, maxPendingRequests: 1, maxParallelRequests: 1 });
    if (r1.admitted) r1.release();
    expect(breaker.counts().request).toBe(1);
    expect(breaker.tryAcquire("request").admitted).toBe(false);
    expect(breaker.connectionSpent(1000)).toBe(false);
  });

  it("maxRequestsPerConnection closes a connection after that many requests", () => {
    const breaker = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1, maxParallelRequests: 1, maxRequestsPerConnection: 3 });
    expect([2, 3].map((n) => breaker.connectionSpent(n))).toEqual([false, true]);
  });
});

const outlier = (over: Partial<OutlierDetectionSettings> = {}): OutlierDetectionSettings => ({
  consecutive5xxErrors: 3,
  consecutiveGatewayErrors: 0,
  intervalMs: 1000,
  baseEjectionTimeMs: 30_000,
  maxEjectionPercent: 100,
  ...over,
});
const endpoints = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];

describe("OutlierDetector", () => {
  it("ejects after consecutive 5xx for baseEjectionTime, then returns", () => {
    const clock = fakeClock();
    const od = new OutlierDetector(outlier(), clock.now);
    od.available(endpoints);
    expect(od.report("10.0.0.1:80", { status: 500 })).toBeUndefined();
    expect(od.report("10.0.0.1:80", { status: 500 })).toBeUndefined();
    expect(od.report("10.0.0.1:80", { status: 500 })).toBe("ejected");
    expect(od.available(endpoints)).toEqual(endpoints.slice(1));
    clock.advance(29_999);
    expect(od.isEjected("10.0.0.1:80")).toBe(true);
    clock.advance(1);
    expect(od.available(endpoints)).toEqual(endpoints);
  });

  it("a success in between resets the count", () => {
    const od = new OutlierDetector(outlier(), fakeClock().now);
    od.available(endpoints);
    for (const status of [500, 500, 200, 500, 500]) expect(od.report("10.0.0.1:80", { status })).toBeUndefined();
  });

  it("the second ejection lasts twice as long; healthy intervals decay the multiplier", () => {
    const clock = fakeClock();
    const od = new OutlierDetector(outlier({ consecutive5xxErrors: 1 }), clock.now);
    od.available(endpoints);
    od.report("10.0.0.1:80", { status: 503 });
    clock.advance(30_000);
    expect(od.report("10.0.0.1:80", { status: 503 })).toBe("ejected");
    clock.advance(59_999);
    expect(od.isEjected("10.0.0.1:80")).toBe(true);
    clock.advance(1);
    expect(od.isEjected("10.0.0.1:80")).toBe(false);
    clock.advance(2000); // two healthy intervals: the multiplier is back to 0
    od.report("10.0.0.1:80", { status: 503 });
    clock.advance(30_000);
    expect(od.isEjected("10.0.0.1:80")).toBe(false);
  });

  it("gateway errors: 502/503/504 and connect failures count, a 500 resets that count", () => {
    const od = new OutlierDetector(outlier({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 }), fakeClock().now);
    od.available(endpoints);
    expect(od.report("10.0.0.1:80", { status: 502 })).toBeUndefined();
    expect(od.report("10.0.0.1:80", { status: 500 })).toBeUndefined();
    expect(od.report("10.0.0.1:80", { connectFailure: true })).toBeUndefined();
    expect(od.report("10.0.0.1:80", { status: 504 })).toBe("ejected");
  });

  it("never ejects more than maxEjectionPercent of the endpoints", () => {
    const od = new OutlierDetector(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 50 }), fakeClock().now);
    od.available(endpoints);
    const results = endpoints.map((e) => od.report(e, { status: 500 }));
    expect(results).toEqual(["ejected", "ejected", undefined, undefined]);
    expect(od.ejected()).toHaveLength(2);
    const small = new OutlierDetector(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 10 }), fakeClock().now);
    small.available(endpoints);
    expect(small.report(endpoints[0]!, { status: 500 })).toBeUndefined();
  });

  it("offers every endpoint again when all are ejected rather than none", () => {
    const od = new OutlierDetector(outlier({ consecutive5xxErrors: 1 }), fakeClock().now);
    od.available(endpoints.slice(0, 1));
    od.report(endpoints[0]!, { status: 500 });
    expect(od.available(endpoints.slice(0, 1))).toEqual(endpoints.slice(0, 1));
  });
});

describe("LoadBalancer", () => {
  it("RoundRobin cycles through every endpoint", () => {
    const lb = createLoadBalancer("RoundRobin", seededRandom(1));
    const picks = Array.from({ length: 8 }, () => lb.pick(endpoints));
    expect(new Set(picks.slice(0, 4))).toEqual(new Set(endpoints));
    expect(picks.slice(4)).toEqual(picks.slice(0, 4));
    expect(lb.pick([])).toBeUndefined();
  });

  it("LeastRequest picks the less loaded of two random endpoints", () => {
    const lb = createLoadBalancer("LeastRequest", seededRandom(3));
    const busy = [lb.begin(endpoints[0]!), lb.begin(endpoints[0]!), lb.begin(endpoints[1]!)];
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const e = lb.pick(endpoints)!;
      counts.set(e, (counts.get(e) ?? 0) + 1);
    }
    // endpoint 0 wins only against nobody: with two distinct draws it always meets a less loaded one.
    expect(counts.get(endpoints[0]!) ?? 0).toBe(0);
    expect(counts.get(endpoints[2]!)!).toBeGreaterThan(counts.get(endpoints[1]!)!);
    busy.forEach((release) => release());
    expect(lb.active(endpoints[0]!)).toBe(0);
  });

  it("Random spreads evenly over seeded draws", () => {
    const lb = createLoadBalancer("Random", seededRandom(9));
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const e = lb.pick(endpoints)!;
      counts.set(e, (counts.get(e) ?? 0) + 1);
    }
    for (const e of endpoints) expect(Math.abs(counts.get(e)! - 1000)).toBeLessThan(100);
  });
});

describe("RetryBudget", () => {
  it("allows minRetryConcurrency retries, then percent of active requests", () => {
    const budget = new RetryBudget({ percent: 20, minRetryConcurrency: 2 });
    const requests = Array.from({ length: 20 }, () => budget.requestStarted());
    expect(budget.allowed()).toBe(4);
    const retries = Array.from({ length: 5 }, () => budget.tryAcquireRetry());
    expect(retries.map((r) => r !== undefined)).toEqual([true, true, true, true, false]);
    requests.slice(0, 15).forEach((release) => release());
    expect(budget.allowed()).toBe(2);
    retries[0]!();
    retries[1]!();
    expect(budget.tryAcquireRetry()).toBeUndefined();
    retries[2]!();
    expect(budget.tryAcquireRetry()).toBeDefined();
  });
});

const policy = (over: Partial<CompiledTrafficPolicy> = {}): CompiledTrafficPolicy => ({
  namespace: "shop",
  name: "reviews",
  creationTimestamp: "2026-01-01T00:00:00Z",
  targets: [{ kind: "Service", name: "reviews" }],
  outlierDetection: outlier({ consecutive5xxErrors: 1 }),
  circuitBreaker: { maxConnections: 10, maxPendingRequests: 10, maxParallelRequests: 10 },
  ...over,
});

describe("ResiliencePolicies", () => {
  it("a route's policy wins over the Service's; no policy, nothing", () => {
    const routePolicy = policy({ name: "route", targets: [{ kind: "HTTPRoute", name: "r" }], loadBalancer: { type: "Random" } });
    const policies = new ResiliencePolicies([policy(), routePolicy]);
    expect(policies.forService("shop", "reviews")!.policy).toBe("shop/reviews");
    expect(policies.forService("shop", "reviews", { kind: "HTTPRoute", namespace: "shop", name: "r" })!.policy).toBe("shop/route");
    expect(policies.forService("shop", "reviews", { kind: "GRPCRoute", namespace: "shop", name: "r" })!.policy).toBe("shop/reviews");
    expect(policies.forService("shop", "ratings")).toBeUndefined();
  });

  it("a new config version keeps ejections and breaker counts, also when the policy changes", () => {
    const clock = fakeClock();
    const policies = new ResiliencePolicies([policy()], { clock: clock.now });
    const before = policies.forService("shop", "reviews")!;
    before.outlier!.available(endpoints);
    before.outlier!.report(endpoints[0]!, { status: 503 });
    const slot = before.breaker!.tryAcquire("request");

    policies.update([policy()]);
    const same = policies.forService("shop", "reviews")!;
    expect(same.outlier).toBe(before.outlier);
    expect(same.outlier!.isEjected(endpoints[0]!)).toBe(true);

    policies.update([policy({ circuitBreaker: { maxConnections: 1, maxPendingRequests: 1, maxParallelRequests: 1 }, loadBalancer: { type: "LeastRequest" } })]);
    const changed = policies.forService("shop", "reviews")!;
    expect(changed.outlier!.isEjected(endpoints[0]!)).toBe(true);
    expect(changed.breaker!.counts().request).toBe(1);
    expect(changed.breaker!.tryAcquire("request").admitted).toBe(false);
    if (slot.admitted) slot.release();
    expect(changed.breaker!.tryAcquire("request").admitted).toBe(true);
    expect(changed.loadBalancer!.type).toBe("LeastRequest");
  });

  it("a policy removed takes its state with it", () => {
    const policies = new ResiliencePolicies([policy()], { clock: fakeClock().now });
    const first = policies.forService("shop", "reviews")!;
    policies.update([]);
    expect(policies.forService("shop", "reviews")).toBeUndefined();
    policies.update([policy()]);
    expect(policies.forService("shop", "reviews")!.outlier).not.toBe(first.outlier);
  });
});
