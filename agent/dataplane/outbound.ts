// The outbound data path: a captured connection opened as planned, over HBONE, to a pod of this node, or straight through.
import type net from "node:net";
import type { Duplex } from "node:stream";
import { AGENT_SOCKET_MARK, PORTS } from "../config.ts";
import { type HboneConnectionPool, HboneError, type OpenStreamRequest } from "../hbone/index.ts";
import type { SpiffeId } from "../identity/index.ts";
import type { CapturedConnection } from "../inpod/index.ts";
import { connectMarked } from "../native/index.ts";
import type { CarriedConnections } from "./carried.ts";
import { type InboundPath, OutboundFailure } from "./inbound.ts";
import type { DataplaneOptions } from "./options.ts";
import { type OutboundPlan, type OutboundRefusal, outboundSource, planOutbound } from "./plan.ts";
import { type ConnectionTelemetry, type Learned, connectionReport, withLearned } from "./telemetry.ts";
import { type CodeOf } from "../../contract/errors.ts";
import { DATAPLANE_ERRORS } from "../../contract/error-codes.ts";

/** The error code of a refusal the plan made (no connection was attempted). */
const REFUSAL_CODES: Record<OutboundRefusal, CodeOf<typeof DATAPLANE_ERRORS>> = {
  no_endpoint: DATAPLANE_ERRORS.code.noEndpoint,
  no_waypoint: DATAPLANE_ERRORS.code.noWaypoint,
  self_connect: DATAPLANE_ERRORS.code.selfConnect,
  agent_port: DATAPLANE_ERRORS.code.agentPort,
};

/** What opening the upstream gave: the stream or socket, and for the same-node path the inbound connection to forget at close. */
interface Upstream {
  upstream: Duplex;
  untrack: () => void;
}

export class OutboundPath {
  readonly #opts: DataplaneOptions;
  readonly #telemetry: ConnectionTelemetry;
  readonly #carried: CarriedConnections;
  readonly #pool: HboneConnectionPool;
  readonly #inbound: InboundPath;

  constructor(opts: DataplaneOptions, telemetry: ConnectionTelemetry, carried: CarriedConnections, pool: HboneConnectionPool, inbound: InboundPath) {
    this.#opts = opts;
    this.#telemetry = telemetry;
    this.#carried = carried;
    this.#pool = pool;
    this.#inbound = inbound;
  }

  handle(conn: CapturedConnection): void {
    this.#carried.accepted();
    // Never rejects: past the pure planning, every failure is answered inside (metrics, log, socket destroyed).
    void this.#proxy(conn);
  }

  async #proxy(conn: CapturedConnection): Promise<void> {
    const { pod, socket, originalDestination } = conn;
    socket.pause();
    const plan = planOutbound(this.#opts.index, {
      source: outboundSource(this.#opts.index, pod, this.#opts.nodeName),
      trustDomain: this.#opts.trustDomain,
      originalDestination,
      listenerAddress: socket.localAddress && socket.localPort ? { address: socket.localAddress.replace(/^::ffff:/, ""), port: socket.localPort } : undefined,
      nodeName: this.#opts.nodeName,
      isLocalPod: (ip) => this.#opts.localPodNetns(ip) !== undefined,
      inPodNetwork: (ip) => this.#opts.index.inPodNetwork(ip),
      ...(this.#opts.policy ? { policy: this.#opts.policy } : {}),
    });
    if (plan.route === "same-node" || plan.route === "deny") this.#telemetry.audit(plan.audit);
    // A field rather than a child logger: one fewer object per connection, for the life of the connection.
    const podName = `${pod.namespace}/${pod.name}`;
    const learned: Learned = {};
    try {
      const { upstream, untrack } = await this.#open(plan, conn, learned);
      const report = connectionReport("source", withLearned(plan, learned), "ok", podName);
      // Same node: no HBONE server sees the connection, so this agent also writes the destination's lines
      // (as it reports both in metrics); they name the pod and port actually reached, as an HBONE server would.
      const asDestination =
        plan.route === "same-node" ? connectionReport("destination", plan.asDestination, "ok", `${plan.workload.namespace}/${plan.workload.name}`) : undefined;
      this.#telemetry.opened(report);
      if (asDestination) this.#telemetry.opened(asDestination);
      socket.resume();
      // This function ends here: what the connection needs until it closes is the carried record, not this frame.
      const counts = this.#carried.relay(socket, upstream, { ...report, asDestination, opened: performance.now(), untrack });
      // An HBONE stream's bytes in the admin API are this relay's own counts (other upstreams are not the pool's).
      this.#pool.countBytes(upstream, counts);
    } catch (err) {
      const e = err as OutboundFailure | HboneError;
      const report = connectionReport("source", withLearned(plan, learned), e.status === 401 ? "denied" : "failed", podName);
      this.#telemetry.outboundFailed(report, e, e instanceof OutboundFailure ? e.refusal : undefined);
      socket.destroy();
      this.#carried.abandoned();
    }
  }

