// Vocabulary of waypoints shared by controller, agents, waypoints and the CLI: binding labels, the GatewayClass, the listener, the identity.
import type { SpiffeId } from "./spiffe.ts";

/** On a Namespace, Service or Pod: the waypoint (a Gateway in the same namespace) its traffic goes through; `none` opts out. */
export const USE_WAYPOINT_LABEL = "ambit.dev/use-waypoint";
/** On a Namespace, Service or Pod: the namespace of the Gateway named by `ambit.dev/use-waypoint` (default: its own). */
export const USE_WAYPOINT_NAMESPACE_LABEL = "ambit.dev/use-waypoint-namespace";
export const USE_WAYPOINT_NONE = "none";
/** On the Gateway: which traffic it takes (Istio's `istio.io/waypoint-for`). */
export const WAYPOINT_FOR_LABEL = "ambit.dev/waypoint-for";
export const WAYPOINT_FOR = ["service", "workload", "all", "none"] as const;
export type WaypointFor = (typeof WAYPOINT_FOR)[number];
/** Istio's default: a waypoint takes traffic addressed to the Services bound to it. */
export const DEFAULT_WAYPOINT_FOR: WaypointFor = "service";

/** Gateways of this class are waypoints: the controller deploys them. */
export const WAYPOINT_GATEWAY_CLASS = "ambit-waypoint";
/** The `controllerName` of the GatewayClass, as Gateway API asks: a domain-prefixed path. */
export const WAYPOINT_CONTROLLER_NAME = "ambit.dev/waypoint-controller";
/** The one listener a waypoint Gateway has: HBONE on 15008, as Istio's `mesh` listener. */
export const WAYPOINT_LISTENER = { port: 15008, protocol: "HBONE" } as const;
export const GATEWAY_API_GROUP = "gateway.networking.k8s.io";
export const GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1";
/** The label Gateway API implementations put on what they create for a Gateway; the waypoint's pods carry it. */
export const GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name";

/** A destination's waypoint as the config stream carries it: the Gateway, whose Service the source agent dials. */
export interface WaypointRef {
  namespace: string;
  name: string;
}

/**
 * The identity a waypoint runs as: the ServiceAccount named after its Gateway, as Istio does. A bound destination's
 * agent accepts in-mesh traffic for it from this identity only.
 */
export function waypointIdentity(ref: WaypointRef, trustDomain: string): SpiffeId {
  return { trustDomain, namespace: ref.namespace, serviceAccount: ref.name };
}

export const waypointKey = (ref: WaypointRef): string => `${ref.namespace}/${ref.name}`;
