// Circuit breaking as Envoy's cluster thresholds: counts of connections, pending and in-flight requests for one Service, and a refusal past each limit.
import type { CircuitBreakerLimits } from "../../contract/traffic-policy.ts";

/** What a slot counts: an open upstream connection, a request waiting for one, a request in flight. */
export type BreakerSlot = "connection" | "pending" | "request";
export type BreakerOverflow = "maxConnections" | "maxPendingRequests" | "maxParallelRequests";

/**
 * A slot taken, or why not. On `overflow` the caller answers 503 with response flag UO (upstream overflow), as Envoy
 * does for pending and request overflow; a refused connection means "queue the request as pending" instead.
 */
export type Admission = { admitted: true; release: () => void } | { admitted: false; overflow: BreakerOverflow; responseFlag: "UO" };

const LIMIT_OF: Record<BreakerSlot, BreakerOverflow> = { connection: "maxConnections", pending: "maxPendingRequests", request: "maxParallelRequests" };

/**
 * One per Service (Envoy's thresholds are per cluster, over all its endpoints). Limits can change under live traffic
 * (`setLimits`): counts stay, so slots taken before are released against the same counters.
 */
export class CircuitBreaker {
  #limits: CircuitBreakerLimits;
  readonly #counts: Record<BreakerSlot, number> = { connection: 0, pending: 0, request: 0 };

  constructor(limits: CircuitBreakerLimits) {
    this.#limits = limits;
  }

  get limits(): CircuitBreakerLimits {
    return this.#limits;
  }

  setLimits(limits: CircuitBreakerLimits): void {
    this.#limits = limits;
  }

  counts(): Readonly<Record<BreakerSlot, number>> {
    return { ...this.#counts };
  }

  /** Takes a slot when the count is under its limit; `release` is idempotent, so a double release cannot open a hole. */
  tryAcquire(slot: BreakerSlot): Admission {
    const limit = LIMIT_OF[slot];
    if (this.#counts[slot] >= this.#limits[limit]) return { admitted: false, overflow: limit, responseFlag: "UO" };
    this.#counts[slot]++;
    let released = false;
    return {
      admitted: true,
      release: () => {
        if (released) return;
        released = true;
        this.#counts[slot]--;
      },
    };
  }

  /** Whether a connection that has carried `served` requests must close (maxRequestsPerConnection; absent: never). */
  connectionSpent(served: number): boolean {
    const max = this.#limits.maxRequestsPerConnection;
    return max !== undefined && served >= max;
  }
}
