// The agent's data path: captured outbound connections go over HBONE (or straight through), HBONE and plaintext inbound reach the app.
import type net from "node:net";
import type { Logger } from "pino";
import { AGENT_SOCKET_MARK, PORTS } from "../config.ts";
import { type Authorization, HboneConnectionPool, type HboneError, HboneServer } from "../hbone/index.ts";
import type { Credentials, SpiffeId } from "../identity/index.ts";
import { formatSpiffeId } from "../identity/index.ts";
import type { CapturedConnection, InPodHandlers } from "../inpod/index.ts";
import type { PodRef } from "../enrollment/index.ts";
import type { AgentMetrics, TcpLabels } from "../metrics/index.ts";
import { connectMarked } from "../native/index.ts";
import { type Workload, type WorkloadIndex, resolveDestination } from "../state/index.ts";

export interface DataplaneOptions {
  /** This agent's node: destinations on it take the same-node fast path (no TLS, same policy). */
  nodeName: string;
  index: WorkloadIndex;
  trustDomain: string;
  trustBundlePem: string;
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
}

const identityOf = (w: Workload, trustDomain: string): SpiffeId => ({ trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount });

/** Copies bytes both ways, propagating half-close, and resolves with the byte counts once both sides are done. */
function splice(a: NodeJS.ReadWriteStream & { destroy(e?: Error): void }, b: NodeJS.ReadWriteStream & { destroy(e?: Error): void }): Promise<{ aToB: number; bToA: number; error?: string }> {
  return new Promise((resolve) => {
    const counts = { aToB: 0, bToA: 0 };
    let error: string | undefined;
    let closed = 0;
    const done = () => {
      if (++closed === 2) resolve({ ...counts, ...(error ? { error } : {}) });
    };
    a.on("data", (d: Buffer) => (counts.aToB += d.length));
    b.on("data", (d: Buffer) => (counts.bToA += d.length));
    a.pipe(b);
    b.pipe(a);
    const fail = (other: { destroy(e?: Error): void }) => (err: Error) => {
      error ??= err.message;
      other.destroy();
    };
    a.on("error", fail(b));
    b.on("error", fail(a));
    a.once("close", done);
    b.once("close", done);
  });
}

