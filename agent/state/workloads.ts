// What the agent knows about workloads and services, indexed for the data path: pod by IP, service by ClusterIP:port.
import net from "node:net";
import type { ServiceEndpoint, ServiceSpec, Workload } from "../../contract/mesh.ts";
import type { WaypointRef } from "../../contract/waypoint.ts";

export type { ServiceEndpoint, Workload };

export interface ServiceEntry {
  namespace: string;
  name: string;
  clusterIP: string;
  /** Service port -> endpoints (target ports resolved by the EndpointSlices). */
  ports: Map<number, ServiceEndpoint[]>;
  /** Service port -> its declared protocol, for the ports that declare one (waypoints). */
  appProtocols: Map<number, string>;
  /** Traffic to the ClusterIP goes through this waypoint. */
  waypoint?: WaypointRef;
}

/** Replaced wholesale from the controller's view of this node; lookups on the data path are map reads. */
export class WorkloadIndex {
  #byIp = new Map<string, Workload>();
  #services = new Map<string, ServiceEntry>();
  /** By namespace/name: a waypoint is found through its Service. */
  #servicesByName = new Map<string, ServiceEntry>();
  #podNetwork = new net.BlockList();
  #podCidrs: string[] = [];

  /** The cluster's pod CIDRs (from the controller; kept while it is away, like everything else here). */
  setPodNetwork(cidrs: readonly string[]): void {
    const list = new net.BlockList();
    for (const cidr of cidrs) {
      const [address, bits] = cidr.split("/");
      const family = net.isIP(address ?? "") === 6 ? "ipv6" : "ipv4";
      if (address && bits !== undefined) list.addSubnet(address, Number(bits), family);
    }
    this.#podNetwork = list;
    this.#podCidrs = [...cidrs];
  }

  /** Whether `ip` is in the cluster's pod network. */
  inPodNetwork(ip: string): boolean {
    const family = net.isIP(ip);
    return family !== 0 && this.#podNetwork.check(ip, family === 6 ? "ipv6" : "ipv4");
  }

  get podCidrs(): readonly string[] {
    return this.#podCidrs;
  }

  replace(workloads: Iterable<Workload>, services: Iterable<ServiceSpec>): void {
    const byIp = new Map<string, Workload>();
    for (const w of workloads) byIp.set(w.ip, w);
    const svcs = new Map<string, ServiceEntry>();
    const byName = new Map<string, ServiceEntry>();
    for (const s of services) {
      const entry: ServiceEntry = {
        namespace: s.namespace,
        name: s.name,
        clusterIP: s.clusterIP,
        ports: new Map(s.ports.map((p) => [p.port, p.endpoints])),
        appProtocols: new Map(s.ports.flatMap((p) => (p.appProtocol ? [[p.port, p.appProtocol] as const] : []))),
        ...(s.waypoint ? { waypoint: s.waypoint } : {}),
      };
      svcs.set(s.clusterIP, entry);
      byName.set(`${s.namespace}/${s.name}`, entry);
    }
    this.#byIp = byIp;
    this.#services = svcs;
    this.#servicesByName = byName;
  }

  workloadByIp(ip: string): Workload | undefined {
    return this.#byIp.get(ip);
  }

  serviceByIp(ip: string): ServiceEntry | undefined {
    return this.#services.get(ip);
  }

  serviceByName(namespace: string, name: string): ServiceEntry | undefined {
    return this.#servicesByName.get(`${namespace}/${name}`);
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
  /** Bound to a waypoint: the connection goes there, addressed to what the client dialled (Service VIP or pod IP). */
  | { kind: "waypoint"; waypoint: WaypointRef; port: number; service?: ServiceEntry; workload?: Workload }
  | { kind: "passthrough"; ip: string; port: number; reason: string }
  | { kind: "no-endpoint"; service: ServiceEntry; port: number };

/**
 * Where an outbound connection to ip:port goes: a Service or pod bound to a waypoint goes to the waypoint; a service
 * ClusterIP picks one ready endpoint (random, as kube-proxy does); a pod IP is that workload; anything else passes
 * through untouched.
 */
export function resolveDestination(index: WorkloadIndex, ip: string, port: number, random: () => number = Math.random): Destination {
  const service = index.serviceByIp(ip);
  if (service?.waypoint) return { kind: "waypoint", waypoint: service.waypoint, port, service };
  if (service) {
    const ready = (service.ports.get(port) ?? []).filter((e) => e.ready);
    if (ready.length === 0) return { kind: "no-endpoint", service, port };
    const pick = ready[Math.floor(random() * ready.length)]!;
    const workload = index.workloadByIp(pick.ip);
    if (!workload)
      return { kind: "passthrough", ip: pick.ip, port: pick.port, reason: `endpoint ${pick.ip} of ${service.namespace}/${service.name} is not a known pod` };
    return { kind: "workload", workload, port: pick.port, service };
  }
  const workload = index.workloadByIp(ip);
  if (workload?.waypoint) return { kind: "waypoint", waypoint: workload.waypoint, port, workload };
  if (workload) return { kind: "workload", workload, port };
  return { kind: "passthrough", ip, port, reason: "destination is outside the mesh" };
}
