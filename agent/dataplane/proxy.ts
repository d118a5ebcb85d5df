// The agent's data path: captured outbound connections go over HBONE (or straight through), HBONE and plaintext inbound reach the app.
import type net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { AGENT_SOCKET_MARK, PORTS } from "../config.ts";
import { type Authorization, HboneConnectionPool, type HboneError, HboneServer } from "../hbone/index.ts";
import type { Credentials, SpiffeId } from "../identity/index.ts";
import { formatSpiffeId } from "../identity/index.ts";
import type { CapturedConnection, InPodHandlers } from "../inpod/index.ts";
import type { PodRef } from "../enrollment/index.ts";
import type { AgentMetrics, TcpLabels } from "../metrics/index.ts";
import { connectMarked } from "../native/index.ts";
import { type RelayCounts, relay, relayed } from "../relay/index.ts";
import { type Workload, type WorkloadIndex, resolveDestination } from "../state/index.ts";

export interface DataplaneOptions {
  /** This agent's node: destinations on it take the same-node fast path (no TLS, same policy). */
  nodeName: string;
  index: WorkloadIndex;
  trustDomain: string;
  /** Roots peers must chain to; asked again for each new TLS context (root rotation). */
  trustBundlePem: string | (() => string);
  /** Certificate of a workload identity this agent holds (pods on its node). */
  credentialsFor(id: SpiffeId): Credentials;
  /** The netns of a local pod by IP, for delivering inbound traffic from inside it. */
  localPodNetns(ip: string): string | undefined;
  metrics: AgentMetrics;
  log: Logger;
  hboneMaxStreamsPerConnection?: number;
  hboneIdleTimeoutMs?: number;
  /** How HBONE connections are dialed (default: from the agent's netns, which routes to pod IPs). */
  hboneConnect?(host: string, port: number): Promise<net.Socket>;
  /** L4 policy and peer authentication of local destinations; without one every authenticated peer is allowed. */
  policy?: InboundPolicy;
}

/** What the destination side knows about a new inbound connection when it decides on it. */
export interface InboundAttributes {
  /** The peer's proven identity; absent for plaintext (non-mesh) clients. */
  source?: SpiffeId;
  /** The client's address: the forwarded-for of an HBONE stream, the peer address of plaintext. */
  sourceIp?: string;
  destination: Workload;
  destinationIp: string;
  destinationPort: number;
}

export interface InboundPolicy {
  /** AuthorizationPolicy and PeerAuthentication together: may this connection reach its destination? */
  check(conn: InboundAttributes): { allowed: boolean; reason: string };
}

/**
 * What a carried outbound connection keeps until it closes: enough for its metrics and closing log lines, and
 * nothing else (held for every open connection, so it is kept small).
 */
interface CarriedOutbound {
  labels: TcpLabels;
  /** Same node: this agent also reports as the destination, with the pod and address actually reached. */
  asDestination: { labels: TcpLabels; pod: string; ip: string; port: number } | undefined;
  pod: string;
  srcIp: string | undefined;
  dst: { address: string; port: number };
  opened: number;
  untrack: () => void;
}

/** An inbound connection this agent delivers itself (same-node fast path or plaintext), closable on a policy change. */
interface LiveInbound {
  attributes: InboundAttributes;
  close(reason: string): void;
}

const identityOf = (w: Workload, trustDomain: string): SpiffeId => ({ trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount });

/**
 * The fields every access log line carries, whichever side reports it: both ends' workload, namespace, identity
 * and address, and the transport security, so source and destination lines can be read the same way.
 */
function accessRecord(labels: TcpLabels, srcIp: string | undefined, dst: { ip: string; port: number }) {
  return {
    event: "connection",
    reporter: labels.reporter,
    src: { workload: labels.source_workload, namespace: labels.source_workload_namespace, identity: labels.source_principal, ip: srcIp },
    dst: { workload: labels.destination_workload, namespace: labels.destination_workload_namespace, identity: labels.destination_principal, ip: dst.ip, port: dst.port },
    security: labels.connection_security_policy,
  };
}

export class Dataplane implements InPodHandlers {
  readonly #opts: DataplaneOptions;
  readonly #pool: HboneConnectionPool;
  readonly #server: HboneServer;
  /** Captured connections (outbound and plaintext inbound) still being proxied. */
  #activeCaptured = 0;
  readonly #liveInbound = new Set<LiveInbound>();