  /** Opens the upstream side of an outbound connection as planned; `learned` gets what an HBONE probe finds out. */
  async #open(plan: OutboundPlan, conn: CapturedConnection, learned: Learned): Promise<Upstream> {
    const none = () => {};
    switch (plan.route) {
      case "refuse":
        throw new OutboundFailure(REFUSAL_CODES[plan.refusal], plan.reason, { refusal: plan.refusal });
      case "deny":
        throw new OutboundFailure(DATAPLANE_ERRORS.code.policyDenied, `denied by policy: ${plan.reason}`, { status: 401 });
      case "same-node": {
        const upstream = await this.#inbound.deliver(plan.workload.ip, plan.port);
        return { upstream, untrack: this.#inbound.track(plan.inbound, conn.socket, upstream) };
      }
      case "hbone":
        return { upstream: await this.#openHbone(plan, plan.workload.ip, plan.port, plan.expectedIdentity), untrack: none };
      case "waypoint":
        // Addressed to what the client dialled; dialled at the waypoint pod, which must hold the waypoint's identity.
        return {
          upstream: await this.#pool.openStream({
            source: plan.source.identity,
            sourceAddress: plan.source.ip,
            destination: { ip: plan.destination.ip, port: plan.destination.port },
            dial: { host: plan.dial.ip, port: plan.dial.port },
            expectedIdentity: plan.expectedIdentity,
          }),
          untrack: none,
        };
      case "hbone-probe": {
        // No config names this address yet, but it is in the pod network: if an agent answers on its HBONE port
        // the pod is captured and the bytes go inside mTLS (any identity the trust bundle vouches for, as none
        // is known to expect); only a refused TCP connect (nothing listens: not captured) falls back to plaintext.
        try {
          const stream = await this.#openHbone(plan, plan.ip, plan.port, undefined);
          learned.security = "mutual_tls";
          const peer = this.#pool.peerOf(stream);
          if (peer) learned.peer = peer;
          return { upstream: stream, untrack: none };
        } catch (err) {
          if (!(err instanceof HboneError) || !err.connectRefused) throw err;
        }
        learned.security = "none";
        return { upstream: await connectMarked(plan.ip, plan.port, AGENT_SOCKET_MARK, conn.pod.netnsPath), untrack: none };
      }
      case "passthrough":
        return { upstream: await connectMarked(plan.ip, plan.port, AGENT_SOCKET_MARK, conn.pod.netnsPath), untrack: none };
    }
  }

  /** A stream to the destination pod's HBONE port, dialled from the source pod's netns so it leaves with the pod's address. */
  #openHbone(plan: OutboundPlan, ip: string, port: number, expectedIdentity: SpiffeId | undefined): Promise<Duplex> {
    return this.#pool.openStream({
      source: plan.source.identity,
      sourceAddress: plan.source.ip,
      destination: { ip, port },
      dial: { host: ip, port: PORTS.hbone },
      ...(expectedIdentity ? { expectedIdentity } : {}),
    });
  }

  /** HBONE leaves from the source pod's netns, with its address: the destination reads the client's address from it. */
  dialHbone(host: string, port: number, req: OpenStreamRequest): Promise<net.Socket> {
    const netns = req.sourceAddress ? this.#opts.localPodNetns(req.sourceAddress) : undefined;
    if (this.#opts.hboneConnect) return this.#opts.hboneConnect(host, port, netns);
    if (!netns) return Promise.reject(new Error(`no netns is known for the source pod ${req.sourceAddress ?? "(no address)"}`));
    return connectMarked(host, port, AGENT_SOCKET_MARK, netns, this.#opts.hboneConnectTimeoutMs ?? 5_000);
  }
}
