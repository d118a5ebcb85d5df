// Turns Kubernetes Pods, Services and EndpointSlices into the workload and service records agents receive.
import type { KubeObject } from "../../kube/client.ts";
import type { ServiceEndpoint, ServiceSpec, Workload } from "../../contract/mesh.ts";
import { REDIRECTION_ANNOTATION } from "../../agent/enrollment/intent.ts";

/** The owning workload's name, as Istio derives `source_workload`: Deployment pods drop their two hash suffixes. */
export function workloadNameOf(pod: KubeObject): string {
  const owner = pod.metadata.ownerReferences?.find((r) => r.controller);
  if (!owner) return pod.metadata.name;
  if (owner.kind === "ReplicaSet") return owner.name.replace(/-[a-z0-9]{6,10}$/, "");
  return owner.name;
}

/** A running, addressable pod on the pod network; host-network and terminating pods are not workloads. */
export function workloadFromPod(pod: KubeObject): Workload | undefined {
  const ip = pod.status?.podIP as string | undefined;
  if (!ip || pod.spec?.hostNetwork || pod.metadata.deletionTimestamp) return undefined;
  const phase = pod.status?.phase as string | undefined;
  if (phase === "Succeeded" || phase === "Failed") return undefined;
  return {
    uid: pod.metadata.uid ?? "",
    namespace: pod.metadata.namespace ?? "",
    name: pod.metadata.name,
    workloadName: workloadNameOf(pod),
    serviceAccount: pod.spec?.serviceAccountName ?? "default",
    node: pod.spec?.nodeName ?? "",
    ip,
    captured: pod.metadata.annotations?.[REDIRECTION_ANNOTATION] === "enabled",
    labels: pod.metadata.labels ?? {},
  };
}

/** The Service with its TCP ports resolved to endpoints through its EndpointSlices; undefined for headless ones. */
export function serviceSpecOf(svc: KubeObject, slices: readonly KubeObject[]): ServiceSpec | undefined {
  const clusterIP = svc.spec?.clusterIP as string | undefined;
  if (!clusterIP || clusterIP === "None") return undefined;
  const namespace = svc.metadata.namespace ?? "";
  const mine = slices.filter((s) => s.metadata.namespace === namespace && s.metadata.labels?.["kubernetes.io/service-name"] === svc.metadata.name);
  const ports: ServiceSpec["ports"] = [];
  for (const sp of (svc.spec?.ports ?? []) as Array<{ name?: string; port: number; protocol?: string }>) {
    if ((sp.protocol ?? "TCP") !== "TCP") continue;
    const endpoints: ServiceEndpoint[] = [];
    for (const slice of mine) {
      const port = ((slice.ports ?? []) as Array<{ name?: string; port?: number }>).find((p) => (p.name ?? "") === (sp.name ?? ""))?.port;
      if (port === undefined) continue;
      for (const ep of (slice.endpoints ?? []) as Array<{ addresses: string[]; conditions?: { ready?: boolean } }>) {
        for (const ip of ep.addresses) endpoints.push({ ip, port, ready: ep.conditions?.ready !== false });
      }
    }
    ports.push({ port: sp.port, endpoints });
  }
  return { namespace, name: svc.metadata.name, clusterIP, ports };
}

/** Every workload and service of the given objects, as a whole-cluster view holds them. */
export function meshRecords(pods: readonly KubeObject[], services: readonly KubeObject[], slices: readonly KubeObject[]): { workloads: Workload[]; services: ServiceSpec[] } {
  return {
    workloads: pods.map(workloadFromPod).filter((w): w is Workload => w !== undefined),
    services: services.map((s) => serviceSpecOf(s, slices)).filter((s): s is ServiceSpec => s !== undefined),
  };
}
