// Endpoint choice per request: round robin, least request (two random choices, as Envoy), or random.
import type { LoadBalancerType } from "../../contract/traffic-policy.ts";
import type { Random } from "./sources.ts";

/**
 * Picks among endpoints (`ip:port` keys) already cleared by outlier detection. `begin` counts a request as active on
 * the endpoint until its release; only LeastRequest reads the counts, but every type keeps them so callers need not care.
 */
export interface LoadBalancer {
  readonly type: LoadBalancerType;
  /** undefined only for an empty list. */
  pick(endpoints: readonly string[]): string | undefined;
  begin(endpoint: string): () => void;
  active(endpoint: string): number;
}

abstract class Balancer implements LoadBalancer {
  abstract readonly type: LoadBalancerType;
  protected readonly random: Random;
  readonly #active = new Map<string, number>();

  constructor(random: Random) {
    this.random = random;
  }

  abstract pick(endpoints: readonly string[]): string | undefined;

  begin(endpoint: string): () => void {
    this.#active.set(endpoint, this.active(endpoint) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = this.active(endpoint) - 1;
      if (n > 0) this.#active.set(endpoint, n);
      else this.#active.delete(endpoint);
    };
  }

  active(endpoint: string): number {
    return this.#active.get(endpoint) ?? 0;
  }

  protected index(n: number): number {
    return Math.min(n - 1, Math.floor(this.random() * n));
  }
}

/** Starts at a random position, so waypoint replicas that start together do not all send their first request to one pod. */
class RoundRobin extends Balancer {
  readonly type = "RoundRobin" as const;
  #next: number | undefined;

  pick(endpoints: readonly string[]): string | undefined {
    if (!endpoints.length) return undefined;
    this.#next ??= this.index(endpoints.length);
    const chosen = endpoints[this.#next % endpoints.length];
    this.#next = (this.#next + 1) % Number.MAX_SAFE_INTEGER;
    return chosen;
  }
}

/**
 * Envoy's LEAST_REQUEST with equal weights: two distinct endpoints drawn at random, the one with fewer active requests
 * wins (the first on a tie). Nearly as good as scanning every endpoint and, unlike a scan, no herd on one idle pod.
 */
class LeastRequest extends Balancer {
  readonly type = "LeastRequest" as const;

  pick(endpoints: readonly string[]): string | undefined {
    if (endpoints.length <= 1) return endpoints[0];
    const i = this.index(endpoints.length);
    const j = (i + 1 + this.index(endpoints.length - 1)) % endpoints.length;
    const a = endpoints[i]!;
    const b = endpoints[j]!;
    return this.active(b) < this.active(a) ? b : a;
  }
}

class RandomChoice extends Balancer {
  readonly type = "Random" as const;

  pick(endpoints: readonly string[]): string | undefined {
    return endpoints.length ? endpoints[this.index(endpoints.length)] : undefined;
  }
}

export function createLoadBalancer(type: LoadBalancerType, random: Random = Math.random): LoadBalancer {
  switch (type) {
    case "RoundRobin":
      return new RoundRobin(random);
    case "LeastRequest":
      return new LeastRequest(random);
    case "Random":
      return new RandomChoice(random);
  }
}
