// What the data path is given: this node, the workload index, identities, policy, metrics and how it dials.
import type net from "node:net";
import type { Logger } from "pino";
import type { Credentials, SpiffeId } from "../identity/index.ts";
import type { AgentMetrics } from "../metrics/index.ts";
import type { Workload, WorkloadIndex } from "../state/index.ts";
import type { InboundPolicy } from "./plan.ts";

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
