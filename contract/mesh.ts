// Wire contract of the mesh's own resources in the config stream: workloads, services, the trust bundle, and what waypoints get.
import { ROUTES_RESOURCE_TYPE } from "./routes.ts";
import { TRAFFIC_POLICY_RESOURCE_TYPE } from "./traffic-policy.ts";
import type { WaypointRef } from "./waypoint.ts";

/** Resource `type`s of the config stream (the `key` of each is described next to its value type). */
export const RESOURCE_TYPES = {
  /** key: pod uid. */
  workload: "workload",
  /** key: namespace/name. */
  service: "service",
  /** key: namespace/name of the AuthorizationPolicy. */
  authorization: "authorization",
  /** key: namespace/name of the PeerAuthentication. */
  peerAuthentication: "peerauthentication",
  /** key: "default". */
  trustBundle: "trustbundle",
  /** key: "default". */
  network: "network",
  /**
   * Waypoints only. key: `<namespace>/<service>:<port>` (contract/routes.ts routesKey); value: ServicePortRoutes, the
   * producer and consumer routes of one port of a Service bound to the waypoint.
   */
  routes: ROUTES_RESOURCE_TYPE,
  /**
   * Waypoints only. key: namespace/name of the AuthorizationPolicy; value: CompiledL7Authorization
   * (contract/l7-authorization.ts), for policies targeting the waypoint's Gateway or a Service bound to it.
   */
  l7Authorization: "l7authorization",
  /**
   * Waypoints only. key: namespace/name of the BackendTrafficPolicy; value: CompiledTrafficPolicy
   * (contract/traffic-policy.ts), for policies in effect on a Service the waypoint serves or sends to, or on a route of one.
   */
  trafficPolicy: TRAFFIC_POLICY_RESOURCE_TYPE,
} as const;

export interface Workload {
  uid: string;
  namespace: string;
  name: string;
  /** The workload name metrics report (the owning Deployment/DaemonSet, else the pod name). */
  workloadName: string;
  serviceAccount: string;
  node: string;
  ip: string;
  /** HBONE to its IP on 15008 reaches it: its node's agent captures it, or its own sidecar (contract/sidecar.ts) terminates HBONE. */
  captured: boolean;
  /** Only sent for workloads on the receiving agent's node: policy selectors are matched where they are enforced. */
  labels: Record<string, string>;
  /**
   * Traffic addressed to this pod's own IP goes through this waypoint, and its agent accepts in-mesh traffic for it
   * only from the waypoint (a waypoint for workloads; contract/waypoint.ts).
   */
  waypoint?: WaypointRef;
}

export interface ServiceEndpoint {
  ip: string;
  port: number;
  ready: boolean;
}

/** A Service as the data path needs it: ClusterIP, and per service port the endpoints with resolved target ports. */
export interface ServiceSpec {
  namespace: string;
  name: string;
  clusterIP: string;
  /**
   * `appProtocol`: the port's declared protocol, from its `appProtocol` or else Istio's port-name convention
   * (`<protocol>[-<suffix>]`); absent when neither declares one. Waypoints serve declared HTTP ports as HTTP and carry
   * other declared protocols at L4 without looking at the bytes (contract/app-protocol.ts).
   */
  ports: Array<{ port: number; endpoints: ServiceEndpoint[]; appProtocol?: string }>;
  /** Traffic addressed to the ClusterIP goes through this waypoint (a waypoint for services); absent: straight to an endpoint. */
  waypoint?: WaypointRef;
}

/** Every root the mesh trusts; during a root rotation both the old and the new root. */
export interface TrustBundle {
  rootsPem: string[];
}

/** The cluster's pod network, from the Nodes' pod CIDRs: an address in it that no workload record names is a pod newer than the config. */
export interface PodNetwork {
  podCidrs: string[];
}
