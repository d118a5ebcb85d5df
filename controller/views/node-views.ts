// Per-node views for the config stream: every workload (labels only for the node's own), all services, the policies that select the node's workloads, the trust bundle.
import { type Resource, resourceId } from "../../contract/stream.ts";
import { type PodNetwork, RESOURCE_TYPES, type ServiceSpec, type TrustBundle, type Workload } from "../../contract/mesh.ts";
import type { KubeObject } from "../../kube/client.ts";
import { serviceSpecOf, workloadFromPod } from "../state/index.ts";
import { type WaypointRef, waypointKey } from "../../contract/waypoint.ts";
import { type Binding, type WaypointLookup, serviceWaypoint, workloadWaypoint } from "../waypoints/index.ts";

/** A compiled policy (AuthorizationPolicy or PeerAuthentication) with the scope Istio gives it. */
export interface ScopedPolicy {
  resource: Resource;
  namespace: string;
  /** `spec.selector.matchLabels`; absent selects every workload of the scope. */
  selector: Record<string, string> | undefined;
}

export interface MeshViewSources {
  pods(): readonly KubeObject[];
  services(): readonly KubeObject[];
  endpointSlices(): readonly KubeObject[];
  policies(): readonly ScopedPolicy[];
  trustBundle(): TrustBundle;
  /** The Nodes' pod CIDRs: agents treat unknown addresses in them as pods newer than their config. */
  podNetwork(): PodNetwork;
  /** Policies here without a selector apply mesh-wide; with one, to matching workloads of every namespace. */
  rootNamespace: string;
  /** Namespaces and Gateways, for the waypoint each Service and pod is bound to; absent: no waypoints (no Gateway API). */
  waypoints?: WaypointLookup;
}

interface CachedWorkload {
  /** The view key, built once: every node's view of every recomputation reuses this very string. */
  id: string;
  resourceVersion: string | undefined;
  /** The waypoint binding it was built with: a namespace label or a Gateway can change it while the pod does not change. */
  waypoint: string;
  workload: Workload;
  /** Sent to the pod's own node. */
  local: Resource;
  /** Sent to every other node: no labels, which only the enforcing node needs. */
  remote: Resource;
}

interface CachedService {
  id: string;
  version: string;
  resource: Resource;
}

const boundTo = (b: Binding): WaypointRef | undefined => (b.bound ? b.waypoint : undefined);

/** Whether `policy` applies to workload `w`, with Istio's scoping (root namespace, namespace, selector). */
export function policySelects(policy: Pick<ScopedPolicy, "namespace" | "selector">, w: Pick<Workload, "namespace" | "labels">, rootNamespace: string): boolean {
  if (policy.namespace !== rootNamespace && policy.namespace !== w.namespace) return false;
  if (!policy.selector) return true;
  for (const [k, v] of Object.entries(policy.selector)) if (w.labels[k] !== v) return false;
  return true;
}

/**
 * One node's view without copying what every node shares: the shared records (every workload as other nodes see
 * it, services, the trust bundle) with the node's own workloads laid over them and its policies added. Building
 * a fresh 10,000-entry Map per node on every change made large-object garbage V8 held on to (controller RSS at
 * 10,000 pods, bench/controller-scale.ts).
 */
export class NodeViewMap implements ReadonlyMap<string, Resource> {
  readonly #shared: ReadonlyMap<string, Resource>;
  readonly #own: ReadonlyMap<string, Resource>;
  readonly #added: ReadonlyMap<string, Resource>;

  /** `own` only replaces keys of `shared`; `added` holds keys `shared` does not have. */
  constructor(shared: ReadonlyMap<string, Resource>, own: ReadonlyMap<string, Resource>, added: ReadonlyMap<string, Resource>) {
    this.#shared = shared;
    this.#own = own;
    this.#added = added;
  }

  get size(): number {
    return this.#shared.size + this.#added.size;
  }

  get(id: string): Resource | undefined {
    return this.#own.get(id) ?? this.#shared.get(id) ?? this.#added.get(id);
  }

  has(id: string): boolean {
    return this.#shared.has(id) || this.#added.has(id);
  }

  *entries(): MapIterator<[string, Resource]> {
    for (const [id, r] of this.#shared) yield [id, this.#own.get(id) ?? r];
    yield* this.#added;
  }

  *keys(): MapIterator<string> {
    for (const [id] of this.entries()) yield id;
  }

  *values(): MapIterator<Resource> {
    for (const [, r] of this.entries()) yield r;
  }

  forEach(fn: (value: Resource, key: string, map: ReadonlyMap<string, Resource>) => void): void {
    for (const [id, r] of this.entries()) fn(r, id, this);
  }

  [Symbol.iterator](): MapIterator<[string, Resource]> {
    return this.entries();
  }
}

/**
 * Builds what each node should hold. Records are cached per Kubernetes object (by resourceVersion) and the
 * very same value objects are shared by all nodes' views, so content hashes are computed once per change and
 * a recomputation after one pod change costs map lookups, not serialisation, for everything else.
 */
export class MeshViews {
  readonly #src: MeshViewSources;
  #workloads = new Map<string, CachedWorkload>();
  #services = new Map<string, CachedService>();
  #trustBundle: { pems: string; resource: Resource } | undefined;
  #network: { cidrs: string; resource: Resource } | undefined;
  /** What every node's view holds alike: all workloads as remote nodes see them, services, the trust bundle. */
  #shared = new Map<string, Resource>();
  #byNode = new Map<string, CachedWorkload[]>();
  #dirty = true;

  constructor(sources: MeshViewSources) {
    this.#src = sources;
  }

  /**
   * Something changed in the cluster: the next view is rebuilt from the caches. Policies are read when a view is
   * asked for, so a policy change alone ("policies") leaves the shared records as they are.
   */
  invalidate(what: "all" | "policies" = "all"): void {
    if (what === "all") this.#dirty = true;
  }

