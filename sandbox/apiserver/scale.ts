// The scale subresource (autoscaling/v1 Scale) of Deployments, ReplicaSets and StatefulSets: what kubectl scale reads and writes.
import { ApiError, type KubeObject } from "./types.ts";

/** Kinds whose objects have `/scale`, as in Kubernetes (DaemonSets have none). */
const SCALABLE = new Set(["apps/Deployment", "apps/ReplicaSet", "apps/StatefulSet"]);

export const isScalable = (r: { group: string; kind: string; crd?: string }): boolean => !r.crd && SCALABLE.has(`${r.group}/${r.kind}`);

/** The discovery entry of `<plural>/scale`: kubectl finds the Scale kind's group and version here. */
export function scaleDiscoveryEntry(plural: string, namespaced: boolean): object {
  return { name: `${plural}/scale`, singularName: "", namespaced, group: "autoscaling", version: "v1", kind: "Scale", verbs: ["get", "patch", "update"] };
}

interface Requirement {
  key: string;
  operator: string;
  values?: string[];
}

/**
 * A metav1.LabelSelector in the label-selector string syntax, as Go's LabelSelectorAsSelector(...).String() writes it:
 * requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; "" for none.
 */
export function selectorString(selector: { matchLabels?: Record<string, string>; matchExpressions?: Requirement[] } | undefined): string {
  if (!selector) return "";
  const terms: Array<[string, string]> = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => [k, `${k}=${v}`]);
  for (const e of selector.matchExpressions ?? []) {
    const values = [...(e.values ?? [])].sort().join(",");
    const text =
      e.operator === "In" ? `${e.key} in (${values})` : e.operator === "NotIn" ? `${e.key} notin (${values})` : e.operator === "Exists" ? e.key : `!${e.key}`;
    terms.push([e.key, text]);
  }
  // A stable sort by key, as labels.ByKey: matchLabels before expressions on the same key.
  return terms
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, t]) => t)
    .join(",");
}

/** The Scale of an object: desired replicas from its spec, observed ones and the pod selector from its status. */
export function toScale(obj: KubeObject): KubeObject {
  const replicas = Number(obj.spec?.replicas ?? 0);
  const selector = selectorString(obj.spec?.selector);
  return {
    kind: "Scale",
    apiVersion: "autoscaling/v1",
    metadata: {
      name: obj.metadata.name,
      namespace: obj.metadata.namespace,
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
      creationTimestamp: obj.metadata.creationTimestamp,
    },
    // Go's JSON omits a zero spec.replicas (omitempty) but always writes status.replicas.
    spec: replicas ? { replicas } : {},
    status: { replicas: Number(obj.status?.replicas ?? 0), ...(selector ? { selector } : {}) },
  };
}

/**
 * The object `existing` becomes when `body` (a Scale, from PUT or from a patch of the current Scale) is written: only
 * spec.replicas changes. A stale resourceVersion in the Scale is a conflict, as for the object itself.
 */
export function scaled(existing: KubeObject, body: unknown, plural: string, group: string): KubeObject {
  const name = existing.metadata.name ?? "";
  if (!body || typeof body !== "object" || Array.isArray(body))
    throw new ApiError(400, "BadRequest", "the request body must be an autoscaling/v1 Scale object");
  const scale = body as { apiVersion?: string; kind?: string; metadata?: { name?: string; resourceVersion?: string }; spec?: { replicas?: unknown } };
  if ((scale.kind !== undefined && scale.kind !== "Scale") || (scale.apiVersion !== undefined && scale.apiVersion !== "autoscaling/v1")) {
    throw new ApiError(400, "BadRequest", `the scale subresource takes an autoscaling/v1 Scale, not ${scale.apiVersion ?? ""} ${scale.kind ?? ""}`.trim());
  }
  if (scale.metadata?.name !== undefined && scale.metadata.name !== name)
    throw new ApiError(400, "BadRequest", `the name of the object (${scale.metadata.name}) does not match the name on the URL (${name})`);
  const rv = scale.metadata?.resourceVersion;
  if (rv && rv !== existing.metadata.resourceVersion) {
    throw new ApiError(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${plural}.${group} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, kind: plural, group },
    );
  }
  const replicas = scale.spec?.replicas ?? 0;
  if (typeof replicas !== "number" || !Number.isInteger(replicas) || replicas < 0 || replicas > 2147483647) {
    const shown = typeof replicas === "string" ? JSON.stringify(replicas) : String(replicas);
    throw new ApiError(422, "Invalid", `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${shown}: must be greater than or equal to 0`, {
      name,
      group: "autoscaling",
      kind: "Scale",
      causes: [{ reason: "FieldValueInvalid", message: `Invalid value: ${shown}: must be greater than or equal to 0`, field: "spec.replicas" }],
    });
  }
  const next = structuredClone(existing);
  next.spec = { ...(next.spec ?? {}), replicas };
  return next;
}
