// Every BackendTrafficPolicy compiled together: which targets each is in effect on (GEP-713: the oldest policy wins a target) and the status of each.
import type { CompiledTrafficPolicy, TrafficPolicyTarget } from "../../contract/traffic-policy.ts";
import { GATEWAY_API_GROUP, WAYPOINT_CONTROLLER_NAME } from "../../contract/waypoint.ts";
import type { KubeObject } from "../../kube/client.ts";
import { TrafficPolicyError, compileTrafficPolicySpec, readableTargets } from "./compile.ts";

/** GEP-713's PolicyConditionReason values for the Accepted condition. */
export type PolicyReason = "Accepted" | "Invalid" | "TargetNotFound" | "Conflicted";

export interface PolicyCondition {
  type: "Accepted";
  status: "True" | "False";
  reason: PolicyReason;
  message: string;
  observedGeneration?: number;
}

/** GEP-713's PolicyAncestorStatus, without lastTransitionTime (added when written). */
export interface PolicyAncestorStatus {
  ancestorRef: { group: string; kind: string; name: string; namespace: string };
  controllerName: string;
  conditions: PolicyCondition[];
}

export interface TrafficPolicyResult {
  object: KubeObject;
  /** One per target; the one entry an Invalid policy without a readable target gets is its Namespace. */
  ancestors: PolicyAncestorStatus[];
  /** Set when the policy is Invalid. */
  error?: { code: string; path: string };
}

export interface CompiledTrafficPolicies {
  /** The policies in effect somewhere, each with only the targets it is in effect on; a new array per compilation. */
  policies: CompiledTrafficPolicy[];
  /** One per policy object, in the order given. */
  results: TrafficPolicyResult[];
}

/** Whether a target exists in the namespace: Services and routes from the informer caches. */
export type TargetExists = (namespace: string, target: TrafficPolicyTarget) => boolean;

const MAX_ANCESTORS = 16;

const describe = (namespace: string, t: TrafficPolicyTarget): string => `${t.kind} ${namespace}/${t.name}`;

const ancestorRef = (namespace: string, t: TrafficPolicyTarget) => ({
  group: t.kind === "Service" ? "" : GATEWAY_API_GROUP,
  kind: t.kind,
  name: t.name,
  namespace,
});

/** GEP-713's order: older first, then `namespace/name` alphabetically. */
export function olderFirst(a: KubeObject, b: KubeObject): number {
  const ta = String(a.metadata.creationTimestamp ?? "");
  const tb = String(b.metadata.creationTimestamp ?? "");
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = `${a.metadata.namespace}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * Compiles every policy. An Invalid one applies nowhere (each target it names gets Accepted=False, Invalid). A valid one
 * is in effect on each target that exists and that no older valid policy claims; a younger one is Conflicted there
 * (GEP-713: two policies of one kind on one target never merge). A missing target is TargetNotFound and claims nothing,
 * so creating it later does not change which policy wins by the order of events.
 */
export function compileTrafficPolicies(objects: readonly KubeObject[], exists: TargetExists): CompiledTrafficPolicies {
  const results = new Map<KubeObject, TrafficPolicyResult>();
  const valid: Array<{ obj: KubeObject; compiled: ReturnType<typeof compileTrafficPolicySpec> }> = [];
  for (const obj of objects) {
    const namespace = obj.metadata.namespace ?? "";
    const generation = obj.metadata.generation as number | undefined;
    const cond = (ok: boolean, reason: PolicyReason, message: string): PolicyCondition => ({
      type: "Accepted",
      status: ok ? "True" : "False",
      reason,
      message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    });
    try {
      valid.push({ obj, compiled: compileTrafficPolicySpec(obj) });
    } catch (err) {
      if (!(err instanceof TrafficPolicyError)) throw err;
      const named = readableTargets(obj.spec);
      const refs = named.length ? named.map((t) => ancestorRef(namespace, t)) : [{ group: "", kind: "Namespace", name: namespace, namespace }];
      const condition = cond(false, "Invalid", `${err.message}; no part of the policy applies until it is fixed`);
      results.set(obj, {
        object: obj,
        ancestors: refs.slice(0, MAX_ANCESTORS).map((ref) => ({ ancestorRef: ref, controllerName: WAYPOINT_CONTROLLER_NAME, conditions: [condition] })),
        error: { code: err.code, path: err.path },
      });
    }
  }

  const claimedBy = new Map<string, KubeObject>();
  const policies: CompiledTrafficPolicy[] = [];
  for (const { obj, compiled } of valid.sort((a, b) => olderFirst(a.obj, b.obj))) {
    const namespace = obj.metadata.namespace ?? "";
    const generation = obj.metadata.generation as number | undefined;
    const inEffect: TrafficPolicyTarget[] = [];
    const ancestors = compiled.targets.slice(0, MAX_ANCESTORS).map((t): PolicyAncestorStatus => {
      const key = `${namespace}/${t.kind}/${t.name}`;
      const winner = claimedBy.get(key);
      let condition: Omit<PolicyCondition, "type" | "observedGeneration">;
      if (!exists(namespace, t)) condition = { status: "False", reason: "TargetNotFound", message: `${describe(namespace, t)} does not exist` };
      else if (winner)
        condition = {
          status: "False",
          reason: "Conflicted",
          message: `BackendTrafficPolicy ${winner.metadata.namespace}/${winner.metadata.name} is older and applies to ${describe(namespace, t)}; this one does not (policies of one kind never merge)`,
        };
      else {
        claimedBy.set(key, obj);
        inEffect.push(t);
        condition = { status: "True", reason: "Accepted", message: `applied by waypoints to traffic for ${describe(namespace, t)}` };
      }
      return {
        ancestorRef: ancestorRef(namespace, t),
        controllerName: WAYPOINT_CONTROLLER_NAME,
        conditions: [{ type: "Accepted", ...condition, ...(generation !== undefined ? { observedGeneration: generation } : {}) }],
      };
    });
    results.set(obj, { object: obj, ancestors });
    if (inEffect.length)
      policies.push({
        namespace,
        name: obj.metadata.name,
        creationTimestamp: String(obj.metadata.creationTimestamp ?? ""),
        targets: inEffect,
        ...compiled.settings,
      });
  }
  return { policies, results: objects.map((o) => results.get(o)!) };
}
