// What the agent knows about workloads and services, indexed for the data path: pod by IP, service by ClusterIP:port.
import type { KubeObject } from "../../kube/client.ts";
import { REDIRECTION_ANNOTATION } from "../enrollment/intent.ts";

export interface Workload {
  uid: string;
  namespace: string;
  name: string;
  /** The workload name metrics report (the owning Deployment/DaemonSet, else the pod name). */
  workloadName: string;
  serviceAccount: string;
  node: string;
  ip: string;
  /** The destination agent will terminate HBONE for it (its pod is captured). */
  captured: boolean;
  labels: Record<string, string>;
}

export interface ServiceEndpoint {
  ip: string;
  port: number;
  ready: boolean;
}

export interface ServiceEntry {
  namespace: string;
  name: string;
  clusterIP: string;
  /** Service port -> endpoints (target ports resolved by the EndpointSlices). */
  ports: Map<number, ServiceEndpoint[]>;
}

/** The owning workload's name, as Istio derives `source_workload`: Deployment pods drop their two hash suffixes. */
export function workloadNameOf(pod: KubeObject): string {
  const owner = pod.metadata.ownerReferences?.find((r) => r.controller);
  if (!owner) return pod.metadata.name;
  if (owner.kind === "ReplicaSet") return owner.name.replace(/-[a-z0-9]{6,10}$/, "");
  if (owner.kind === "Deployment" || owner.kind === "DaemonSet" || owner.kind === "StatefulSet") return owner.name;
  return owner.name;
}

export function workloadFromPod(pod: KubeObject): Workload | undefined {
  const ip = pod.status?.podIP as string | undefined;
  if (!ip || pod.spec?.hostNetwork) return undefined;
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

/** Pure index rebuilt from informer caches; small enough to rebuild on every change at sandbox scale. */
export class WorkloadIndex {
  #byIp = new Map<string, Workload>();
  #services = new Map<string, ServiceEntry>();

  rebuild(pods: KubeObject[], services: KubeObject[], slices: KubeObject[]): void {
    const byIp = new Map<string, Workload>();
    for (const pod of pods) {
      if (pod.metadata.deletionTimestamp) continue;
      const w = workloadFromPod(pod);
      if (w) byIp.set(w.ip, w);
    }
    const svcs = new Map<string, ServiceEntry>();
    for (const svc of services) {
      const clusterIP = svc.spec?.clusterIP as string | undefined;
      if (!clusterIP || clusterIP === "None") continue;
      const entry: ServiceEntry = { namespace: svc.metadata.namespace ?? "", name: svc.metadata.name, clusterIP, ports: new Map() };
      const mine = slices.filter((s) => s.metadata.namespace === entry.namespace && s.metadata.labels?.["kubernetes.io/service-name"] === entry.name);
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
        entry.ports.set(sp.port, endpoints);
      }
      svcs.set(clusterIP, entry);
    }
    this.#byIp = byIp;
    this.#services = svcs;
  }

  workloadByIp(ip: string): Workload | undefined {
    return this.#byIp.get(ip);
  }

  serviceByIp(ip: string): ServiceEntry | undefined {
    return this.#services.get(ip);
  }

  get workloads(): Workload[] {
    return [...this.#byIp.values()];
  }

  get services(): ServiceEntry[] {
    return [...this.#services.values()];
  }
}

export type Destination =
  | { kind: "workload"; workload: Workload; port: number; service?: ServiceEntry }
  | { kind: "passthrough"; ip: string; port: number; reason: string }
  | { kind: "no-endpoint"; service: ServiceEntry; port: number };

/**
 * Where an outbound connection to ip:port goes: a service ClusterIP picks one ready endpoint (random, as
 * kube-proxy does); a pod IP is that workload; anything else passes through untouched.
 */
export function resolveDestination(index: WorkloadIndex, ip: string, port: number, random: () => number = Math.random): Destination {
  const service = index.serviceByIp(ip);
  if (service) {
    const ready = (service.ports.get(port) ?? []).filter((e) => e.ready);
    if (ready.length === 0) return { kind: "no-endpoint", service, port };
    const pick = ready[Math.floor(random() * ready.length)]!;
    const workload = index.workloadByIp(pick.ip);
    if (!workload) return { kind: "passthrough", ip: pick.ip, port: pick.port, reason: `endpoint ${pick.ip} of ${service.namespace}/${service.name} is not a known pod` };
    return { kind: "workload", workload, port: pick.port, service };
  }
  const workload = index.workloadByIp(ip);
  if (workload) return { kind: "workload", workload, port };
  return { kind: "passthrough", ip, port, reason: "destination is outside the mesh" };
}
