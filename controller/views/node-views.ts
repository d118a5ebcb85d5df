// Per-node views for the config stream: every workload (labels only for the node's own), all services, the policies that select the node's workloads, the trust bundle.
import type { Resource } from "../../contract/stream.ts";
import { RESOURCE_TYPES, type ServiceSpec, type TrustBundle, type Workload } from "../../contract/mesh.ts";
import type { KubeObject } from "../../kube/client.ts";
import { serviceSpecOf, workloadFromPod } from "../state/index.ts";

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
  /** Policies here without a selector apply mesh-wide; with one, to matching workloads of every namespace. */
  rootNamespace: string;
}

interface CachedWorkload {
  /** The view key, built once: every node's view of every recomputation reuses this very string. */
  id: string;
  resourceVersion: string | undefined;
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

/** Whether `policy` applies to workload `w`, with Istio's scoping (root namespace, namespace, selector). */
export function policySelects(policy: Pick<ScopedPolicy, "namespace" | "selector">, w: Pick<Workload, "namespace" | "labels">, rootNamespace: string): boolean {
  if (policy.namespace !== rootNamespace && policy.namespace !== w.namespace) return false;
  if (!policy.selector) return true;
  for (const [k, v] of Object.entries(policy.selector)) if (w.labels[k] !== v) return false;
  return true;
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
  #dirty = true;

  constructor(sources: MeshViewSources) {
    this.#src = sources;
  }

  /** Something changed in the cluster: the next view is rebuilt from the caches. */
  invalidate(): void {
    this.#dirty = true;
  }

  /** All workloads of the cluster, as last refreshed. */
  workloads(): Workload[] {
    this.#refresh();
    return [...this.#workloads.values()].map((c) => c.workload);
  }

  viewFor(node: string): Map<string, Resource> {
    this.#refresh();
    const view = new Map<string, Resource>();
    const local: Workload[] = [];
    for (const c of this.#workloads.values()) {
      const mine = c.workload.node === node;
      if (mine) local.push(c.workload);
      view.set(c.id, mine ? c.local : c.remote);
    }
    for (const s of this.#services.values()) view.set(s.id, s.resource);
    for (const p of this.#src.policies()) {
      if (local.some((w) => policySelects(p, w, this.#src.rootNamespace))) view.set(`${p.resource.type}/${p.resource.key}`, p.resource);
    }
    const bundle = this.#trustBundle!.resource;
    view.set(`${bundle.type}/${bundle.key}`, bundle);
    return view;
  }

  #refresh(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    const workloads = new Map<string, CachedWorkload>();
    for (const pod of this.#src.pods()) {
      const uid = pod.metadata.uid ?? "";
      const cached = this.#workloads.get(uid);
      if (cached && cached.resourceVersion === pod.metadata.resourceVersion && cached.resourceVersion !== undefined) {
        workloads.set(uid, cached);
        continue;
      }
      const workload = workloadFromPod(pod);
      if (!workload) continue;
      workloads.set(uid, {
        id: `${RESOURCE_TYPES.workload}/${workload.uid}`,
        resourceVersion: pod.metadata.resourceVersion,
        workload,
        local: { type: RESOURCE_TYPES.workload, key: uid, value: workload },
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
      const version = [svc.metadata.resourceVersion, ...mine.map((s) => `${s.metadata.name}@${s.metadata.resourceVersion}`)].join(",");
      const cached = this.#services.get(key);
      if (cached && cached.version === version) {
        services.set(key, cached);
        continue;
      }
      const spec: ServiceSpec | undefined = serviceSpecOf(svc, mine);
      if (spec) services.set(key, { id: `${RESOURCE_TYPES.service}/${key}`, version, resource: { type: RESOURCE_TYPES.service, key, value: spec } });
    }
    this.#services = services;

    const bundle = this.#src.trustBundle();
    const pems = bundle.rootsPem.join("");
    if (this.#trustBundle?.pems !== pems) this.#trustBundle = { pems, resource: { type: RESOURCE_TYPES.trustBundle, key: "default", value: bundle } };
  }
}
