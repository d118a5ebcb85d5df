// Fault injection: per request, whether to delay it and whether to answer it with an error instead of forwarding it.
import type { FaultInjectionSettings } from "../../contract/traffic-policy.ts";
import type { Random } from "./sources.ts";

/** What to do to one request, in this order: wait `delayMs`, then answer `abort` instead of forwarding. */
export interface FaultDecision {
  delayMs?: number;
  /** httpStatus: answer with that status; grpcStatus: answer HTTP 200 with that `grpc-status` (as Envoy does). */
  abort?: { httpStatus: number } | { grpcStatus: number };
  /** Envoy's response flags for the access log and `response_flags`: DI (delayed), FI (aborted). */
  responseFlags: Array<"DI" | "FI">;
}

const NONE: FaultDecision = { responseFlags: [] };

/**
 * Each fault is drawn independently, as Envoy's fault filter does: with delay 10 % and abort 10 %, 1 % of requests are
 * delayed and then aborted. Stateless apart from the generator.
 */
export class FaultInjector {
  readonly #settings: FaultInjectionSettings;
  readonly #random: Random;

  constructor(settings: FaultInjectionSettings, random: Random = Math.random) {
    this.#settings = settings;
    this.#random = random;
  }

  decide(): FaultDecision {
    const { delay, abort } = this.#settings;
    const delayed = delay !== undefined && this.#hit(delay.percentage);
    const aborted = abort !== undefined && this.#hit(abort.percentage);
    if (!delayed && !aborted) return NONE;
    const out: FaultDecision = { responseFlags: [] };
    if (delayed) {
      out.delayMs = delay.fixedDelayMs;
      out.responseFlags.push("DI");
    }
    if (aborted) {
      out.abort = abort.grpcStatus !== undefined ? { grpcStatus: abort.grpcStatus } : { httpStatus: abort.httpStatus ?? 503 };
      out.responseFlags.push("FI");
    }
    return out;
  }

  /** 100 always and 0 never hit, whatever the generator returns. */
  #hit(percentage: number): boolean {
    return percentage >= 100 || (percentage > 0 && this.#random() * 100 < percentage);
  }
}
