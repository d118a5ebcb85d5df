// The agent's data path: captured outbound connections go over HBONE (or straight through), HBONE and plaintext inbound reach the app.
import type net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { AGENT_SOCKET_MARK, PORTS } from "../config.ts";
import {
  type Authorization,
  HboneConnectionPool,
  HboneError,
  HboneServer,
  type OpenStreamRequest,
  type SourceAddressResult,
  peerAddressOnly,
} from "../hbone/index.ts";
import type { Credentials, SpiffeId } from "../identity/index.ts";
import { formatSpiffeId, sameIdentity } from "../identity/index.ts";
import type { CapturedConnection, InPodHandlers } from "../inpod/index.ts";
import type { PodRef } from "../enrollment/index.ts";
import type { AgentMetrics, TcpLabels } from "../metrics/index.ts";
import { connectMarked } from "../native/index.ts";
import { type RelayCounts, relay } from "../relay/index.ts";
import type { HboneConnectionInfo } from "../../contract/agent-admin.ts";
import type { Workload, WorkloadIndex } from "../state/index.ts";
import { type OutboundPlan, type Refusal, agentPortRefusal, planOutbound } from "./plan.ts";

export interface DataplaneOptions {
  /** This agent's node: destinations on it take the same-node fast path (no TLS, same policy). */
  nodeName: string;
  index: WorkloadIndex;
  trustDomain: string;
  /** Roots peers must chain to; asked again for each new TLS context (root rotation). */
  trustBundlePem: string | (() => string);
  /** Certificate of a workload identity this agent holds (pods on its node). */
  credentialsFor(id: SpiffeId): Credentials;
  /** The netns of a local pod by IP, for delivering inbound traffic from inside it and dialling from it. */
  localPodNetns(ip: string): string | undefined;
  /**
   * A pod of this node by IP, as the agent's own watch sees it: the controller's config may not name a pod yet
   * (it started while the controller was down), and its inbound traffic must still meet its policy.
   */
  localWorkload?(ip: string): Workload | undefined;
  metrics: AgentMetrics;
  log: Logger;
  hboneMaxStreamsPerConnection?: number;
  hboneIdleTimeoutMs?: number;
  /** How long dialling a peer's HBONE port may take. */
  hboneConnectTimeoutMs?: number;
  /**
   * How HBONE connections are dialled. Default: a marked socket from inside the source pod's netns, so the
   * connection leaves with the pod's address, which the destination takes as the client's address.
   */
  hboneConnect?(host: string, port: number, sourceNetns: string | undefined): Promise<net.Socket>;
  /** L4 policy and peer authentication of local destinations; without one every authenticated peer is allowed. */
  policy?: InboundPolicy;
}

/** What the destination side knows about a new inbound connection when it decides on it. */
export interface InboundAttributes {
  /** The peer's proven identity; absent for plaintext (non-mesh) clients. */
  source?: SpiffeId;
  /** The client's address: the peer address of the HBONE connection or of the plaintext one. */
  sourceIp?: string;
  destination: Workload;
  destinationIp: string;
  destinationPort: number;
}

export interface InboundDecision {
  allowed: boolean;
  reason: string;
  /** AUDIT policies (namespace/name) the connection matched: logged, never part of the decision. */
  audit?: string[];
}

export interface InboundPolicy {
  /** AuthorizationPolicy and PeerAuthentication together: may this connection reach its destination? */
  check(conn: InboundAttributes): InboundDecision;
}

/**
 * What a carried connection keeps until it closes: enough for its metrics and closing log lines, and nothing else
 * (held for every open connection, so it is kept small).
 */
interface Carried {
  labels: TcpLabels;
  /** Same node: this agent also reports as the destination, with the pod and address actually reached. */
  asDestination: { labels: TcpLabels; pod: string; ip: string; port: number } | undefined;
  pod: string;
  srcIp: string | undefined;
  dst: { ip: string; port: number };
  opened: number;
  untrack: () => void;
  /** The destination's view of its own bytes (sent = answered): plaintext inbound is reported by its destination only. */
  destinationView: boolean;
}

