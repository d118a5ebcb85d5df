// Where a captured connection goes, decided without I/O: the route for outbound, or why a connection is refused.
import { PORTS } from "../config.ts";
import { type Workload, type WorkloadIndex, resolveDestination } from "../state/index.ts";

/**
 * Ports the agent itself listens on inside every captured pod. Traffic to them is never mesh traffic: delivering
 * it would reach the agent's own listener, which would deliver it again (one connect to <pod>:15006 used to
 * loop until the agent ran out of file descriptors).
 */
export const AGENT_POD_PORTS: ReadonlySet<number> = new Set([PORTS.outbound, PORTS.inboundPlaintext, PORTS.hbone]);

/** Why the agent refuses a connection before any policy runs (the `reason` label of `ambit_connections_refused_total`). */
export type Refusal = "self_connect" | "agent_port" | "no_endpoint" | "source_address";

export type OutboundPlan =
  /** A captured pod on this node: delivered from inside its netns, the destination's policy checked here. */
  | { route: "same-node"; workload: Workload; port: number }
  /** A captured pod elsewhere: a stream on the pooled HBONE connection to its node's agent. */
  | { route: "hbone"; workload: Workload; port: number }
  /**
   * An address of the pod network no config names yet (a pod newer than this agent's last config, e.g. while the
   * controller is down): HBONE first, plaintext only if nothing listens on its HBONE port.
   */
  | { route: "hbone-probe"; ip: string; port: number }
  /** Outside the mesh (or a pod that is not captured): a marked plain connection from the source pod. */
  | { route: "passthrough"; ip: string; port: number; workload?: Workload; reason: string }
  | { route: "refuse"; refusal: Refusal; reason: string; workload?: Workload };

export interface OutboundFacts {
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
  random?: () => number;
}

/** The refusal for a destination port that is the agent's own in captured pods, or undefined. */
export function agentPortRefusal(port: number): string | undefined {
  return AGENT_POD_PORTS.has(port)
    ? `port ${port} is the mesh agent's own inside captured pods (outbound 15001, inbound 15006, HBONE 15008); nothing may be delivered to it`
    : undefined;
}

export function planOutbound(index: WorkloadIndex, facts: OutboundFacts): OutboundPlan {
  const { address, port } = facts.originalDestination;
  const listener = facts.listenerAddress;
  if (listener && listener.address === address && listener.port === port) {
    return { route: "refuse", refusal: "self_connect", reason: `the connection was made to the agent's own listener ${address}:${port}, not redirected to it` };
  }
  const dst = resolveDestination(index, address, port, facts.random);
  if (dst.kind === "no-endpoint")
    return {
      route: "refuse",
      refusal: "no_endpoint",
      reason: `service ${dst.service.namespace}/${dst.service.name} has no ready endpoint for port ${dst.port}`,
    };
  if (dst.kind === "passthrough") {
    if (facts.inPodNetwork(dst.ip)) return { route: "hbone-probe", ip: dst.ip, port: dst.port };
    return { route: "passthrough", ip: dst.ip, port: dst.port, reason: dst.reason };
  }
  const w = dst.workload;
  if (!w.captured) return { route: "passthrough", ip: w.ip, port: dst.port, workload: w, reason: `pod ${w.namespace}/${w.name} is not captured by the mesh` };
  const portRefusal = agentPortRefusal(dst.port);
  if (portRefusal) return { route: "refuse", refusal: "agent_port", reason: portRefusal, workload: w };
  if (w.node === facts.nodeName && facts.isLocalPod(w.ip)) return { route: "same-node", workload: w, port: dst.port };
  return { route: "hbone", workload: w, port: dst.port };
}
