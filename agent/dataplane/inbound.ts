// The inbound data path: plaintext and HBONE connections delivered to a local pod's app, and the live ones policy may close.
import type net from "node:net";
import { AGENT_SOCKET_MARK } from "../config.ts";
import type { Authorization, SourceAddressResult, StreamEvent, StreamTarget } from "../hbone/index.ts";
import type { SpiffeId } from "../identity/index.ts";
import type { CapturedConnection } from "../inpod/index.ts";
import { connectMarked } from "../native/index.ts";
import type { Workload } from "../state/index.ts";
import type { CarriedConnections } from "./carried.ts";
import type { DataplaneOptions } from "./options.ts";
import { type InboundAttributes, type Refusal, agentPortRefusal, decideInbound, hboneSourceAddress, inboundEnds, planInbound } from "./plan.ts";
import { type ConnectionTelemetry, connectionReport, outcomeOfStatus } from "./telemetry.ts";
import { AmbitError, type CodeOf } from "../../contract/errors.ts";
import { DATAPLANE_ERRORS } from "../../contract/error-codes.ts";

/** Why a connection failed, for its response flag and status. */
export class OutboundFailure extends AmbitError<CodeOf<typeof DATAPLANE_ERRORS>> {
  readonly status: number | undefined;
  readonly refusal: Refusal | undefined;
  constructor(code: CodeOf<typeof DATAPLANE_ERRORS>, message: string, opts: { status?: number; refusal?: Refusal } = {}) {
    super(code, message);
    this.name = "OutboundFailure";
    this.status = opts.status;
    this.refusal = opts.refusal;
  }
}

/** An inbound connection this agent delivers itself (same-node fast path or plaintext), closable on a policy change. */
interface LiveInbound {
  attributes: InboundAttributes;
  close(reason: string): void;
}

type InboundSource = Pick<InboundAttributes, "source" | "sourceIp">;

export class InboundPath {
  readonly #opts: DataplaneOptions;
  readonly #telemetry: ConnectionTelemetry;
  readonly #carried: CarriedConnections;
  readonly #live = new Set<LiveInbound>();
  /** A workload by IP: the controller's record, else this node's own pod as the agent watches it. */
  readonly workloadAt = (ip: string): Workload | undefined => this.#opts.index.workloadByIp(ip) ?? this.#opts.localWorkload?.(ip);

  constructor(opts: DataplaneOptions, telemetry: ConnectionTelemetry, carried: CarriedConnections) {
    this.#opts = opts;
    this.#telemetry = telemetry;
    this.#carried = carried;
  }

  /** The client's address of an HBONE stream, refused when the peer's identity does not own it. */
  sourceAddress(peer: SpiffeId, peerAddress: string | undefined, claimed: string | undefined): SourceAddressResult {
    return hboneSourceAddress(this.workloadAt, this.#opts.trustDomain, peer, peerAddress, claimed);
  }

  /** L4 policy of a local destination; `audit` logs the AUDIT policies a new connection matches (not on re-checks). */
  authorize(source: InboundSource, destination: StreamTarget, audit = false): Authorization {
    const verdict = decideInbound(this.#opts.policy, this.workloadAt(destination.ip), {
      ...source,
      destinationIp: destination.ip,
      destinationPort: destination.port,
    });
    if (audit) this.#telemetry.audit(verdict.audit);
    return verdict.allowed ? { allow: true } : { allow: false, reason: verdict.reason };
  }

  /** An HBONE stream's open or close, reported from the addresses it joins (looked up now, nothing kept per stream). */
  hboneStream(e: StreamEvent): void {
    const ends = inboundEnds(
      this.#opts.index,
      {
        source: e.source,
        ...(e.sourceAddress ? { sourceIp: e.sourceAddress } : {}),
        destination: e.destination,
        workloadAt: this.workloadAt,
        trustDomain: this.#opts.trustDomain,
      },
      "mutual_tls",
    );
    const w = ends.destination.workload;
    this.#telemetry.hboneStream(connectionReport("destination", ends, outcomeOfStatus(e.status), w ? `${w.namespace}/${w.name}` : undefined), e);
  }