  constructor(opts: DataplaneOptions) {
    this.#opts = opts;
    this.#pool = new HboneConnectionPool({
      getClientCredentials: (id) => opts.credentialsFor(id),
      trustBundlePem: opts.trustBundlePem,
      maxStreamsPerConnection: opts.hboneMaxStreamsPerConnection ?? 100,
      idleTimeoutMs: opts.hboneIdleTimeoutMs ?? 5 * 60_000,
      ...(opts.hboneConnect ? { connect: opts.hboneConnect } : {}),
    });
    this.#server = new HboneServer({
      trustBundlePem: opts.trustBundlePem,
      authorize: (req) => this.#authorize({ source: req.source, ...(req.forwardedFor ? { sourceIp: req.forwardedFor } : {}) }, req.destination),
      connectUpstream: (dst) => this.#deliver(dst.ip, dst.port),
      onStream: (e) => {
        const dstWorkload = this.#opts.index.workloadByIp(e.destination.ip);
        const labels: TcpLabels = {
          reporter: "destination",
          source_principal: formatSpiffeId(e.source),
          source_workload_namespace: e.source.namespace,
          ...(dstWorkload ? this.#destinationLabels(dstWorkload) : {}),
          connection_security_policy: "mutual_tls",
          response_flags: e.status === 200 ? "-" : e.status === 401 ? "DENIED" : "UF",
        };
        const src = e.forwardedFor ? this.#opts.index.workloadByIp(e.forwardedFor) : undefined;
        if (src) labels.source_workload = src.workloadName;
        const access = { ...(dstWorkload ? { pod: `${dstWorkload.namespace}/${dstWorkload.name}` } : {}), ...accessRecord(labels, e.forwardedFor, e.destination) };
        if (e.phase === "open") {
          this.#opts.metrics.connectionOpened(labels);
          this.#opts.log.info(access, "connection opened");
        } else {
          if (e.status !== 200) this.#opts.metrics.connectionOpened(labels);
          this.#opts.metrics.connectionClosed(labels, { sent: e.bytesSent, received: e.bytesReceived });
          this.#opts.log.info({ ...access, bytesSent: e.bytesSent, bytesReceived: e.bytesReceived, durationMs: Math.round(e.durationMs), status: e.status, ...(e.error ? { error: e.error } : {}) }, "connection closed");
        }
      },
      log: opts.log,
    });
  }

  /**
   * L4 policy of a local destination. An address the controller does not know as a workload is refused (fail
   * closed: its policy cannot be known); delivery itself only reaches pods whose netns this agent holds.
   */
  #authorize(source: Pick<InboundAttributes, "source" | "sourceIp">, destination: { ip: string; port: number }): Authorization {
    const workload = this.#opts.index.workloadByIp(destination.ip);
    if (!workload) return { allow: false, reason: `${destination.ip} is not a known workload, so its policy cannot be checked` };
    if (!this.#opts.policy) return { allow: true };
    const decision = this.#opts.policy.check({ ...source, destination: workload, destinationIp: destination.ip, destinationPort: destination.port });
    return decision.allowed ? { allow: true } : { allow: false, reason: decision.reason };
  }

  /**
   * Policy changed: every live inbound connection is checked again and the ones now denied are closed, logged
   * and counted (response_flags DENIED). Returns how many were closed.
   */
  revalidate(): number {
    const reasonFor = (source: Pick<InboundAttributes, "source" | "sourceIp">, destination: { ip: string; port: number }) => {
      const d = this.#authorize(source, destination);
      return d.allow ? undefined : d.reason;
    };
    let closed = this.#server.revoke((t) => reasonFor({ source: t.source, ...(t.forwardedFor ? { sourceIp: t.forwardedFor } : {}) }, t.destination));
    for (const live of [...this.#liveInbound]) {
      const reason = reasonFor(live.attributes, { ip: live.attributes.destinationIp, port: live.attributes.destinationPort });
      if (reason === undefined) continue;
      live.close(reason);
      closed++;
    }
    if (closed > 0) {
      this.#opts.metrics.connectionsRevoked.inc(closed);
      this.#opts.log.warn({ closed }, "closed live connections that a policy change now denies");
    }
    return closed;
  }

  #destinationLabels(w: Workload): TcpLabels {
    return {
      destination_workload: w.workloadName,
      destination_workload_namespace: w.namespace,
      destination_principal: formatSpiffeId(identityOf(w, this.#opts.trustDomain)),
      ...(w.labels.app ? { destination_app: w.labels.app } : {}),
    };
  }

  /** Opens the connection to a local pod's app from inside that pod's netns, marked so it is not captured. */
  #deliver(ip: string, port: number): Promise<net.Socket> {
    const netns = this.#opts.localPodNetns(ip);
    if (!netns) return Promise.reject(new Error(`${ip} is not a pod on this node`));
    return connectMarked(ip, port, AGENT_SOCKET_MARK, netns);
  }

  outbound(conn: CapturedConnection): void {
    this.#activeCaptured++;
    void this.#proxyOutbound(conn);
  }

  async #proxyOutbound(conn: CapturedConnection): Promise<void> {
    const { pod, socket, originalDestination } = conn;
    socket.pause();
    // The pod itself says who the source is: a pod captured a moment ago may not be in the controller's view yet,
    // and its traffic must still leave inside mTLS.
    const source: Workload = this.#opts.index.workloadByIp(pod.ips[0] ?? "") ?? {
      uid: pod.uid,
      namespace: pod.namespace,
      name: pod.name,
      workloadName: pod.name,
      serviceAccount: pod.serviceAccount,
      node: this.#opts.nodeName,
      ip: pod.ips[0] ?? "",
      captured: true,
      labels: {},
    };
    const dst = resolveDestination(this.#opts.index, originalDestination.address, originalDestination.port);
    // A field rather than a child logger: one fewer object per connection, for the life of the connection.
    const podName = `${pod.namespace}/${pod.name}`;
    const log = this.#opts.log;
    const labels: TcpLabels = {
      reporter: "source",
      source_workload: source.workloadName,
      source_workload_namespace: source.namespace,
      source_principal: formatSpiffeId(identityOf(source, this.#opts.trustDomain)),
    };
    try {
      if (dst.kind === "no-endpoint") throw new Error(`service ${dst.service.namespace}/${dst.service.name} has no ready endpoint for port ${dst.port}`);
      let upstream: Duplex;
      // Same-node connections never reach an HBONE server: this agent also reports them as the destination.
      let alsoDestination = false;
      let untrack = () => {};
      if (dst.kind === "workload" && dst.workload.captured && dst.workload.node === this.#opts.nodeName && this.#opts.localPodNetns(dst.workload.ip)) {
        // Same node: both ends are this agent's, so no TLS; the destination's policy still decides.
        Object.assign(labels, this.#destinationLabels(dst.workload), { connection_security_policy: "mutual_tls" });
        const attributes: InboundAttributes = { source: identityOf(source, this.#opts.trustDomain), sourceIp: source.ip, destination: dst.workload, destinationIp: dst.workload.ip, destinationPort: dst.port };
        const decision = this.#authorize(attributes, { ip: dst.workload.ip, port: dst.port });
        if (!decision.allow) throw Object.assign(new Error(`denied by policy: ${decision.reason}`), { code: "AMBIT_E_POLICY_DENIED", status: 401 });
        upstream = await this.#deliver(dst.workload.ip, dst.port);
        untrack = this.#trackInbound(attributes, socket, upstream as net.Socket);
        alsoDestination = true;
      } else if (dst.kind === "workload" && dst.workload.captured) {
        Object.assign(labels, this.#destinationLabels(dst.workload), { connection_security_policy: "mutual_tls" });
        // Dial the destination pod's HBONE port from the source pod's netns, so it leaves with the pod's address.
        upstream = await this.#pool.openStream({
          source: identityOf(source, this.#opts.trustDomain),
          destination: { ip: dst.workload.ip, port: dst.port },
          dial: { host: dst.workload.ip, port: PORTS.hbone },
          expectedIdentity: identityOf(dst.workload, this.#opts.trustDomain),
          forwardedFor: source.ip,
        });
      } else {
        const target = dst.kind === "workload" ? { ip: dst.workload.ip, port: dst.port } : { ip: dst.ip, port: dst.port };
        if (dst.kind === "workload") Object.assign(labels, this.#destinationLabels(dst.workload));
        labels.connection_security_policy = "none";
        upstream = await connectMarked(target.ip, target.port, AGENT_SOCKET_MARK, pod.netnsPath);
      }
      const carried: CarriedOutbound = {
        labels,
        asDestination: alsoDestination && dst.kind === "workload" ? { labels: { ...labels, reporter: "destination" }, pod: `${dst.workload.namespace}/${dst.workload.name}`, ip: dst.workload.ip, port: dst.port } : undefined,
        pod: podName,
        srcIp: pod.ips[0],
        dst: originalDestination,
        opened: performance.now(),
        untrack,
      };
      this.#opts.metrics.connectionOpened(labels);
      log.info({ pod: podName, ...accessRecord(labels, carried.srcIp, { ip: originalDestination.address, port: originalDestination.port }) }, "connection opened");
      // Same node: no HBONE server sees the connection, so this agent also writes the destination's lines
      // (as it reports both in metrics); they name the pod and port actually reached, as an HBONE server would.
      const d = carried.asDestination;
      if (d) {
        this.#opts.metrics.connectionOpened(d.labels);
        log.info({ pod: d.pod, ...accessRecord(d.labels, carried.srcIp, d) }, "connection opened");
      }
      socket.resume();
      // This function ends here: what the connection needs until it closes is `carried`, not this frame.
      relay(socket, upstream, (result) => this.#outboundClosed(carried, result));
    } catch (err) {
      const e = err as HboneError;
      labels.response_flags = e.status === 401 ? "DENIED" : "UF";
      this.#opts.metrics.connectionOpened(labels);
      this.#opts.metrics.connectionClosed(labels, { sent: 0, received: 0 });
      log.warn({ pod: podName, dst: originalDestination, err: e.message, code: e.code }, "outbound connection failed");
      socket.destroy();
      this.#activeCaptured--;
    }
  }

  /** A carried outbound connection closed: its metrics and closing log lines, from what it kept. */
  #outboundClosed(c: CarriedOutbound, result: RelayCounts): void {
    this.#activeCaptured--;
    c.untrack();
    const durationMs = Math.round(performance.now() - c.opened);
    const failure = result.error ? { error: result.error } : {};
    this.#opts.metrics.connectionClosed(c.labels, { sent: result.bToA, received: result.aToB });
    this.#opts.log.info({ pod: c.pod, ...accessRecord(c.labels, c.srcIp, { ip: c.dst.address, port: c.dst.port }), bytesSent: result.aToB, bytesReceived: result.bToA, durationMs, ...failure }, "connection closed");
    const d = c.asDestination;
    if (!d) return;
    this.#opts.metrics.connectionClosed(d.labels, { sent: result.bToA, received: result.aToB });
    // The destination's view, as the HBONE server logs it: sent = answered, received = asked.
    this.#opts.log.info({ pod: d.pod, ...accessRecord(d.labels, c.srcIp, d), bytesSent: result.bToA, bytesReceived: result.aToB, durationMs, status: 200, ...failure }, "connection closed");
  }

  /** Plaintext from outside the mesh: delivered unless policy (STRICT peer authentication, or a rule) refuses it. */
  inboundPlaintext(conn: CapturedConnection): void {
    const destination = { ip: conn.originalDestination.address, port: conn.originalDestination.port };
    const sourceIp = conn.socket.remoteAddress?.replace(/^::ffff:/, "");
    const decision = this.#authorize(sourceIp ? { sourceIp } : {}, destination);
    if (!decision.allow) {
      const workload = this.#opts.index.workloadByIp(destination.ip);
      const labels: TcpLabels = { reporter: "destination", ...(workload ? this.#destinationLabels(workload) : {}), connection_security_policy: "none", response_flags: "DENIED" };
      this.#opts.metrics.connectionOpened(labels);
      this.#opts.metrics.connectionClosed(labels, { sent: 0, received: 0 });
      this.#opts.log.info({ event: "connection", reporter: "destination", src: { ip: sourceIp }, dst: destination, security: "none", reason: decision.reason }, "connection denied by policy");
      conn.socket.destroy();
      return;
    }
    this.#activeCaptured++;
    void this.#deliver(destination.ip, destination.port)
      .then(
        (upstream) => {
          const workload = this.#opts.index.workloadByIp(destination.ip);
          const untrack = workload ? this.#trackInbound({ ...(sourceIp ? { sourceIp } : {}), destination: workload, destinationIp: destination.ip, destinationPort: destination.port }, conn.socket, upstream) : () => {};
          return relayed(conn.socket, upstream).finally(untrack);
        },
        () => conn.socket.destroy(),
      )
      .finally(() => this.#activeCaptured--);
  }

  /** Remembers a connection this agent delivers itself, so `revalidate` can close it; returns the forget function. */
  #trackInbound(attributes: InboundAttributes, client: net.Socket, upstream: net.Socket): () => void {
    const live: LiveInbound = {
      attributes,
      close: (reason) => {
        this.#liveInbound.delete(live);
        this.#opts.log.warn({ event: "connection", reporter: "destination", src: { identity: attributes.source ? formatSpiffeId(attributes.source) : undefined, ip: attributes.sourceIp }, dst: { ip: attributes.destinationIp, port: attributes.destinationPort }, reason }, "live connection closed: policy now denies it");
        upstream.destroy();
        client.destroy();
      },
    };
    this.#liveInbound.add(live);
    return () => this.#liveInbound.delete(live);
  }

  /** The listener a connection arrived on names the pod, and so the identity this agent presents for it. */
  hbone(pod: PodRef, socket: net.Socket): void {
    this.#server.acceptConnection(socket, this.#opts.credentialsFor({ trustDomain: this.#opts.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccount }));
  }

  stats() {
    return { hbone: this.#pool.stats(), inboundConnections: this.#server.connectionCount, activeConnections: this.activeConnections };
  }

  /** Connections this agent is carrying right now, in either direction. */
  get activeConnections(): number {
    return this.#activeCaptured + this.#server.activeStreams;
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
