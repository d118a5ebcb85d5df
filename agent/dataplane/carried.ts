// Connections the data path carries: how many are open, and what each reports when its relay ends.
import type { Duplex } from "node:stream";
import { type RelayCounts, relay } from "../relay/index.ts";
import type { ConnectionReport, ConnectionTelemetry } from "./telemetry.ts";

/**
 * What a carried connection keeps until it closes: its report and nothing else (held for every open connection,
 * so it is kept small).
 */
export interface Carried extends ConnectionReport {
  /** Same node: this agent also reports as the destination, with the pod and address actually reached. */
  asDestination: ConnectionReport | undefined;
  opened: number;
  untrack: () => void;
}

/** Captured connections (outbound and plaintext inbound) from the moment they are accepted until they close. */
export class CarriedConnections {
  readonly #telemetry: ConnectionTelemetry;
  #active = 0;

  constructor(telemetry: ConnectionTelemetry) {
    this.#telemetry = telemetry;
  }

  get active(): number {
    return this.#active;
  }

  /** A captured connection is being handled (it counts for draining from now on). */
  accepted(): void {
    this.#active++;
  }

  /** A captured connection ended before carrying anything. */
  abandoned(): void {
    this.#active--;
  }

  /** Relays `client` (the captured socket) and `upstream`; the connection's closing lines come from `carried`. */
  relay(client: Duplex, upstream: Duplex, carried: Carried): RelayCounts {
    return relay(client, upstream, (result) => this.#closed(carried, result));
  }

  /** A carried connection closed: its metrics and closing log lines, from what it kept. */
  #closed(c: Carried, result: RelayCounts): void {
    this.#active--;
    c.untrack();
    const durationMs = performance.now() - c.opened;
    // a = the captured client's socket, b = towards the app: the client asked aToB and was answered bToA.
    const bytes = { asked: result.aToB, answered: result.bToA };
    this.#telemetry.closed(c, bytes, durationMs, result.error);
    if (c.asDestination) this.#telemetry.closed(c.asDestination, bytes, durationMs, result.error);
  }
}
