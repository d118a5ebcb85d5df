// Envoy's response flags for the waypoint's requests: one table, so fault injection and circuit breaking add theirs here.

/**
 * The flags the waypoint sets, keyed by Envoy's short name, in the order of Envoy's `ResponseFlag` enum: Envoy
 * prints several flags in that order (`UF,URX`), and dashboards and alerts written for Istio match those strings.
 */
export const RESPONSE_FLAGS = {
  UH: "no healthy upstream: the backend has no ready, captured endpoint",
  UT: "upstream request timeout: the route's request or backend request timeout passed (504)",
  UF: "upstream connection failure: the HBONE stream to the endpoint's agent could not be opened",
  UC: "upstream connection termination: the backend's connection ended before its response did",
  UO: "upstream overflow: a circuit breaker refused the request",
  NR: "no route: no rule of the attached route matched (404), or the matched rule has no usable backend (500)",
  DI: "delay injected by a fault policy",
  FI: "aborted by a fault policy",
  DC: "downstream connection termination: the client went away before the response was complete",
  URX: "retries exhausted: the last attempt's answer was retriable but no attempt was left",
  OM: "overload: the proxy was serving as many requests as its heap allows and refused this one (503)",
} as const;

export type ResponseFlag = keyof typeof RESPONSE_FLAGS;

const ORDER = Object.keys(RESPONSE_FLAGS) as ResponseFlag[];

/** The flags of one request, set as it goes; printed the way Envoy prints them, `-` when none. */
export class ResponseFlags {
  readonly #set = new Set<ResponseFlag>();

  constructor(flags: Iterable<ResponseFlag> = []) {
    for (const flag of flags) this.#set.add(flag);
  }

  add(...flags: ResponseFlag[]): this {
    for (const flag of flags) this.#set.add(flag);
    return this;
  }

  has(flag: ResponseFlag): boolean {
    return this.#set.has(flag);
  }

  toString(): string {
    return this.#set.size === 0 ? "-" : ORDER.filter((f) => this.#set.has(f)).join(",");
  }
}
