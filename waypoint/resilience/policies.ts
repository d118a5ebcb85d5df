// The waypoint's resilience per Service and route: the policy in effect and its live state (breaker counts, ejections), kept across config versions.
import { type CompiledTrafficPolicy, type TrafficPolicySettings, trafficPolicyKey as policyKey } from "../../contract/traffic-policy.ts";
import { CircuitBreaker } from "./circuit-breaker.ts";
import { FaultInjector } from "./fault-injector.ts";
import { type LoadBalancer, createLoadBalancer } from "./load-balancer.ts";
import { OutlierDetector } from "./outlier-detector.ts";
import { RetryBudget } from "./retry-budget.ts";
import { type Clock, type Random, monotonicClock } from "./sources.ts";

/** The route a request matched (contract/routes.ts RouteIdentity with its kind). */
export interface RouteRef {
  kind: "HTTPRoute" | "GRPCRoute";
  namespace: string;
  name: string;
}

/** What applies to requests sent to one Service; a part is absent when the policy does not set that section. */
export interface ServiceResilience {
  /** `namespace/name` of the BackendTrafficPolicy in effect (for logs and metrics). */
  policy: string;
  faults?: FaultInjector;
  breaker?: CircuitBreaker;
  outlier?: OutlierDetector;
  loadBalancer?: LoadBalancer;
  retryBudget?: RetryBudget;
}

export interface ResilienceOptions {
  clock?: Clock;
  random?: Random;
}

interface LiveState {
  view: ServiceResilience;
  /** The settings `view` was built from, serialized per section, to tell what a new version changed. */
  built: Record<keyof TrafficPolicySettings, string>;
}

const targetKey = (namespace: string, kind: string, name: string): string => `${namespace}/${kind}/${name}`;
const sectionKey = (settings: TrafficPolicySettings, section: keyof TrafficPolicySettings): string => JSON.stringify(settings[section] ?? null);
const SECTIONS: Array<keyof TrafficPolicySettings> = ["circuitBreaker", "outlierDetection", "loadBalancer", "faultInjection", "retryBudget"];

/**
 * Built from the `trafficpolicy` resources of a config version, then `update`d with each new version. State lives per
 * (policy, Service) and survives a new version whenever the policy still exists: a section whose settings did not
 * change keeps its object, one that changed is reconfigured in place (a breaker keeps its counts, outlier detection its
 * ejections), so a config push never lets an ejected endpoint back early or a breaker's counts go negative.
 */
export class ResiliencePolicies {
  readonly #clock: Clock;
  readonly #random: Random;
  #byTarget = new Map<string, CompiledTrafficPolicy>();
  readonly #live = new Map<string, LiveState>();

  constructor(policies: readonly CompiledTrafficPolicy[], options: ResilienceOptions = {}) {
    this.#clock = options.clock ?? monotonicClock;
    this.#random = options.random ?? Math.random;
    this.update(policies);
  }

  update(policies: readonly CompiledTrafficPolicy[]): void {
    const byTarget = new Map<string, CompiledTrafficPolicy>();
    // The controller already resolved conflicts; should two still claim one target, the older wins here too (GEP-713).
    const ordered = [...policies].sort((a, b) =>
      a.creationTimestamp !== b.creationTimestamp ? (a.creationTimestamp < b.creationTimestamp ? -1 : 1) : policyKey(a) < policyKey(b) ? -1 : 1,
    );
    for (const p of ordered)
      for (const t of p.targets) if (!byTarget.has(targetKey(p.namespace, t.kind, t.name))) byTarget.set(targetKey(p.namespace, t.kind, t.name), p);
    this.#byTarget = byTarget;
    const current = new Map(ordered.map((p) => [policyKey(p), p]));
    for (const [key, state] of this.#live) {
      const policy = current.get(key.slice(0, key.indexOf("|")));
      if (!policy) this.#live.delete(key);
      else this.#reconfigure(state, policy);
    }
  }

  /**
   * What applies to a request sent to Service `namespace/name` (the backend the route chose). A policy on the matched
   * route takes precedence over one on the Service: the more specific attachment wins whole, sections never merge.
   */
  forService(namespace: string, name: string, route?: RouteRef): ServiceResilience | undefined {
    const policy =
      (route && this.#byTarget.get(targetKey(route.namespace, route.kind, route.name))) ?? this.#byTarget.get(targetKey(namespace, "Service", name));
    if (!policy) return undefined;
    const key = `${policyKey(policy)}|${namespace}/${name}`;
    let state = this.#live.get(key);
    if (!state) {
      state = {
        view: { policy: policyKey(policy) },
        built: { circuitBreaker: "", outlierDetection: "", loadBalancer: "", faultInjection: "", retryBudget: "" },
      };
      this.#reconfigure(state, policy);
      this.#live.set(key, state);
    }
    return state.view;
  }

  #reconfigure(state: LiveState, policy: CompiledTrafficPolicy): void {
    const v = state.view;
    for (const section of SECTIONS) {
      const built = sectionKey(policy, section);
      if (state.built[section] === built) continue;
      state.built[section] = built;
      switch (section) {
        case "circuitBreaker":
          if (!policy.circuitBreaker) delete v.breaker;
          else if (v.breaker) v.breaker.setLimits(policy.circuitBreaker);
          else v.breaker = new CircuitBreaker(policy.circuitBreaker);
          break;
        case "outlierDetection":
          if (!policy.outlierDetection) delete v.outlier;
          else if (v.outlier) v.outlier.setSettings(policy.outlierDetection);
          else v.outlier = new OutlierDetector(policy.outlierDetection, this.#clock);
          break;
        case "loadBalancer":
          if (!policy.loadBalancer) delete v.loadBalancer;
          else if (v.loadBalancer?.type !== policy.loadBalancer.type) v.loadBalancer = createLoadBalancer(policy.loadBalancer.type, this.#random);
          break;
        case "faultInjection":
          if (!policy.faultInjection) delete v.faults;
          else v.faults = new FaultInjector(policy.faultInjection, this.#random);
          break;
        case "retryBudget":
          if (!policy.retryBudget) delete v.retryBudget;
          else if (v.retryBudget) v.retryBudget.setSettings(policy.retryBudget);
          else v.retryBudget = new RetryBudget(policy.retryBudget);
          break;
      }
    }
  }
}
