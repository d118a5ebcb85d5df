// Registry of the resource types the sandbox API server serves: built-in kinds plus CRDs registered at run time.
import type { PrinterColumn } from "./tables.ts";

export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  /** Has a /status subresource: the main resource ignores status writes, /status changes only status. */
  status: boolean;
  /** Only `create` (TokenReview). */
  createOnly?: boolean;
  printerColumns?: PrinterColumn[];
  /** Name of the CRD that registered it. */
  crd?: string;
}

export const apiVersionOf = (r: Pick<ResourceType, "group" | "version">): string => (r.group ? `${r.group}/${r.version}` : r.version);

type Builtin = [group: string, version: string, kind: string, plural: string, namespaced: boolean, shortNames: string[], status: boolean];
const BUILTINS: Builtin[] = [
  ["", "v1", "Namespace", "namespaces", false, ["ns"], true],
  ["", "v1", "Pod", "pods", true, ["po"], true],
  ["", "v1", "Service", "services", true, ["svc"], true],
  ["", "v1", "ServiceAccount", "serviceaccounts", true, ["sa"], false],
  ["", "v1", "Secret", "secrets", true, [], false],
  ["", "v1", "ConfigMap", "configmaps", true, ["cm"], false],
  ["", "v1", "Node", "nodes", false, ["no"], true],
  ["", "v1", "Endpoints", "endpoints", true, ["ep"], false],
  ["", "v1", "Event", "events", true, ["ev"], false],
  ["apps", "v1", "Deployment", "deployments", true, ["deploy"], true],
  ["apps", "v1", "DaemonSet", "daemonsets", true, ["ds"], true],
  ["apps", "v1", "ReplicaSet", "replicasets", true, ["rs"], true],
  ["discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, [], false],
  ["coordination.k8s.io", "v1", "Lease", "leases", true, [], false],
  ["policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, ["pdb"], true],
  ["rbac.authorization.k8s.io", "v1", "Role", "roles", true, [], false],
  ["rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, [], false],
  ["rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, [], false],
  ["rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, [], false],
  ["apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, ["crd", "crds"], true],
  ["authentication.k8s.io", "v1", "TokenReview", "tokenreviews", false, [], false],
];

export class ResourceRegistry {
  readonly #byPath = new Map<string, ResourceType>();

  constructor() {
    for (const [group, version, kind, plural, namespaced, shortNames, status] of BUILTINS) {
      this.add({
        group,
        version,
        kind,
        plural,
        singular: kind.toLowerCase(),
        namespaced,
        shortNames,
        status,
        ...(kind === "TokenReview" ? { createOnly: true } : {}),
      });
    }
  }

  add(r: ResourceType): void {
    this.#byPath.set(`${apiVersionOf(r)}/${r.plural}`, r);
  }

  remove(apiVersion: string, plural: string): void {
    this.#byPath.delete(`${apiVersion}/${plural}`);
  }

  find(apiVersion: string, plural: string): ResourceType | undefined {
    return this.#byPath.get(`${apiVersion}/${plural}`);
  }

  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    for (const r of this.#byPath.values()) if (apiVersionOf(r) === apiVersion && r.kind === kind) return r;
    return undefined;
  }

  all(): ResourceType[] {
    return [...this.#byPath.values()];
  }

  /** group -> versions (sorted, first is preferred). The core group is "". */
  groups(): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const r of this.#byPath.values()) {
      const versions = groups.get(r.group) ?? [];
      if (!versions.includes(r.version)) versions.push(r.version);
      groups.set(r.group, versions);
    }
    for (const versions of groups.values()) versions.sort(compareVersions);
    return groups;
  }
}

/** Kubernetes version priority: GA > beta > alpha, higher numbers first (v1 > v1beta2 > v1beta1 > v1alpha1). */
function compareVersions(a: string, b: string): number {
  const rank = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0];
    return [m[2] === undefined ? 3 : m[2] === "beta" ? 2 : 1, Number(m[1]), Number(m[3] ?? 0)];
  };
  const [ra, rb] = [rank(a), rank(b)];
  for (let i = 0; i < 3; i++) if (ra[i] !== rb[i]) return rb[i]! - ra[i]!;
  return a.localeCompare(b);
}

/** Registers what a CustomResourceDefinition declares (served versions only). */
export function crdResources(crd: { metadata: { name?: string }; spec?: Record<string, unknown> }): ResourceType[] {
  const spec = (crd.spec ?? {}) as {
    group?: string;
    names?: { kind?: string; plural?: string; singular?: string; shortNames?: string[] };
    scope?: string;
    versions?: Array<{ name: string; served?: boolean; subresources?: { status?: object }; additionalPrinterColumns?: PrinterColumn[] }>;
  };
  const names = spec.names ?? {};
  return (spec.versions ?? [])
    .filter((v) => v.served !== false)
    .map((v) => ({
      group: spec.group ?? "",
      version: v.name,
      kind: names.kind ?? "",
      plural: names.plural ?? "",
      singular: names.singular ?? (names.kind ?? "").toLowerCase(),
      namespaced: spec.scope !== "Cluster",
      shortNames: names.shortNames ?? [],
      status: v.subresources?.status !== undefined,
      ...(v.additionalPrinterColumns ? { printerColumns: v.additionalPrinterColumns } : {}),
      crd: crd.metadata.name ?? "",
    }));
}
