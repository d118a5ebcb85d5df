// Outlier detection (passive health checks) as Envoy's: endpoints that fail in a row are ejected for a while that grows with each ejection.
import type { OutlierDetectionSettings } from "../../contract/traffic-policy.ts";
import type { Clock } from "./sources.ts";

/** How one upstream exchange ended: a response status, or no response because the connection could not be made. */
export type UpstreamOutcome = { status: number } | { connectFailure: true };

/** Envoy's max_ejection_time default: an endpoint ejected many times is kept out at most this long (or baseEjectionTime, if longer). */
const MAX_EJECTION_MS = 300_000;

interface EndpointState {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Ejections so far: the next one lasts baseEjectionTime times this (plus one). Decays by one per healthy interval. */
  ejections: number;
  /** Set while ejected. */
  ejectedUntil?: number;
  /** Since when `ejections` has been decaying (the last return or decay step). */
  decayFrom: number;
}

const isGatewayError = (o: UpstreamOutcome): boolean => "connectFailure" in o || o.status === 502 || o.status === 503 || o.status === 504;
const is5xx = (o: UpstreamOutcome): boolean => "connectFailure" in o || (o.status >= 500 && o.status <= 599);

/**
 * One per Service; endpoints are `ip:port` keys. Choices (README): a connect failure counts as a gateway error and as
 * a 5xx (Envoy without split local-origin errors); an ejection happens at the failure that reaches the threshold, and
 * only while ejected endpoints stay within maxEjectionPercent of the endpoints last offered to `available`; an
 * endpoint returns as soon as its time is up (checked when asked, so no timer runs); if every endpoint is ejected,
 * all are offered again, as Envoy's panic mode would, rather than failing every request.
 */
export class OutlierDetector {
  #settings: OutlierDetectionSettings;
  readonly #clock: Clock;
  readonly #endpoints = new Map<string, EndpointState>();
  #total = 0;

  constructor(settings: OutlierDetectionSettings, clock: Clock) {
    this.#settings = settings;
    this.#clock = clock;
  }

  setSettings(settings: OutlierDetectionSettings): void {
    this.#settings = settings;
  }

  /** The endpoints to balance over: those not ejected, or all of them when none is left. Also the set maxEjectionPercent counts against. */
  available(endpoints: readonly string[]): readonly string[] {
    this.#total = endpoints.length;
    // Endpoints of scaled-down pods would otherwise be remembered forever; pruned only when they clearly dominate.
    if (this.#endpoints.size > 2 * endpoints.length + 16) {
      const present = new Set(endpoints);
      for (const e of this.#endpoints.keys()) if (!present.has(e)) this.#endpoints.delete(e);
    }
    const now = this.#clock();
    const healthy = endpoints.filter((e) => !this.#ejectedAt(e, now));
    return healthy.length ? healthy : endpoints;
  }

  isEjected(endpoint: string): boolean {
    return this.#ejectedAt(endpoint, this.#clock());
  }

  /** Endpoints ejected now. */
  ejected(): string[] {
    const now = this.#clock();
    return [...this.#endpoints.keys()].filter((e) => this.#ejectedAt(e, now));
  }

  /** Records one exchange with `endpoint`; "ejected" when it ejected the endpoint. */
  report(endpoint: string, outcome: UpstreamOutcome): "ejected" | undefined {
    const now = this.#clock();
    if (this.#ejectedAt(endpoint, now)) return undefined;
    const state = this.#state(endpoint, now);
    if (!is5xx(outcome)) {
      state.consecutive5xx = 0;
      state.consecutiveGateway = 0;
      return undefined;
    }
    state.consecutive5xx++;
    state.consecutiveGateway = isGatewayError(outcome) ? state.consecutiveGateway + 1 : 0;
    const { consecutive5xxErrors, consecutiveGatewayErrors } = this.#settings;
    const tripped =
      (consecutive5xxErrors > 0 && state.consecutive5xx >= consecutive5xxErrors) ||
      (consecutiveGatewayErrors > 0 && state.consecutiveGateway >= consecutiveGatewayErrors);
    if (!tripped) return undefined;
    // Counters start again whether or not the ejection is allowed, as Envoy's do after it is notified.
    state.consecutive5xx = 0;
    state.consecutiveGateway = 0;
    if (!this.#mayEject(now)) return undefined;
    state.ejections++;
    const { baseEjectionTimeMs } = this.#settings;
    state.ejectedUntil = now + Math.min(baseEjectionTimeMs * state.ejections, Math.max(MAX_EJECTION_MS, baseEjectionTimeMs));
    return "ejected";
  }

  /** Never more than maxEjectionPercent of the endpoints: with the default 10 %, a Service needs ten endpoints for one ejection. */
  #mayEject(now: number): boolean {
    const total = Math.max(this.#total, 1);
    let ejected = 0;
    for (const e of this.#endpoints.keys()) if (this.#ejectedAt(e, now)) ejected++;
    return (100 * (ejected + 1)) / total <= this.#settings.maxEjectionPercent;
  }

  #state(endpoint: string, now: number): EndpointState {
    let s = this.#endpoints.get(endpoint);
    if (!s) {
      s = { consecutive5xx: 0, consecutiveGateway: 0, ejections: 0, decayFrom: now };
      this.#endpoints.set(endpoint, s);
    }
    return s;
  }

  /** Whether ejected at `now`; returns an endpoint whose time is up, and lets a healthy endpoint's ejection count decay. */
  #ejectedAt(endpoint: string, now: number): boolean {
    const s = this.#endpoints.get(endpoint);
    if (!s) return false;
    if (s.ejectedUntil !== undefined) {
      if (now < s.ejectedUntil) return true;
      s.decayFrom = s.ejectedUntil;
      s.ejectedUntil = undefined;
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
    }
    const steps = Math.floor((now - s.decayFrom) / this.#settings.intervalMs);
    if (steps > 0 && s.ejections > 0) {
      s.ejections = Math.max(0, s.ejections - steps);
      s.decayFrom += steps * this.#settings.intervalMs;
    } else if (s.ejections === 0) s.decayFrom = now;
    return false;
  }
}
