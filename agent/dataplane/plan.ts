// Where a captured connection goes and who its ends are, decided without I/O: the outbound route, the inbound verdict.
import { PORTS } from "../config.ts";
import type { PodRef } from "../enrollment/index.ts";
import { type SpiffeId, formatSpiffeId, sameIdentity } from "../identity/index.ts";
import type { SourceAddressResult } from "../hbone/index.ts";
import { peerAddressOnly } from "../hbone/index.ts";
import { type Workload, type WorkloadIndex, resolveDestination } from "../state/index.ts";
import { WAYPOINT_LISTENER, type WaypointRef, waypointIdentity, waypointKey } from "../../contract/waypoint.ts";

/**
 * Ports the agent itself listens on inside every captured pod. Traffic to them is never mesh traffic: delivering
 * it would reach the agent's own listener, which would deliver it again (one connect to <pod>:15006 used to
 * loop until the agent ran out of file descriptors).
 */
export const AGENT_POD_PORTS: ReadonlySet<number> = new Set([PORTS.outbound, PORTS.inboundPlaintext, PORTS.hbone]);

/** Why the agent refuses a connection before any policy runs (the `reason` label of `ambit_connections_refused_total`). */
export type Refusal = "self_connect" | "agent_port" | "no_endpoint" | "no_waypoint" | "source_address";

/** How a connection crosses the network (Istio's `connection_security_policy`). */
export type Security = "mutual_tls" | "none";

/** One end of a connection as far as it is known: its workload, the identity it holds, its address. */
export interface Endpoint {
  workload?: Workload;
  identity?: SpiffeId;
  ip?: string;
}