  /**
   * Opens the connection to a local pod's app from inside that pod's netns, marked so it is not captured. Never
   * to one of the agent's own in-pod ports, whatever asked: that would reach the agent's listener again.
   */
  deliver(ip: string, port: number): Promise<net.Socket> {
    const refusal = agentPortRefusal(port);
    if (refusal) return Promise.reject(new OutboundFailure(DATAPLANE_ERRORS.code.agentPort, refusal, { status: 400, refusal: "agent_port" }));
    const netns = this.#opts.localPodNetns(ip);
    if (!netns) return Promise.reject(new Error(`${ip} is not a pod on this node`));
    return connectMarked(ip, port, AGENT_SOCKET_MARK, netns);
  }

  /**
   * Plaintext from outside the mesh: delivered unless policy (STRICT peer authentication, or a rule) refuses it,
   * and reported like any other connection (access log lines, Istio series with `connection_security_policy`
   * none). Never delivered to the agent's own in-pod ports.
   */
  plaintext(conn: CapturedConnection): void {
    const sourceIp = conn.socket.remoteAddress?.replace(/^::ffff:/, "");
    const plan = planInbound(this.#opts.index, {
      ...(sourceIp ? { sourceIp } : {}),
      destination: { ip: conn.originalDestination.address, port: conn.originalDestination.port },
      workloadAt: this.workloadAt,
      trustDomain: this.#opts.trustDomain,
      ...(this.#opts.policy ? { policy: this.#opts.policy } : {}),
    });
    if (plan.route !== "refuse") this.#telemetry.audit(plan.audit);
    const w = plan.destination.workload;
    const pod = w ? `${w.namespace}/${w.name}` : `${conn.pod.namespace}/${conn.pod.name}`;
    if (plan.route !== "deliver") {
      const refusal = plan.route === "refuse" ? plan.refusal : undefined;
      this.#telemetry.inboundRefused(connectionReport("destination", plan, refusal ? "failed" : "denied", pod), plan.reason, refusal);
      conn.socket.destroy();
      return;
    }
    this.#carried.accepted();
    this.deliver(plan.destination.ip, plan.destination.port).then(
      (upstream) => {
        const report = connectionReport("destination", plan, "ok", pod);
        const carried = { ...report, asDestination: undefined, opened: performance.now(), untrack: this.track(plan.inbound, conn.socket, upstream) };
        this.#telemetry.opened(report);
        this.#carried.relay(conn.socket, upstream, carried);
      },
      (err: Error) => {
        this.#carried.abandoned();
        this.#telemetry.inboundFailed(connectionReport("destination", plan, "failed", pod), err);
        conn.socket.destroy();
      },
    );
  }

  /** Remembers a connection this agent delivers itself, so `revalidate` can close it; returns the forget function. */
  track(attributes: InboundAttributes, client: net.Socket, upstream: net.Socket): () => void {
    const live: LiveInbound = {
      attributes,
      close: (reason) => {
        this.#live.delete(live);
        this.#telemetry.revoked(attributes, reason);
        upstream.destroy();
        client.destroy();
      },
    };
    this.#live.add(live);
    return () => this.#live.delete(live);
  }

  /** Closes the live connections policy now denies; `reasonFor` says why, or undefined to keep one. Returns how many. */
  revalidate(reasonFor: (source: InboundSource, destination: StreamTarget) => string | undefined): number {
    let closed = 0;
    for (const live of [...this.#live]) {
      const reason = reasonFor(live.attributes, { ip: live.attributes.destinationIp, port: live.attributes.destinationPort });
      if (reason === undefined) continue;
      live.close(reason);
      closed++;
    }
    return closed;
  }
}
