// Envoy's retry budget: retries in flight may be a percentage of the requests in flight, never fewer than a floor, so retries cannot multiply an overload.
import type { RetryBudgetSettings } from "../../contract/traffic-policy.ts";

/**
 * One per Service. Every request counts while it is active (`requestStarted`); a retry may start only while retries
 * in flight stay under max(minRetryConcurrency, percent of active requests). Refused: the caller keeps the response
 * it has (Envoy counts upstream_rq_retry_overflow) rather than retrying.
 */
export class RetryBudget {
  #settings: RetryBudgetSettings;
  #active = 0;
  #retries = 0;

  constructor(settings: RetryBudgetSettings) {
    this.#settings = settings;
  }

  setSettings(settings: RetryBudgetSettings): void {
    this.#settings = settings;
  }

  /** Counts one request (its first attempt and its retries) as active until the returned release. */
  requestStarted(): () => void {
    this.#active++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#active--;
    };
  }

  /** How many retries may be in flight now. */
  allowed(): number {
    return Math.max(this.#settings.minRetryConcurrency, Math.floor((this.#settings.percent / 100) * this.#active));
  }

  /** A release for the retry while it runs, or undefined when the budget is spent. */
  tryAcquireRetry(): (() => void) | undefined {
    if (this.#retries >= this.allowed()) return undefined;
    this.#retries++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#retries--;
    };
  }
}
