// The agent's data path, assembled: the HBONE pool and server, the outbound and inbound paths, draining and the admin views.
import type net from "node:net";
import { HboneConnectionPool, HboneServer } from "../hbone/index.ts";
import type { CapturedConnection, InPodHandlers } from "../inpod/index.ts";
import type { PodRef } from "../enrollment/index.ts";
import type { HboneConnectionInfo } from "../../contract/agent-admin.ts";
import { CarriedConnections } from "./carried.ts";
import { InboundPath } from "./inbound.ts";
import type { DataplaneOptions } from "./options.ts";
import { OutboundPath } from "./outbound.ts";
import { agentPortRefusal } from "./plan.ts";
import { ConnectionTelemetry } from "./telemetry.ts";

export class Dataplane implements InPodHandlers {
  readonly #opts: DataplaneOptions;
  readonly #pool: HboneConnectionPool;
  readonly #server: HboneServer;
  readonly #carried: CarriedConnections;
  readonly #inbound: InboundPath;
  readonly #outbound: OutboundPath;

  constructor(opts: DataplaneOptions) {
    this.#opts = opts;
    const telemetry = new ConnectionTelemetry(opts.metrics, opts.log);
    this.#carried = new CarriedConnections(telemetry);
    const inbound = new InboundPath(opts, telemetry, this.#carried);
    this.#inbound = inbound;
    this.#pool = new HboneConnectionPool({
      getClientCredentials: (id) => opts.credentialsFor(id),
      trustBundlePem: opts.trustBundlePem,
      maxStreamsPerConnection: opts.hboneMaxStreamsPerConnection ?? 100,
      idleTimeoutMs: opts.hboneIdleTimeoutMs ?? 5 * 60_000,
      connect: (host, port, req) => this.#outbound.dialHbone(host, port, req),
    });
    this.#outbound = new OutboundPath(opts, telemetry, this.#carried, this.#pool, inbound);
    this.#server = new HboneServer({
      trustBundlePem: opts.trustBundlePem,
      sourceAddress: (peer, peerAddress, claimed) => inbound.sourceAddress(peer, peerAddress, claimed),
      refuseDestination: (dst) => agentPortRefusal(dst.port),
      authorize: (req) => inbound.authorize({ source: req.source, ...(req.sourceAddress ? { sourceIp: req.sourceAddress } : {}) }, req.destination, true),
      connectUpstream: (dst) => inbound.deliver(dst.ip, dst.port),
      onStream: (e) => inbound.hboneStream(e),
      log: opts.log,
    });
  }

  /**
   * Policy changed: every live inbound connection is checked again and the ones now denied are closed, logged
   * and counted (response_flags DENIED). Returns how many were closed.
   */
  revalidate(): number {
    const reasonFor = (source: Parameters<InboundPath["authorize"]>[0], destination: { ip: string; port: number }) => {
      const d = this.#inbound.authorize(source, destination);
      return d.allow ? undefined : d.reason;
    };
    let closed = this.#server.revoke((t) => reasonFor({ source: t.source, ...(t.sourceAddress ? { sourceIp: t.sourceAddress } : {}) }, t.destination));
    closed += this.#inbound.revalidate(reasonFor);
    if (closed > 0) {
      this.#opts.metrics.connectionsRevoked.inc(closed);
      this.#opts.log.warn({ closed }, "closed live connections that a policy change now denies");
    }
    return closed;
  }

  outbound(conn: CapturedConnection): void {
    this.#outbound.handle(conn);
  }

  inboundPlaintext(conn: CapturedConnection): void {
    this.#inbound.plaintext(conn);
  }

  /** The listener a connection arrived on names the pod, and so the identity this agent presents for it. */
  hbone(pod: PodRef, socket: net.Socket): void {
    this.#server.acceptConnection(
      socket,
      this.#opts.credentialsFor({ trustDomain: this.#opts.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccount }),
    );
  }

  /**
   * Every HBONE connection this agent holds, both directions, with the nodes and local pods the workload index
   * names for their addresses (looked up now, so nothing is kept per connection for it).
   */
  tunnels(withStreams = true): HboneConnectionInfo[] {
    const nodeOf = (address: string) => this.#inbound.workloadAt(address.replace(/:\d+$/, ""))?.node;
    const podAt = (ip: string) => {
      const w = this.#inbound.workloadAt(ip);
      return w ? `${w.namespace}/${w.name}` : undefined;
    };
    const all = [...this.#pool.connections(withStreams), ...this.#server.connections(withStreams)];
    return all.map(({ streams: open, ...c }) => {
      const peerNode = nodeOf(c.peerAddress);
      // Outbound, the local pod is the source, whose address the connection leaves from; inbound, each stream's destination.
      const outboundPod = c.direction === "outbound" ? podAt(c.localAddress.replace(/:\d+$/, "")) : undefined;
      const streams = open?.map((st) => {
        const pod = outboundPod ?? podAt(st.destinationAddress.replace(/:\d+$/, ""));
        return pod ? { localWorkload: pod, ...st } : st;
      });
      return { ...c, localNode: this.#opts.nodeName, ...(peerNode ? { peerNode } : {}), ...(streams ? { streams } : {}) };
    });
  }

  stats() {
    return { hbone: this.#pool.stats(), inboundConnections: this.#server.connectionCount, activeConnections: this.activeConnections };
  }

  /** Connections this agent is carrying right now, in either direction. */
  get activeConnections(): number {
    return this.#carried.active + this.#server.activeStreams;
  }

  /**
   * Restart without loss, once the pod listeners are closed: peers are told to go elsewhere, and the
   * connections in flight get until the deadline to finish. Resolves with how many were still open then.
   */
  async drain(deadlineMs: number, goawayGraceMs = 2_000): Promise<number> {
    this.#server.drain();
    this.#pool.drain();
    const started = Date.now();
    const deadline = started + deadlineMs;
    // Peers need time to read the GOAWAY before the sockets close (see HboneServer.drain): keep sessions open
    // for the grace period, or until the streams in flight end if that is later.
    const busy = () => this.activeConnections > 0 || (this.#server.sessionCount > 0 && Date.now() - started < goawayGraceMs);
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.#server.closeSessions();
    return this.activeConnections;
  }

  close(): void {
    this.#pool.close();
    this.#server.close();
  }
}
