// Wire contract of the agent's admin API (127.0.0.1:15000) as the CLI reads it: GET /tunnels and GET /config_dump.
import { AGENT_PORTS } from "./install.ts";
import type { Workload } from "./mesh.ts";
import type { WaypointRef } from "./waypoint.ts";

export const AGENT_ADMIN_PORT = AGENT_PORTS.admin;

/** One CONNECT stream of an HBONE connection: one tunnelled TCP connection. */
export interface HboneStreamInfo {
  /** The local pod the stream serves (`namespace/name`): the source outbound, the destination inbound. */
  localWorkload?: string;
  sourceIdentity: string;
  destinationIdentity?: string;
  /** The `:authority` of the CONNECT: the destination pod's `ip:port`. */
  destinationAddress: string;
  /** From this agent's side: sent into the tunnel, received from it. */
  bytesSent: number;
  bytesReceived: number;
  ageSeconds: number;
}

/** One HBONE (mTLS HTTP/2) connection between two agents. */
export interface HboneConnectionInfo {
  /** outbound: opened by this agent's client pool; inbound: accepted by its HBONE server. */
  direction: "outbound" | "inbound";
  localNode?: string;
  /** `ip:port` of each end of the TCP connection (outbound: the source pod's address; inbound: the destination pod's :15008). */
  localAddress: string;
  peerAddress: string;
  /** The peer's node when its address is a known workload. */
  peerNode?: string;
  /** SPIFFE IDs of the certificates each end presented. */
  localIdentity?: string;
  peerIdentity?: string;
  tlsVersion: string;
  cipher: string;
  streamsOpen: number;
  streamsTotal: number;
  /** Sum over its streams, open and closed, from this agent's side. */
  bytesSent: number;
  bytesReceived: number;
  openedAt: string;
  ageSeconds: number;
  /** Open streams (absent when asked for without them). */
  streams?: HboneStreamInfo[];
}

/** GET /tunnels. */
export interface TunnelsDump {
  node: string;
  connections: HboneConnectionInfo[];
}

/** One certificate of a held identity's chain, leaf first. */
export interface CertificateChainEntry {
  type: "leaf" | "intermediate" | "root";
  /** Lowercase hex, as `openssl x509 -serial` prints it (without the colons). */
  serialNumber: string;
  notBefore: string;
  notAfter: string;
}

/** `certificates[]` of GET /config_dump: an identity this agent holds a certificate for. */
export interface CertificateSummary {
  identity: string;
  notAfter: string;
  notBefore?: string;
  chain: CertificateChainEntry[];
}

/** Which controller version an agent applied, and whether it still hears from the controller. */
export interface ConfigStaleness {
  connected: boolean;
  lastUpdateAt?: string;
  disconnectedSince?: string;
  version: number;
  epoch?: string;
  failures: number;
  lastError?: string;
}

/** The parts of GET /config_dump the CLI reads (the agent sends more). */
export interface ConfigDump {
  node: string;
  controller: ConfigStaleness;
  /** The agent's workload index as the controller streamed it (contract/mesh.ts), labels aside. */
  workloads: Array<Omit<Workload, "labels">>;
  services: Array<{
    namespace: string;
    name: string;
    clusterIP: string;
    waypoint?: WaypointRef;
    ports: Record<string, Array<{ ip: string; port: number; ready: boolean }>>;
    /** Service port -> declared protocol (appProtocol or the port name's prefix), for ports that declare one. */
    appProtocols?: Record<string, string>;
  }>;
  policies: {
    authorizations: Array<{ namespace: string; name: string; action: string; selector?: Record<string, string>; selectorKeys?: string[] }>;
    peerAuthentications: Array<{ namespace: string; name: string; mode: string; selector?: Record<string, string>; selectorKeys?: string[] }>;
  };
  trustBundle: { roots: number; certificates?: CertificateChainEntry[] };
  enrollment: Array<{ namespace: string; name: string; uid: string; captured: boolean; reason: string; ips: string[] }>;
  certificates: CertificateSummary[];
  tunnels: { connections?: HboneConnectionInfo[] };
}