/** Who a connection joins and how it is carried: what its metric labels and access log lines report. */
export interface ConnectionEnds {
  source: Endpoint;
  /** `ip` and `port` are the address the connection was made to, as its reporter saw it (outbound: maybe a ClusterIP). */
  destination: Endpoint & { ip: string; port: number };
  /** Absent until known: a refused connection never got that far, an HBONE probe learns it by trying. */
  security?: Security;
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

/** AUDIT policies a new connection matched, with what was decided about it: logged, never part of the decision. */
export interface AuditMatch {
  policies: string[];
  allowed: boolean;
  attributes: InboundAttributes;
}

/** A decision on an inbound connection, with the AUDIT policies it matched when there are any. */
export interface InboundVerdict {
  allowed: boolean;
  reason: string;
  audit?: AuditMatch;
}

/** The identity a workload's certificate carries. */
export const identityOf = (w: Workload, trustDomain: string): SpiffeId => ({ trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount });

/** Refusals the outbound planner makes (a claimed source address is an HBONE server's refusal). */
export type OutboundRefusal = Exclude<Refusal, "source_address">;

/** The ends of an outbound connection: its source is always a known pod of this node, with its identity and address. */
export type OutboundEnds = ConnectionEnds & { source: Required<Endpoint> };

export type OutboundPlan = OutboundEnds &
  (
    | {
        /**
         * A captured pod on this node, delivered from inside its netns; the destination's policy allowed it here.
         * `inbound` is what that policy decided on (kept to check the connection again when policy changes), and
         * `asDestination` what this agent reports as the destination, since no HBONE server sees the connection.
         */
        route: "same-node";
        workload: Workload;
        port: number;
        inbound: InboundAttributes;
        asDestination: ConnectionEnds;
        audit?: AuditMatch;
      }
    /**
     * Bound to a waypoint: a stream to a waypoint pod's HBONE port, addressed to what the client dialled (the Service
     * VIP or pod IP and port, the destination's `ip`/`port`), so the waypoint routes it; the pod must be the waypoint.
     */
    | { route: "waypoint"; waypoint: WaypointRef; dial: { ip: string; port: number }; expectedIdentity: SpiffeId }
    /** A captured pod elsewhere: a stream on the pooled HBONE connection to its node's agent, which must be `expectedIdentity`. */
    | { route: "hbone"; workload: Workload; port: number; expectedIdentity: SpiffeId }
    /**
     * An address of the pod network no config names yet (a pod newer than this agent's last config, e.g. while the
     * controller is down): HBONE first, plaintext only if nothing listens on its HBONE port.
     */
    | { route: "hbone-probe"; ip: string; port: number }
    /** Outside the mesh (or a pod that is not captured): a marked plain connection from the source pod. */
    | { route: "passthrough"; ip: string; port: number; workload?: Workload; reason: string }
    /** Refused before any policy: nothing is opened. */
    | { route: "refuse"; refusal: OutboundRefusal; reason: string; workload?: Workload }
    /** A same-node destination whose policy denies the source (answered as an HBONE server answers 401). */
    | { route: "deny"; reason: string; workload: Workload; audit?: AuditMatch }
  );

export interface OutboundFacts {
  /** The pod that opened the connection, as the index knows it (see `outboundSource`). */
  source: Workload;
  trustDomain: string;
  /** Where the pod was connecting (SO_ORIGINAL_DST). */
  originalDestination: { address: string; port: number };
  /**
   * The address the connection arrived on. Equal to the original destination when nothing redirected it: the pod
   * dialled the agent's listener itself (e.g. 127.0.0.1:15001), and sending it on would reach that listener again.
   */
  listenerAddress: { address: string; port: number } | undefined;
  nodeName: string;
  /** Whether this agent holds the pod at `ip` (it has the pod's netns). */
  isLocalPod(ip: string): boolean;
  /** Whether `ip` belongs to the cluster's pod network. */
  inPodNetwork(ip: string): boolean;
  /** L4 policy of local destinations (same-node path); without one every authenticated peer is allowed. */
  policy?: InboundPolicy;
  random?: () => number;
}

/**
 * The source of an outbound connection: the index's record of the pod, or the pod as the agent captured it, since
 * a pod captured a moment ago may not be in the controller's view yet and its traffic must still leave inside mTLS.
 */
export function outboundSource(index: WorkloadIndex, pod: PodRef, nodeName: string): Workload {
  return (
    index.workloadByIp(pod.ips[0] ?? "") ?? {
      uid: pod.uid,
      namespace: pod.namespace,
      name: pod.name,
      workloadName: pod.name,
      serviceAccount: pod.serviceAccount,
      node: nodeName,
      ip: pod.ips[0] ?? "",
      captured: true,
      labels: {},
    }
  );
}

/** The refusal for a destination port that is the agent's own in captured pods, or undefined. */
export function agentPortRefusal(port: number): string | undefined {
  return AGENT_POD_PORTS.has(port)
    ? `port ${port} is the mesh agent's own inside captured pods (outbound 15001, inbound 15006, HBONE 15008); nothing may be delivered to it`
    : undefined;
}

export function planOutbound(index: WorkloadIndex, facts: OutboundFacts): OutboundPlan {
  const { address, port } = facts.originalDestination;
  const { source, trustDomain } = facts;
  const sourceEnd: Required<Endpoint> = { workload: source, identity: identityOf(source, trustDomain), ip: source.ip };
  const ends = (workload: Workload | undefined, security: Security | undefined): OutboundEnds => ({
    source: sourceEnd,
    destination: { ...(workload ? { workload, identity: identityOf(workload, trustDomain) } : {}), ip: address, port },
    ...(security ? { security } : {}),
  });
  const listener = facts.listenerAddress;
  if (listener && listener.address === address && listener.port === port) {
    return {
      ...ends(undefined, undefined),
      route: "refuse",
      refusal: "self_connect",
      reason: `the connection was made to the agent's own listener ${address}:${port}, not redirected to it`,
    };
  }
  const dst = resolveDestination(index, address, port, facts.random);
  if (dst.kind === "no-endpoint")
    return {
      ...ends(undefined, undefined),
      route: "refuse",
      refusal: "no_endpoint",
      reason: `service ${dst.service.namespace}/${dst.service.name} has no ready endpoint for port ${dst.port}`,
    };
  if (dst.kind === "waypoint") return planWaypoint(index, dst.waypoint, ends(dst.workload, undefined), trustDomain, facts.random);
  if (dst.kind === "passthrough") {
    if (facts.inPodNetwork(dst.ip)) return { ...ends(undefined, undefined), route: "hbone-probe", ip: dst.ip, port: dst.port };
    return { ...ends(undefined, "none"), route: "passthrough", ip: dst.ip, port: dst.port, reason: dst.reason };
  }
  const w = dst.workload;
  if (!w.captured)
    return {
      ...ends(w, "none"),
      route: "passthrough",
      ip: w.ip,
      port: dst.port,
      workload: w,
      reason: `pod ${w.namespace}/${w.name} is not captured by the mesh`,
    };
  const portRefusal = agentPortRefusal(dst.port);
  if (portRefusal) return { ...ends(w, undefined), route: "refuse", refusal: "agent_port", reason: portRefusal, workload: w };
  if (w.node === facts.nodeName && facts.isLocalPod(w.ip)) {
    // Same node: both ends are this agent's, so no TLS; the destination's policy still decides.
    const inbound: InboundAttributes = { source: sourceEnd.identity, sourceIp: source.ip, destination: w, destinationIp: w.ip, destinationPort: dst.port };
    const decision = decideInbound(facts.policy, w, inbound);
    const audit = decision.audit ? { audit: decision.audit } : {};
    if (!decision.allowed) return { ...ends(w, "mutual_tls"), route: "deny", reason: decision.reason, workload: w, ...audit };
    const reached = ends(w, "mutual_tls");
    return {
      ...reached,
      route: "same-node",
      workload: w,
      port: dst.port,
      inbound,
      asDestination: { ...reached, destination: { ...reached.destination, ip: w.ip, port: dst.port } },
      ...audit,
    };
  }
  return { ...ends(w, "mutual_tls"), route: "hbone", workload: w, port: dst.port, expectedIdentity: identityOf(w, trustDomain) };
}

/**
 * The waypoint route: one ready pod of the waypoint's Service, on its HBONE port. A waypoint that does not exist, or
 * has no ready pod, refuses the connection (fail closed): the destination asked for L7 policy, and going around the
 * waypoint would skip it.
 */
function planWaypoint(index: WorkloadIndex, waypoint: WaypointRef, ends: OutboundEnds, trustDomain: string, random: () => number = Math.random): OutboundPlan {
  const name = waypointKey(waypoint);
  const target = `${ends.destination.ip}:${ends.destination.port}`;
  const service = index.serviceByName(waypoint.namespace, waypoint.name);
  if (!service)
    return { ...ends, route: "refuse", refusal: "no_waypoint", reason: `${target} is bound to waypoint ${name}, which does not exist (no Service ${name})` };
  const ready = (service.ports.get(WAYPOINT_LISTENER.port) ?? []).filter((e) => e.ready);
  if (ready.length === 0)
    return {
      ...ends,
      route: "refuse",
      refusal: "no_waypoint",
      reason: `${target} is bound to waypoint ${name}, which has no ready pod on port ${WAYPOINT_LISTENER.port}`,
    };
  const pick = ready[Math.floor(random() * ready.length)]!;
  return {
    ...ends,
    security: "mutual_tls",
    route: "waypoint",
    waypoint,
    dial: { ip: pick.ip, port: pick.port },
    expectedIdentity: waypointIdentity(waypoint, trustDomain),
  };
}

/**
 * L4 policy of a local destination. An address neither the controller nor this agent knows as a workload is
 * refused (fail closed: its policy cannot be known); delivery itself only reaches pods whose netns the agent holds.
 */
export function decideInbound(
  policy: InboundPolicy | undefined,
  workload: Workload | undefined,
  attributes: Omit<InboundAttributes, "destination">,
): InboundVerdict {
  if (!workload) return { allowed: false, reason: `${attributes.destinationIp} is not a known workload, so its policy cannot be checked` };
  // A pod bound to a waypoint takes traffic only from it: anything else would skip the L7 policy and routes it asked for.
  const waypoint = workload.waypoint;
  if (waypoint && !(attributes.source && attributes.source.namespace === waypoint.namespace && attributes.source.serviceAccount === waypoint.name))
    return {
      allowed: false,
      reason: `${workload.namespace}/${workload.name} is bound to waypoint ${waypointKey(waypoint)} and accepts traffic only from it, not from ${attributes.source ? formatSpiffeId(attributes.source) : "a plaintext client"}`,
    };
  if (!policy) return { allowed: true, reason: "no policy" };
  const full = { ...attributes, destination: workload };
  const { allowed, reason, audit } = policy.check(full);
  return { allowed, reason, ...(audit?.length ? { audit: { policies: audit, allowed, attributes: full } } : {}) };
}

export interface InboundFacts {
  /** The peer's proven identity (HBONE); absent for plaintext. */
  source?: SpiffeId;
  sourceIp?: string;
  destination: { ip: string; port: number };
  /** A workload by IP: the controller's record, else this node's own pod as the agent watches it. */
  workloadAt(ip: string): Workload | undefined;
  trustDomain: string;
  policy?: InboundPolicy;
}

export type InboundPlan = ConnectionEnds &
  (
    | { route: "deliver"; workload: Workload; inbound: InboundAttributes; audit?: AuditMatch }
    | { route: "refuse"; refusal: "agent_port"; reason: string }
    | { route: "deny"; reason: string; audit?: AuditMatch }
  );

/**
 * Who an inbound connection joins, as its destination reports it: the source's workload only from the controller's
 * view (its labels are the controller's), the destination's from the agent's own watch too.
 */
export function inboundEnds(index: WorkloadIndex, facts: Omit<InboundFacts, "policy">, security: Security): ConnectionEnds {
  const workload = facts.workloadAt(facts.destination.ip);
  const sourceWorkload = facts.sourceIp ? index.workloadByIp(facts.sourceIp) : undefined;
  return {
    source: {
      ...(sourceWorkload ? { workload: sourceWorkload } : {}),
      ...(facts.source ? { identity: facts.source } : {}),
      ...(facts.sourceIp ? { ip: facts.sourceIp } : {}),
    },
    destination: { ...(workload ? { workload, identity: identityOf(workload, facts.trustDomain) } : {}), ...facts.destination },
    security,
  };
}

/** A plaintext connection captured on its way into a local pod: refused (the agent's own ports), denied, or delivered. */
export function planInbound(index: WorkloadIndex, facts: InboundFacts): InboundPlan {
  const ends = inboundEnds(index, facts, facts.source ? "mutual_tls" : "none");
  const refusal = agentPortRefusal(facts.destination.port);
  if (refusal) return { ...ends, route: "refuse", refusal: "agent_port", reason: refusal };
  const attributes = {
    ...(facts.source ? { source: facts.source } : {}),
    ...(facts.sourceIp ? { sourceIp: facts.sourceIp } : {}),
    destinationIp: facts.destination.ip,
    destinationPort: facts.destination.port,
  };
  const workload = ends.destination.workload;
  const decision = decideInbound(facts.policy, workload, attributes);
  const audit = decision.audit ? { audit: decision.audit } : {};
  if (!decision.allowed || !workload) return { ...ends, route: "deny", reason: decision.reason, ...audit };
  return { ...ends, route: "deliver", workload, inbound: { ...attributes, destination: workload }, ...audit };
}

/**
 * The client's address of an HBONE stream: the connection's peer address (dialled from the source pod, so it
 * is that pod's address), never one the client merely claims; and when the address is a known workload, the
 * peer must hold that workload's identity, or a certificate holder could borrow another pod's address.
 */
export function hboneSourceAddress(
  workloadAt: (ip: string) => Workload | undefined,
  trustDomain: string,
  peer: SpiffeId,
  peerAddress: string | undefined,
  claimed: string | undefined,
): SourceAddressResult {
  const origin = peerAddressOnly(peer, peerAddress, claimed);
  if (!("address" in origin) || origin.address === undefined) return origin;
  const owner = workloadAt(origin.address);
  if (owner && !sameIdentity(identityOf(owner, trustDomain), peer)) {
    return {
      refused: `source address ${origin.address} belongs to ${owner.namespace}/${owner.name} (${formatSpiffeId(identityOf(owner, trustDomain))}), not to the peer's identity ${formatSpiffeId(peer)}`,
    };
  }
  return origin;
}
