// Sends one request to a backend with the route's resilience: per-attempt and whole-request timeouts, retries with backoff.
import { setTimeout as sleep } from "node:timers/promises";
import type { RouteRetry, RouteTimeouts } from "../../contract/routes.ts";
import { WaypointError, WaypointErrorCode } from "./errors.ts";
import type { ResponseFlag } from "./flags.ts";
import { type Endpoint, UpstreamConnectError, type UpstreamPool, type UpstreamRequest, type UpstreamResponse } from "./upstream.ts";

/** Istio's defaults when a route asks for retries without saying how many or how long to wait. */
export const DEFAULT_RETRY_ATTEMPTS = 2;
export const DEFAULT_RETRY_BACKOFF_MS = 25;

export interface ForwardResult {
  /** The answer to give the client, or the error that replaces it. */
  outcome: { response: UpstreamResponse } | { error: WaypointError };
  /** The endpoint of the last attempt. */
  endpoint: Endpoint | undefined;
  attempts: number;
  /** Envoy's flags for how the attempts ended: UH, UF, UC or UT for the last failure, URX when retries ran out. */
  flags: ResponseFlag[];
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
/** How one attempt ended, as outlier detection counts it: a backend's status, or no connection at all. */
export type AttemptOutcome = { status: number } | { connectFailure: true };

export async function forward(opts: {
  upstream: UpstreamPool;
  pick: () => Endpoint | WaypointError;
  version: "http1" | "http2";
  request: UpstreamRequest;
  retry: RouteRetry | undefined;
  timeouts: RouteTimeouts | undefined;
  random: () => number;
  /** Aborted when the client goes away: nothing is left to answer, so the attempt stops and no retry follows. */
  cancel?: AbortSignal;
  /** Told how each attempt ended, for passive outlier detection. */
  observe?(endpoint: Endpoint, outcome: AttemptOutcome): void;
  /**
   * Asked before each retry (a retry budget): a release to call when the retry has ended, or undefined to refuse it,
   * and then the last answer stands.
   */
  retryAllowed?(): (() => void) | undefined;
}): Promise<ForwardResult> {
  const { retry, timeouts } = opts;
  const retries = retry ? (retry.attempts ?? DEFAULT_RETRY_ATTEMPTS) : 0;
  const whole = timeouts?.requestMs ? AbortSignal.timeout(timeouts.requestMs) : undefined;
  let endpoint: Endpoint | undefined;
  /** The retry budget's slot of the retry under way, given back when that attempt has an answer. */
  let releaseRetry: (() => void) | undefined;
  // A retriable answer on the last allowed attempt: Envoy flags it URX whatever the answer was.
  const exhausted = (attempt: number, flags: ResponseFlag[]): ResponseFlag[] => (retries > 0 && attempt >= retries ? [...flags, "URX"] : flags);
  for (let attempt = 0; ; attempt++) {
    const picked = opts.pick();
    if (picked instanceof WaypointError) return { outcome: { error: picked }, endpoint, attempts: attempt, flags: ["UH"] };
    endpoint = picked;
    const perTry = timeouts?.backendRequestMs ? AbortSignal.timeout(timeouts.backendRequestMs) : undefined;
    const signals = [whole, perTry, opts.cancel].filter((s) => s !== undefined);
    // One signal is used as it is: combining signals has a cost on every request.
    const signal = signals.length > 1 ? AbortSignal.any(signals) : (signals[0] ?? new AbortController().signal);
    let failure: WaypointError;
    try {
      const response = await opts.upstream.send(endpoint, opts.version, opts.request, signal).finally(() => releaseRetry?.());
      opts.observe?.(endpoint, { status: response.status });
      const retriable = retry?.codes.includes(response.status) ?? false;
      if (attempt >= retries || !retriable) return { outcome: { response }, endpoint, attempts: attempt + 1, flags: retriable ? exhausted(attempt, []) : [] };
      releaseRetry = opts.retryAllowed ? opts.retryAllowed() : () => {};
      // The budget is spent: this answer stands, as Envoy's does.
      if (!releaseRetry) return { outcome: { response }, endpoint, attempts: attempt + 1, flags: [] };
      // Drained, so the keep-alive connection under it can carry the retry or the next request.
      response.body.resume();
      failure = new WaypointError(WaypointErrorCode.upstream, 503, `backend answered ${response.status}`);
    } catch (err) {
      // The client's own leaving is no upstream failure: its request reports DC alone, as Envoy's does.
      if (opts.cancel?.aborted)
        return {
          outcome: { error: new WaypointError(WaypointErrorCode.upstream, 503, "the client went away", { cause: err }) },
          endpoint,
          attempts: attempt + 1,
          flags: [],
        };
      failure = whole?.aborted
        ? new WaypointError(WaypointErrorCode.timeout, 504, `no response within the route's request timeout of ${timeouts?.requestMs} ms`, { cause: err })
        : perTry?.aborted
          ? new WaypointError(WaypointErrorCode.timeout, 504, `no response within the backend request timeout of ${timeouts?.backendRequestMs} ms`, {
              cause: err,
            })
          : new WaypointError(WaypointErrorCode.upstream, 503, `${endpoint.ip}:${endpoint.port}: ${(err as Error).message}`, { cause: err });
      // Envoy's UC is a connection lost after it was made; one never made is UF.
      const flag: ResponseFlag = whole?.aborted || perTry?.aborted ? "UT" : err instanceof UpstreamConnectError ? "UF" : "UC";
      opts.observe?.(endpoint, flag === "UF" ? { connectFailure: true } : { status: failure.status });
      if (whole?.aborted) return { outcome: { error: failure }, endpoint, attempts: attempt + 1, flags: [flag] };
      if (attempt >= retries) return { outcome: { error: failure }, endpoint, attempts: attempt + 1, flags: exhausted(attempt, [flag]) };
      releaseRetry = opts.retryAllowed ? opts.retryAllowed() : () => {};
      if (!releaseRetry) return { outcome: { error: failure }, endpoint, attempts: attempt + 1, flags: [flag] };
    }
    await sleep(backoffMs(retry?.backoffMs ?? DEFAULT_RETRY_BACKOFF_MS, attempt + 1, opts.random));
  }
}
