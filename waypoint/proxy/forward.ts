// Sends one request to a backend with the route's resilience: per-attempt and whole-request timeouts, retries with backoff.
import { setTimeout as sleep } from "node:timers/promises";
import type { RouteRetry, RouteTimeouts } from "../../contract/routes.ts";
import { WaypointError, WaypointErrorCode } from "./errors.ts";
import type { Endpoint, UpstreamPool, UpstreamRequest, UpstreamResponse } from "./upstream.ts";

/** Istio's defaults when a route asks for retries without saying how many or how long to wait. */
export const DEFAULT_RETRY_ATTEMPTS = 2;
export const DEFAULT_RETRY_BACKOFF_MS = 25;

export interface ForwardResult {
  /** The answer to give the client, or the error that replaces it. */
  outcome: { response: UpstreamResponse } | { error: WaypointError };
  /** The endpoint of the last attempt. */
  endpoint: Endpoint | undefined;
  attempts: number;
}

/** Envoy's backoff: doubling from the base, capped at ten times it, with jitter so retrying clients spread out. */
export function backoffMs(base: number, retry: number, random: () => number): number {
  const ceiling = Math.min(base * 2 ** (retry - 1), base * 10);
  return ceiling / 2 + random() * (ceiling / 2);
}

/**
 * `pick` chooses an endpoint per attempt (a retry may land on another one). Without a retry policy nothing is sent
 * twice, since a streamed body cannot be replayed.
 */
export async function forward(opts: {
  upstream: UpstreamPool;
  pick: () => Endpoint | WaypointError;
  version: "http1" | "http2";
  request: UpstreamRequest;
  retry: RouteRetry | undefined;
  timeouts: RouteTimeouts | undefined;
  random: () => number;
}): Promise<ForwardResult> {
  const { retry, timeouts } = opts;
  const retries = retry ? (retry.attempts ?? DEFAULT_RETRY_ATTEMPTS) : 0;
  const whole = timeouts?.requestMs ? AbortSignal.timeout(timeouts.requestMs) : undefined;
  let endpoint: Endpoint | undefined;
  for (let attempt = 0; ; attempt++) {
    const picked = opts.pick();
    if (picked instanceof WaypointError) return { outcome: { error: picked }, endpoint, attempts: attempt };
    endpoint = picked;
    const perTry = timeouts?.backendRequestMs ? AbortSignal.timeout(timeouts.backendRequestMs) : undefined;
    const signals = [whole, perTry].filter((s) => s !== undefined);
    const signal = signals.length ? AbortSignal.any(signals) : new AbortController().signal;
    let failure: WaypointError;
    try {
      const response = await opts.upstream.send(endpoint, opts.version, opts.request, signal);
      if (attempt >= retries || !retry?.codes.includes(response.status)) return { outcome: { response }, endpoint, attempts: attempt + 1 };
      // Drained, so the keep-alive connection under it can carry the retry or the next request.
      response.body.resume();
      failure = new WaypointError(WaypointErrorCode.upstream, 503, `backend answered ${response.status}`);
    } catch (err) {
      failure = whole?.aborted
        ? new WaypointError(WaypointErrorCode.timeout, 504, `no response within the route's request timeout of ${timeouts?.requestMs} ms`, { cause: err })
        : perTry?.aborted
          ? new WaypointError(WaypointErrorCode.timeout, 504, `no response within the backend request timeout of ${timeouts?.backendRequestMs} ms`, {
              cause: err,
            })
          : new WaypointError(WaypointErrorCode.upstream, 503, `${endpoint.ip}:${endpoint.port}: ${(err as Error).message}`, { cause: err });
      if (whole?.aborted || attempt >= retries) return { outcome: { error: failure }, endpoint, attempts: attempt + 1 };
    }
    await sleep(backoffMs(retry?.backoffMs ?? DEFAULT_RETRY_BACKOFF_MS, attempt + 1, opts.random));
  }
}
