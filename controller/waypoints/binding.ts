// Which waypoint a Service's or a Pod's traffic goes through, from the use-waypoint labels on it and its Namespace and the waypoint-for of the Gateway.
import {
  DEFAULT_WAYPOINT_FOR,
  GATEWAY_NAME_LABEL,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
  USE_WAYPOINT_NONE,
  WAYPOINT_FOR,
  WAYPOINT_FOR_LABEL,
  WAYPOINT_GATEWAY_CLASS,
  type WaypointFor,
  type WaypointRef,
} from "../../contract/waypoint.ts";
import type { KubeObject } from "../../kube/client.ts";

export interface WaypointLookup {
  namespace(name: string): KubeObject | undefined;
  /** A Gateway of any class; only `ambit-waypoint` ones are waypoints. */
  gateway(namespace: string, name: string): KubeObject | undefined;
}

export type Binding =
  | { bound: false; reason: string }
  /** `gateway` is undefined when the named waypoint does not exist: traffic is sent to it anyway and fails (fail closed). */
  | { bound: true; waypoint: WaypointRef; gateway: KubeObject | undefined; reason: string };

/** The `ambit.dev/waypoint-for` of a waypoint Gateway; an unknown value counts as the default, as Istio reads it. */
export function waypointFor(gateway: KubeObject): WaypointFor {
  const v = gateway.metadata.labels?.[WAYPOINT_FOR_LABEL];
  return (WAYPOINT_FOR as readonly string[]).includes(v ?? "") ? (v as WaypointFor) : DEFAULT_WAYPOINT_FOR;
}

export const isWaypointGateway = (gateway: KubeObject): boolean => gateway.spec?.gatewayClassName === WAYPOINT_GATEWAY_CLASS;

/** The label a binding comes from: the object's own, else its namespace's; `none` on the object stops the namespace's. */
function labelSource(obj: KubeObject, lookup: WaypointLookup): { from: "object" | "namespace"; labels: Record<string, string> } | undefined {
  const own = obj.metadata.labels ?? {};
  if (own[USE_WAYPOINT_LABEL]) return { from: "object", labels: own };
  const ns = lookup.namespace(obj.metadata.namespace ?? "");
  const nsLabels = ns?.metadata.labels ?? {};
  if (nsLabels[USE_WAYPOINT_LABEL]) return { from: "namespace", labels: nsLabels };
  return undefined;
}

function resolve(obj: KubeObject, kind: "service" | "workload", lookup: WaypointLookup): Binding {
  const what = `${kind === "service" ? "service" : "pod"} ${obj.metadata.namespace}/${obj.metadata.name}`;
  // The waypoint's own pods and Service never go through a waypoint: that would loop.
  if (obj.metadata.labels?.[GATEWAY_NAME_LABEL]) {
    const gw = lookup.gateway(obj.metadata.namespace ?? "", obj.metadata.labels[GATEWAY_NAME_LABEL]);
    if (gw && isWaypointGateway(gw)) return { bound: false, reason: `${what} belongs to waypoint ${obj.metadata.namespace}/${gw.metadata.name}` };
  }
  const source = labelSource(obj, lookup);
  if (!source) return { bound: false, reason: `no ${USE_WAYPOINT_LABEL} label on ${what} or its namespace` };
  const name = source.labels[USE_WAYPOINT_LABEL]!;
  const where = source.from === "object" ? what : `namespace ${obj.metadata.namespace}`;
  if (name === USE_WAYPOINT_NONE) return { bound: false, reason: `${where} opts out with ${USE_WAYPOINT_LABEL}=${USE_WAYPOINT_NONE}` };
  const waypoint: WaypointRef = { namespace: source.labels[USE_WAYPOINT_NAMESPACE_LABEL] || obj.metadata.namespace || "", name };
  const label = `${USE_WAYPOINT_LABEL}=${name} on ${where}`;
  const gateway = lookup.gateway(waypoint.namespace, waypoint.name);
  if (!gateway || !isWaypointGateway(gateway)) {
    // Unknown waypoint-for: a Service takes the default (service); a pod only when its own label names the waypoint.
    if (kind === "workload" && source.from === "namespace")
      return { bound: false, reason: `${label}, but that waypoint does not exist (a namespace binds pods only through a waypoint for workloads)` };
    return { bound: true, waypoint, gateway: undefined, reason: `${label}; that waypoint does not exist, so its traffic fails until it does` };
  }
  const takes = waypointFor(gateway);
  if (takes !== "all" && takes !== kind)
    return { bound: false, reason: `${label}, but waypoint ${waypoint.namespace}/${waypoint.name} has ${WAYPOINT_FOR_LABEL}=${takes}` };
  return { bound: true, waypoint, gateway, reason: label };
}

/** The waypoint traffic addressed to this Service (its ClusterIP) goes through. */
export const serviceWaypoint = (svc: KubeObject, lookup: WaypointLookup): Binding => resolve(svc, "service", lookup);

/** The waypoint traffic addressed to this pod (its own IP) goes through; its agent then accepts traffic for it from that waypoint only. */
export const workloadWaypoint = (pod: KubeObject, lookup: WaypointLookup): Binding => resolve(pod, "workload", lookup);
