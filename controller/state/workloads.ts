// Turns Kubernetes Pods, Services and EndpointSlices into the workload and service records agents receive.
import type { KubeObject } from "../../kube/client.ts";
import type { PodNetwork, ServiceEndpoint, ServiceSpec, Workload } from "../../contract/mesh.ts";
import { workloadFromPod } from "../../contract/pods.ts";
import { declaredAppProtocol } from "../../contract/app-protocol.ts";

/** The Service with its TCP ports resolved to endpoints through its EndpointSlices; undefined for headless ones. */
export function serviceSpecOf(svc: KubeObject, slices: readonly KubeObject[]): ServiceSpec | undefined {
  const clusterIP = svc.spec?.clusterIP as string | undefined;
  if (!clusterIP || clusterIP === "None") return undefined;
  const namespace = svc.metadata.namespace ?? "";
  const mine = slices.filter((s) => s.metadata.namespace === namespace && s.metadata.labels?.["kubernetes.io/service-name"] === svc.metadata.name);
  const ports: ServiceSpec["ports"] = [];
  for (const sp of (svc.spec?.ports ?? []) as Array<{ name?: string; port: number; protocol?: string; appProtocol?: string }>) {
    if ((sp.protocol ?? "TCP") !== "TCP") continue;
    const endpoints: ServiceEndpoint[] = [];
    for (const slice of mine) {
      const port = ((slice.ports ?? []) as Array<{ name?: string; port?: number }>).find((p) => (p.name ?? "") === (sp.name ?? ""))?.port;
      if (port === undefined) continue;
      for (const ep of (slice.endpoints ?? []) as Array<{ addresses: string[]; conditions?: { ready?: boolean } }>) {
        for (const ip of ep.addresses) endpoints.push({ ip, port, ready: ep.conditions?.ready !== false });
      }
    }
    const appProtocol = declaredAppProtocol(sp);
    ports.push({ port: sp.port, endpoints, ...(appProtocol ? { appProtocol } : {}) });
  }
  return { namespace, name: svc.metadata.name, clusterIP, ports };
}

/** Every workload and service of the given objects, as a whole-cluster view holds them. */
export function meshRecords(
  pods: readonly KubeObject[],
  services: readonly KubeObject[],
  slices: readonly KubeObject[],
): { workloads: Workload[]; services: ServiceSpec[] } {
  return {
    workloads: pods.map(workloadFromPod).filter((w): w is Workload => w !== undefined),
    services: services.map((s) => serviceSpecOf(s, slices)).filter((s): s is ServiceSpec => s !== undefined),
  };
}

/** The pod CIDRs the Nodes were given (spec.podCIDRs, or the older spec.podCIDR), each once. */
export function podNetworkOf(nodes: readonly KubeObject[]): PodNetwork {
  const cidrs = new Set<string>();
  for (const node of nodes) {
    const list = (node.spec?.podCIDRs as string[] | undefined) ?? (node.spec?.podCIDR ? [node.spec.podCIDR as string] : []);
    for (const cidr of list) cidrs.add(cidr);
  }
  return { podCidrs: [...cidrs].sort() };
}