export class Dataplane implements InPodHandlers {
  readonly #opts: DataplaneOptions;
  readonly #pool: HboneConnectionPool;
  readonly #server: HboneServer;
  /** Captured connections (outbound and plaintext inbound) still being proxied. */
  #activeCaptured = 0;

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
      // L4 policy arrives with the control plane (issue #4); until then every authenticated peer is allowed.
      authorize: (req) => this.#authorize(req.source, req.destination),
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
        if (e.phase === "open") {
          this.#opts.metrics.connectionOpened(labels);
          this.#opts.log.info({ event: "connection", reporter: "destination", src: { identity: formatSpiffeId(e.source), ip: e.forwardedFor }, dst: e.destination }, "connection opened");
        } else {
          if (e.status !== 200) this.#opts.metrics.connectionOpened(labels);
          this.#opts.metrics.connectionClosed(labels, { sent: e.bytesSent, received: e.bytesReceived });
          this.#opts.log.info({ event: "connection", reporter: "destination", src: { identity: formatSpiffeId(e.source), ip: e.forwardedFor }, dst: e.destination, bytesSent: e.bytesSent, bytesReceived: e.bytesReceived, durationMs: Math.round(e.durationMs), status: e.status, error: e.error }, "connection closed");
        }
      },
      log: opts.log,
    });
  }

  /** L4 policy of a local destination; the control plane brings real policies (issue #4): allow all until then. */
  #authorize(_source: SpiffeId, _destination: { ip: string; port: number }): Authorization {
    return { allow: true };
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
    void this.#outbound(conn);
  }

  async #outbound(conn: CapturedConnection): Promise<void> {
    this.#activeCaptured++;
    try {
      await this.#proxyOutbound(conn);
    } finally {
      this.#activeCaptured--;
    }
  }

  async #proxyOutbound(conn: CapturedConnection): Promise<void> {
    const { pod, socket, originalDestination } = conn;
    socket.pause();
    const source = this.#opts.index.workloadByIp(pod.ips[0] ?? "");
    const dst = resolveDestination(this.#opts.index, originalDestination.address, originalDestination.port);
    const log = this.#opts.log.child({ pod: `${pod.namespace}/${pod.name}` });
    const labels: TcpLabels = {
      reporter: "source",
      ...(source ? { source_workload: source.workloadName, source_workload_namespace: source.namespace, source_principal: formatSpiffeId(identityOf(source, this.#opts.trustDomain)) } : {}),
    };
    try {
      if (dst.kind === "no-endpoint") throw new Error(`service ${dst.service.namespace}/${dst.service.name} has no ready endpoint for port ${dst.port}`);
      let upstream: NodeJS.ReadWriteStream & { destroy(e?: Error): void };
      // Same-node connections never reach an HBONE server: this agent also reports them as the destination.
      let alsoDestination = false;
      if (dst.kind === "workload" && dst.workload.captured && source && dst.workload.node === this.#opts.nodeName && this.#opts.localPodNetns(dst.workload.ip)) {
        // Same node: both ends are this agent's, so no TLS; the destination's policy still decides.
        Object.assign(labels, this.#destinationLabels(dst.workload), { connection_security_policy: "mutual_tls" });
        const decision = this.#authorize(identityOf(source, this.#opts.trustDomain), { ip: dst.workload.ip, port: dst.port });
        if (!decision.allow) throw Object.assign(new Error(`denied by policy: ${decision.reason}`), { code: "AMBIT_E_POLICY_DENIED", status: 401 });
        upstream = await this.#deliver(dst.workload.ip, dst.port);
        alsoDestination = true;
      } else if (dst.kind === "workload" && dst.workload.captured && source) {
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
      const reported = alsoDestination ? [labels, { ...labels, reporter: "destination" }] : [labels];
      for (const l of reported) this.#opts.metrics.connectionOpened(l);
      const access = {
        event: "connection",
        reporter: "source",
        src: { workload: labels.source_workload, namespace: labels.source_workload_namespace, identity: labels.source_principal, ip: pod.ips[0] },
        dst: { workload: labels.destination_workload, namespace: labels.destination_workload_namespace, identity: labels.destination_principal, ip: originalDestination.address, port: originalDestination.port },
        security: labels.connection_security_policy,
      };
      log.info(access, "connection opened");
      const opened = performance.now();
      socket.resume();
      const result = await splice(socket, upstream);
      for (const l of reported) this.#opts.metrics.connectionClosed(l, { sent: result.bToA, received: result.aToB });
      log.info({ ...access, bytesSent: result.aToB, bytesReceived: result.bToA, durationMs: Math.round(performance.now() - opened), ...(result.error ? { error: result.error } : {}) }, "connection closed");
    } catch (err) {
      const e = err as HboneError;
      labels.response_flags = e.status === 401 ? "DENIED" : "UF";
      this.#opts.metrics.connectionOpened(labels);
      this.#opts.metrics.connectionClosed(labels, { sent: 0, received: 0 });
      log.warn({ dst: originalDestination, err: e.message, code: e.code }, "outbound connection failed");
      socket.destroy();
    }
  }

  inboundPlaintext(conn: CapturedConnection): void {
    // PERMISSIVE: plaintext from outside the mesh is delivered (PeerAuthentication STRICT arrives with #4).
    this.#activeCaptured++;
    void this.#deliver(conn.originalDestination.address, conn.originalDestination.port)
      .then(
        (upstream) => splice(conn.socket, upstream),
        () => conn.socket.destroy(),
      )
      .finally(() => this.#activeCaptured--);
  }

  hbone(pod: PodRef, socket: net.Socket): void {
    const workload = this.#opts.index.workloadByIp(pod.ips[0] ?? "");
    if (!workload) {
      socket.destroy();
      return;
    }
    this.#server.acceptConnection(socket, this.#opts.credentialsFor(identityOf(workload, this.#opts.trustDomain)));
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
  async drain(deadlineMs: number): Promise<number> {
    this.#server.drain();
    this.#pool.drain();
    const deadline = Date.now() + deadlineMs;
    while (this.activeConnections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return this.activeConnections;
  }

  close(): void {
    this.#pool.close();
    this.#server.close();
  }
}