  /** What every node's view holds alike (workloads without labels, services, trust bundle, pod network): the base of waypoints' views too. */
  shared(): ReadonlyMap<string, Resource> {
    this.#refresh();
    return this.#shared;
  }

  /** All workloads of the cluster, as last refreshed. */
  workloads(): Workload[] {
    this.#refresh();
    return [...this.#workloads.values()].map((c) => c.workload);
  }

  viewFor(node: string): ReadonlyMap<string, Resource> {
    this.#refresh();
    const own = new Map<string, Resource>();
    const local: Workload[] = [];
    for (const c of this.#byNode.get(node) ?? []) {
      own.set(c.id, c.local);
      local.push(c.workload);
    }
    const policies = new Map<string, Resource>();
    for (const p of this.#src.policies()) {
      if (local.some((w) => policySelects(p, w, this.#src.rootNamespace))) policies.set(resourceId(p.resource), p.resource);
    }
    return new NodeViewMap(this.#shared, own, policies);
  }

  /**
   * One pod's view, for its sidecar: what every node shares, the pod's own record with its labels, and the policies
   * that select it (a sidecar enforces exactly those). Undefined while the pod is not a workload (no IP yet).
   */
  viewForPod(namespace: string, name: string): { own: ReadonlyMap<string, Resource>; policies: Map<string, Resource>; shared: ReadonlyMap<string, Resource> } {
    this.#refresh();
    const own = new Map<string, Resource>();
    const policies = new Map<string, Resource>();
    const mine = [...this.#workloads.values()].find((c) => c.workload.namespace === namespace && c.workload.name === name);
    if (mine) {
      own.set(mine.id, mine.local);
      for (const p of this.#src.policies()) if (policySelects(p, mine.workload, this.#src.rootNamespace)) policies.set(resourceId(p.resource), p.resource);
    }
    return { own, policies, shared: this.#shared };
  }

  #refresh(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    const workloads = new Map<string, CachedWorkload>();
    for (const pod of this.#src.pods()) {
      const uid = pod.metadata.uid ?? "";
      const waypoint = this.#src.waypoints ? boundTo(workloadWaypoint(pod, this.#src.waypoints)) : undefined;
      const waypointId = waypoint ? waypointKey(waypoint) : "";
      const cached = this.#workloads.get(uid);
      if (cached && cached.resourceVersion === pod.metadata.resourceVersion && cached.resourceVersion !== undefined && cached.waypoint === waypointId) {
        workloads.set(uid, cached);
        continue;
      }
      const found = workloadFromPod(pod);
      if (!found) continue;
      const workload: Workload = waypoint ? { ...found, waypoint } : found;
      const local: Resource = { type: RESOURCE_TYPES.workload, key: uid, value: workload };
      workloads.set(uid, {
        id: resourceId(local),
        resourceVersion: pod.metadata.resourceVersion,
        waypoint: waypointId,
        workload,
        local,
        remote: { type: RESOURCE_TYPES.workload, key: uid, value: { ...workload, labels: {} } },
      });
    }
    this.#workloads = workloads;

    const slices = this.#src.endpointSlices();
    const slicesByService = new Map<string, KubeObject[]>();
    for (const s of slices) {
      const key = `${s.metadata.namespace}/${s.metadata.labels?.["kubernetes.io/service-name"] ?? ""}`;
      slicesByService.set(key, [...(slicesByService.get(key) ?? []), s]);
    }
    const services = new Map<string, CachedService>();
    for (const svc of this.#src.services()) {
      const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
      const mine = slicesByService.get(key) ?? [];
      const waypoint = this.#src.waypoints ? boundTo(serviceWaypoint(svc, this.#src.waypoints)) : undefined;
      const version = [
        svc.metadata.resourceVersion,
        waypoint ? `waypoint=${waypointKey(waypoint)}` : "",
        ...mine.map((s) => `${s.metadata.name}@${s.metadata.resourceVersion}`),
      ].join(",");
      const cached = this.#services.get(key);
      if (cached && cached.version === version) {
        services.set(key, cached);
        continue;
      }
      const found: ServiceSpec | undefined = serviceSpecOf(svc, mine);
      if (!found) continue;
      const spec: ServiceSpec = waypoint ? { ...found, waypoint } : found;
      const resource: Resource = { type: RESOURCE_TYPES.service, key, value: spec };
      services.set(key, { id: resourceId(resource), version, resource });
    }
    this.#services = services;

    const bundle = this.#src.trustBundle();
    const pems = bundle.rootsPem.join("");
    if (this.#trustBundle?.pems !== pems) this.#trustBundle = { pems, resource: { type: RESOURCE_TYPES.trustBundle, key: "default", value: bundle } };
    const network = this.#src.podNetwork();
    const cidrs = network.podCidrs.join(",");
    if (this.#network?.cidrs !== cidrs) this.#network = { cidrs, resource: { type: RESOURCE_TYPES.network, key: "default", value: network } };

    // Once per change, not once per node.
    const shared = new Map<string, Resource>();
    const byNode = new Map<string, CachedWorkload[]>();
    for (const c of this.#workloads.values()) {
      shared.set(c.id, c.remote);
      if (!c.workload.node) continue;
      const list = byNode.get(c.workload.node);
      if (list) list.push(c);
      else byNode.set(c.workload.node, [c]);
    }
    for (const svc of this.#services.values()) shared.set(svc.id, svc.resource);
    shared.set(resourceId(this.#trustBundle.resource), this.#trustBundle.resource);
    shared.set(resourceId(this.#network.resource), this.#network.resource);
    this.#shared = shared;
    this.#byNode = byNode;
  }
}