/** An inbound connection this agent delivers itself (same-node fast path or plaintext), closable on a policy change. */
interface LiveInbound {
  attributes: InboundAttributes;
  close(reason: string): void;
}

/** Why a connection failed, for its response flag and status. */
class OutboundFailure extends Error {
  readonly code: string;
  readonly status: number | undefined;
  readonly refusal: Refusal | undefined;
  constructor(code: string, message: string, opts: { status?: number; refusal?: Refusal } = {}) {
    super(message);
    this.name = "OutboundFailure";
    this.code = code;
    this.status = opts.status;
    this.refusal = opts.refusal;
  }
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
    dst: {
      workload: labels.destination_workload,
      namespace: labels.destination_workload_namespace,
      identity: labels.destination_principal,
      ip: dst.ip,
      port: dst.port,
    },
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
      connect: (host, port, req) => this.#dialHbone(host, port, req),
    });
    this.#server = new HboneServer({
      trustBundlePem: opts.trustBundlePem,
      sourceAddress: (peer, peerAddress, claimed) => this.#sourceAddress(peer, peerAddress, claimed),
      refuseDestination: (dst) => agentPortRefusal(dst.port),
      authorize: (req) => this.#authorize({ source: req.source, ...(req.sourceAddress ? { sourceIp: req.sourceAddress } : {}) }, req.destination, true),
      connectUpstream: (dst) => this.#deliver(dst.ip, dst.port),
      onStream: (e) => {
        const dstWorkload = this.#workloadAt(e.destination.ip);
        const labels: TcpLabels = {
          reporter: "destination",
          source_principal: formatSpiffeId(e.source),
          source_workload_namespace: e.source.namespace,
          ...(dstWorkload ? this.#destinationLabels(dstWorkload) : {}),
          connection_security_policy: "mutual_tls",
          response_flags: e.status === 200 ? "-" : e.status === 401 ? "DENIED" : "UF",
        };
        const src = e.sourceAddress ? this.#opts.index.workloadByIp(e.sourceAddress) : undefined;
        if (src) labels.source_workload = src.workloadName;
        const access = {
          ...(dstWorkload ? { pod: `${dstWorkload.namespace}/${dstWorkload.name}` } : {}),
          ...accessRecord(labels, e.sourceAddress, e.destination),
        };
        if (e.refused) this.#opts.metrics.connectionsRefused.inc({ direction: "inbound", reason: e.refused });
        if (e.phase === "open") {
          this.#opts.metrics.connectionOpened(labels);
          this.#opts.log.info(access, "connection opened");
        } else {
          if (e.status !== 200) this.#opts.metrics.connectionOpened(labels);
          this.#opts.metrics.connectionClosed(labels, { sent: e.bytesSent, received: e.bytesReceived });
          this.#opts.log.info(
            {
              ...access,
              bytesSent: e.bytesSent,
              bytesReceived: e.bytesReceived,
              durationMs: Math.round(e.durationMs),
              status: e.status,
              ...(e.error ? { error: e.error } : {}),
            },
            "connection closed",
          );
        }
      },
      log: opts.log,
    });
  }

  /** A workload by IP: the controller's record, else this node's own pod as the agent watches it. */
  #workloadAt(ip: string): Workload | undefined {
    return this.#opts.index.workloadByIp(ip) ?? this.#opts.localWorkload?.(ip);
  }

  /**
   * The client's address of an HBONE stream: the connection's peer address (dialled from the source pod, so it
   * is that pod's address), never one the client merely claims; and when the address is a known workload, the
   * peer must hold that workload's identity, or a certificate holder could borrow another pod's address.
   */
  #sourceAddress(peer: SpiffeId, peerAddress: string | undefined, claimed: string | undefined): SourceAddressResult {
    const origin = peerAddressOnly(peer, peerAddress, claimed);
    if (!("address" in origin) || origin.address === undefined) return origin;
    const owner = this.#workloadAt(origin.address);
    if (owner && !sameIdentity(identityOf(owner, this.#opts.trustDomain), peer)) {
      return {
        refused: `source address ${origin.address} belongs to ${owner.namespace}/${owner.name} (${formatSpiffeId(identityOf(owner, this.#opts.trustDomain))}), not to the peer's identity ${formatSpiffeId(peer)}`,
      };
    }
    return origin;
  }

  /**
   * L4 policy of a local destination. An address neither the controller nor this agent knows as a workload is
   * refused (fail closed: its policy cannot be known); delivery itself only reaches pods whose netns this agent
   * holds. `audit` logs the AUDIT policies a new connection matches (not when live connections are re-checked).
   */
  #authorize(source: Pick<InboundAttributes, "source" | "sourceIp">, destination: { ip: string; port: number }, audit = false): Authorization {
    const workload = this.#workloadAt(destination.ip);
    if (!workload) return { allow: false, reason: `${destination.ip} is not a known workload, so its policy cannot be checked` };
    if (!this.#opts.policy) return { allow: true };
    const decision = this.#opts.policy.check({ ...source, destination: workload, destinationIp: destination.ip, destinationPort: destination.port });
    if (audit && decision.audit?.length) {
      this.#opts.log.info(
        {
          event: "audit",
          policies: decision.audit,
          allowed: decision.allowed,
          src: { identity: source.source ? formatSpiffeId(source.source) : undefined, ip: source.sourceIp },
          dst: { workload: workload.workloadName, namespace: workload.namespace, ip: destination.ip, port: destination.port },
        },
        "connection matched an AUDIT policy",
      );
    }
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
    let closed = this.#server.revoke((t) => reasonFor({ source: t.source, ...(t.sourceAddress ? { sourceIp: t.sourceAddress } : {}) }, t.destination));
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

  /**
   * Opens the connection to a local pod's app from inside that pod's netns, marked so it is not captured. Never
   * to one of the agent's own in-pod ports, whatever asked: that would reach the agent's listener again.
   */
  #deliver(ip: string, port: number): Promise<net.Socket> {
    const refusal = agentPortRefusal(port);
    if (refusal) return Promise.reject(new OutboundFailure("AMBIT_E_AGENT_PORT", refusal, { status: 400, refusal: "agent_port" }));
    const netns = this.#opts.localPodNetns(ip);
    if (!netns) return Promise.reject(new Error(`${ip} is not a pod on this node`));
    return connectMarked(ip, port, AGENT_SOCKET_MARK, netns);
  }

  /** HBONE leaves from the source pod's netns, with its address: the destination reads the client's address from it. */
  #dialHbone(host: string, port: number, req: OpenStreamRequest): Promise<net.Socket> {
    const netns = req.sourceAddress ? this.#opts.localPodNetns(req.sourceAddress) : undefined;
    if (this.#opts.hboneConnect) return this.#opts.hboneConnect(host, port, netns);
    if (!netns) return Promise.reject(new Error(`no netns is known for the source pod ${req.sourceAddress ?? "(no address)"}`));
    return connectMarked(host, port, AGENT_SOCKET_MARK, netns, this.#opts.hboneConnectTimeoutMs ?? 5_000);
  }

  outbound(conn: CapturedConnection): void {
    this.#activeCaptured++;
    // Never rejects: past the pure planning, every failure is answered inside (metrics, log, socket destroyed).
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
    const sourceId = identityOf(source, this.#opts.trustDomain);
    const plan = planOutbound(this.#opts.index, {
      originalDestination,
      listenerAddress: socket.localAddress && socket.localPort ? { address: socket.localAddress.replace(/^::ffff:/, ""), port: socket.localPort } : undefined,
      nodeName: this.#opts.nodeName,
      isLocalPod: (ip) => this.#opts.localPodNetns(ip) !== undefined,
      inPodNetwork: (ip) => this.#opts.index.inPodNetwork(ip),
    });
    // A field rather than a child logger: one fewer object per connection, for the life of the connection.
    const podName = `${pod.namespace}/${pod.name}`;
    const log = this.#opts.log;
    const labels: TcpLabels = {
      reporter: "source",
      source_workload: source.workloadName,
      source_workload_namespace: source.namespace,
      source_principal: formatSpiffeId(sourceId),
    };
    try {
      const { upstream, asDestination, untrack } = await this.#openUpstream(plan, { pod, socket, source, sourceId, labels });
      const carried: Carried = {
        labels,
        asDestination,
        pod: podName,
        srcIp: pod.ips[0],
        dst: { ip: originalDestination.address, port: originalDestination.port },
        opened: performance.now(),
        untrack,
        destinationView: false,
      };
      this.#opts.metrics.connectionOpened(labels);
      log.info({ pod: podName, ...accessRecord(labels, carried.srcIp, carried.dst) }, "connection opened");
      // Same node: no HBONE server sees the connection, so this agent also writes the destination's lines
      // (as it reports both in metrics); they name the pod and port actually reached, as an HBONE server would.
      const d = carried.asDestination;
      if (d) {
        this.#opts.metrics.connectionOpened(d.labels);
        log.info({ pod: d.pod, ...accessRecord(d.labels, carried.srcIp, d) }, "connection opened");
      }
      socket.resume();
      // This function ends here: what the connection needs until it closes is `carried`, not this frame.
      const counts = relay(socket, upstream, (result) => this.#closed(carried, result));
      // An HBONE stream's bytes in the admin API are this relay's own counts (other upstreams are not the pool's).
      this.#pool.countBytes(upstream, counts);
    } catch (err) {
      const e = err as OutboundFailure | HboneError;
      labels.response_flags = e.status === 401 ? "DENIED" : "UF";
      this.#opts.metrics.connectionOpened(labels);
      this.#opts.metrics.connectionClosed(labels, { sent: 0, received: 0 });
      const refusal = e instanceof OutboundFailure ? e.refusal : undefined;
      if (refusal) this.#opts.metrics.connectionsRefused.inc({ direction: "outbound", reason: refusal });
      log.warn(
        { pod: podName, dst: originalDestination, err: e.message, code: e.code },
        refusal ? "outbound connection refused" : "outbound connection failed",
      );
      socket.destroy();
      this.#activeCaptured--;
    }
  }

  /** Opens the upstream side of an outbound connection as planned, filling in the destination's labels. */
  async #openUpstream(
    plan: OutboundPlan,
    c: { pod: PodRef; socket: net.Socket; source: Workload; sourceId: SpiffeId; labels: TcpLabels },
  ): Promise<{ upstream: Duplex; asDestination: Carried["asDestination"]; untrack: () => void }> {
    const none = { asDestination: undefined, untrack: () => {} };
    const { labels } = c;
    switch (plan.route) {
      case "refuse":
        if (plan.workload) Object.assign(labels, this.#destinationLabels(plan.workload));
        throw new OutboundFailure(
          plan.refusal === "no_endpoint" ? "AMBIT_E_NO_ENDPOINT" : plan.refusal === "self_connect" ? "AMBIT_E_SELF_CONNECT" : "AMBIT_E_AGENT_PORT",
          plan.reason,
          { refusal: plan.refusal },
        );
      case "same-node": {
        // Same node: both ends are this agent's, so no TLS; the destination's policy still decides.
        Object.assign(labels, this.#destinationLabels(plan.workload), { connection_security_policy: "mutual_tls" });
        const attributes: InboundAttributes = {
          source: c.sourceId,
          sourceIp: c.source.ip,
          destination: plan.workload,
          destinationIp: plan.workload.ip,
          destinationPort: plan.port,
        };
        const decision = this.#authorize(attributes, { ip: plan.workload.ip, port: plan.port }, true);
        if (!decision.allow) throw new OutboundFailure("AMBIT_E_POLICY_DENIED", `denied by policy: ${decision.reason}`, { status: 401 });
        const upstream = await this.#deliver(plan.workload.ip, plan.port);
        return {
          upstream,
          asDestination: {
            labels: { ...labels, reporter: "destination" },
            pod: `${plan.workload.namespace}/${plan.workload.name}`,
            ip: plan.workload.ip,
            port: plan.port,
          },
          untrack: this.#trackInbound(attributes, c.socket, upstream),
        };
      }
      case "hbone":
        Object.assign(labels, this.#destinationLabels(plan.workload), { connection_security_policy: "mutual_tls" });
        return { ...none, upstream: await this.#openHbone(c, plan.workload.ip, plan.port, identityOf(plan.workload, this.#opts.trustDomain)) };
      case "hbone-probe": {
        // No config names this address yet, but it is in the pod network: if an agent answers on its HBONE port
        // the pod is captured and the bytes go inside mTLS (any identity the trust bundle vouches for, as none
        // is known to expect); only a refused TCP connect (nothing listens: not captured) falls back to plaintext.
        try {
          const stream = await this.#openHbone(c, plan.ip, plan.port, undefined);
          const peer = this.#pool.peerOf(stream);
          Object.assign(labels, {
            connection_security_policy: "mutual_tls",
            ...(peer ? { destination_principal: formatSpiffeId(peer), destination_workload_namespace: peer.namespace } : {}),
          });
          return { ...none, upstream: stream };
        } catch (err) {
          if (!(err instanceof HboneError) || !err.connectRefused) throw err;
        }
        labels.connection_security_policy = "none";
        return { ...none, upstream: await connectMarked(plan.ip, plan.port, AGENT_SOCKET_MARK, c.pod.netnsPath) };
      }
      case "passthrough":
        if (plan.workload) Object.assign(labels, this.#destinationLabels(plan.workload));
        labels.connection_security_policy = "none";
        return { ...none, upstream: await connectMarked(plan.ip, plan.port, AGENT_SOCKET_MARK, c.pod.netnsPath) };
    }
  }

  /** A stream to the destination pod's HBONE port, dialled from the source pod's netns so it leaves with the pod's address. */
  #openHbone(c: { source: Workload; sourceId: SpiffeId }, ip: string, port: number, expectedIdentity: SpiffeId | undefined): Promise<Duplex> {
    return this.#pool.openStream({
      source: c.sourceId,
      sourceAddress: c.source.ip,
      destination: { ip, port },
      dial: { host: ip, port: PORTS.hbone },
      ...(expectedIdentity ? { expectedIdentity } : {}),
    });
  }

  /** A carried connection closed: its metrics and closing log lines, from what it kept. */
  #closed(c: Carried, result: RelayCounts): void {
    this.#activeCaptured--;
    c.untrack();
    const durationMs = Math.round(performance.now() - c.opened);
    const failure = result.error ? { error: result.error } : {};
    // a = the captured client's socket, b = towards the app: the client sent aToB and received bToA.
    const asked = result.aToB;
    const answered = result.bToA;
    this.#opts.metrics.connectionClosed(c.labels, { sent: answered, received: asked });
    if (c.destinationView) {
      this.#opts.log.info(
        { pod: c.pod, ...accessRecord(c.labels, c.srcIp, c.dst), bytesSent: answered, bytesReceived: asked, durationMs, status: 200, ...failure },
        "connection closed",
      );
      return;
    }
    this.#opts.log.info(
      { pod: c.pod, ...accessRecord(c.labels, c.srcIp, c.dst), bytesSent: asked, bytesReceived: answered, durationMs, ...failure },
      "connection closed",
    );
    const d = c.asDestination;
    if (!d) return;
    this.#opts.metrics.connectionClosed(d.labels, { sent: answered, received: asked });
    // The destination's view, as the HBONE server logs it: sent = answered, received = asked.
    this.#opts.log.info(
      { pod: d.pod, ...accessRecord(d.labels, c.srcIp, d), bytesSent: answered, bytesReceived: asked, durationMs, status: 200, ...failure },
      "connection closed",
    );
  }

  /**
   * Plaintext from outside the mesh: delivered unless policy (STRICT peer authentication, or a rule) refuses it,
   * and reported like any other connection (access log lines, Istio series with `connection_security_policy`
   * none). Never delivered to the agent's own in-pod ports.
   */
  inboundPlaintext(conn: CapturedConnection): void {
    const destination = { ip: conn.originalDestination.address, port: conn.originalDestination.port };
    const sourceIp = conn.socket.remoteAddress?.replace(/^::ffff:/, "");
    const workload = this.#workloadAt(destination.ip);
    const source = sourceIp ? this.#opts.index.workloadByIp(sourceIp) : undefined;
    const labels: TcpLabels = {
      reporter: "destination",
      ...(source ? { source_workload: source.workloadName, source_workload_namespace: source.namespace } : {}),
      ...(workload ? this.#destinationLabels(workload) : {}),
      connection_security_policy: "none",
    };
    const pod = workload ? `${workload.namespace}/${workload.name}` : `${conn.pod.namespace}/${conn.pod.name}`;
    const refusal = agentPortRefusal(destination.port);
    const decision = refusal ? ({ allow: false, reason: refusal } as const) : this.#authorize(sourceIp ? { sourceIp } : {}, destination, true);
    if (!decision.allow) {
      labels.response_flags = refusal ? "UF" : "DENIED";
      this.#opts.metrics.connectionOpened(labels);
      this.#opts.metrics.connectionClosed(labels, { sent: 0, received: 0 });
      if (refusal) this.#opts.metrics.connectionsRefused.inc({ direction: "inbound", reason: "agent_port" });
      this.#opts.log.info(
        { pod, ...accessRecord(labels, sourceIp, destination), reason: decision.reason },
        refusal ? "connection refused" : "connection denied by policy",
      );
      conn.socket.destroy();
      return;
    }
    this.#activeCaptured++;
    this.#deliver(destination.ip, destination.port).then(
      (upstream) => {
        const untrack = workload
          ? this.#trackInbound(
              { ...(sourceIp ? { sourceIp } : {}), destination: workload, destinationIp: destination.ip, destinationPort: destination.port },
              conn.socket,
              upstream,
            )
          : () => {};
        const carried: Carried = {
          labels,
          asDestination: undefined,
          pod,
          srcIp: sourceIp,
          dst: destination,
          opened: performance.now(),
          untrack,
          destinationView: true,
        };
        this.#opts.metrics.connectionOpened(labels);
        this.#opts.log.info({ pod, ...accessRecord(labels, sourceIp, destination) }, "connection opened");
        relay(conn.socket, upstream, (result) => this.#closed(carried, result));
      },
      (err: Error) => {
        this.#activeCaptured--;
        labels.response_flags = "UF";
        this.#opts.metrics.connectionOpened(labels);
        this.#opts.metrics.connectionClosed(labels, { sent: 0, received: 0 });
        this.#opts.log.warn({ pod, ...accessRecord(labels, sourceIp, destination), err: err.message }, "inbound connection failed");
        conn.socket.destroy();
      },
    );
  }

  /** Remembers a connection this agent delivers itself, so `revalidate` can close it; returns the forget function. */
  #trackInbound(attributes: InboundAttributes, client: net.Socket, upstream: net.Socket): () => void {
    const live: LiveInbound = {
      attributes,
      close: (reason) => {
        this.#liveInbound.delete(live);
        this.#opts.log.warn(
          {
            event: "connection",
            reporter: "destination",
            src: { identity: attributes.source ? formatSpiffeId(attributes.source) : undefined, ip: attributes.sourceIp },
            dst: { ip: attributes.destinationIp, port: attributes.destinationPort },
            reason,
          },
          "live connection closed: policy now denies it",
        );
        upstream.destroy();
        client.destroy();
      },
    };
    this.#liveInbound.add(live);
    return () => this.#liveInbound.delete(live);
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
    const nodeOf = (address: string) => this.#workloadAt(address.replace(/:\d+$/, ""))?.node;
    const podAt = (ip: string) => {
      const w = this.#workloadAt(ip);
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
