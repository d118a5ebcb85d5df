// Compiles AuthorizationPolicies bound by targetRefs (to a waypoint Gateway or a Service) into the L7 rules a waypoint enforces.
import type { KubeObject } from "../../kube/client.ts";
import { type CompiledL7Authorization, GATEWAY_API_GROUP, type PolicyTarget } from "../../contract/l7-authorization.ts";
import type { CompiledAuthorization } from "../../contract/authorization.ts";
import { type CompileResult, type Condition, checkSpec, compileAuthorizationPolicy, compileRules, condition } from "./compile.ts";
import { PolicyCompileError, PolicyErrorCode } from "./errors.ts";
import { isObject, onlyKnown } from "./fields.ts";

const TARGET_REF_FIELDS = ["group", "kind", "name", "namespace"];
/** The targets a waypoint can enforce for, with the group each must name ("" is the core group). */
const TARGET_GROUPS: Record<PolicyTarget["kind"], readonly string[]> = { Gateway: [GATEWAY_API_GROUP], Service: ["", "core"] };

/**
 * Whether the waypoint enforces this policy: it names `targetRef` or `targetRefs`. Those with a `selector` too are
 * Invalid at both enforcement points (as in Istio), each failing closed for what it would have covered.
 */
export const isWaypointPolicy = (obj: KubeObject): boolean => isObject(obj.spec) && (obj.spec.targetRef !== undefined || obj.spec.targetRefs !== undefined);

/** The entries of `targetRef` / `targetRefs` as written, with the field path of each. */
function refsOf(spec: Record<string, unknown>): Array<[unknown, string]> {
  if (spec.targetRef !== undefined) return [[spec.targetRef, "spec.targetRef"]];
  return Array.isArray(spec.targetRefs) ? spec.targetRefs.map((r, i) => [r, `spec.targetRefs[${i}]`]) : [];
}

function targetOf(raw: unknown, path: string, namespace: string): PolicyTarget {
  if (!isObject(raw)) throw new PolicyCompileError(PolicyErrorCode.targetRef, path, "must be an object with group, kind and name");
  onlyKnown(raw, TARGET_REF_FIELDS, path);
  const { group = "", kind, name } = raw;
  if (kind !== "Gateway" && kind !== "Service")
    throw new PolicyCompileError(
      PolicyErrorCode.targetRef,
      `${path}.kind`,
      `"${String(kind)}" cannot be enforced by a waypoint: target a Gateway (group ${GATEWAY_API_GROUP}, the waypoint) or a Service (group "")`,
    );
  if (typeof group !== "string" || !TARGET_GROUPS[kind].includes(group))
    throw new PolicyCompileError(
      PolicyErrorCode.targetRef,
      `${path}.group`,
      `"${String(group)}" is not the group of a ${kind}: write "${TARGET_GROUPS[kind][0]}"`,
    );
  if (typeof name !== "string" || name === "" || name.includes("/"))
    throw new PolicyCompileError(PolicyErrorCode.targetRef, `${path}.name`, `must be the name of a ${kind} in namespace ${namespace}`);
  // Istio refuses cross-namespace references: a policy would otherwise open or close another team's service.
  if (raw.namespace !== undefined && raw.namespace !== namespace)
    throw new PolicyCompileError(
      PolicyErrorCode.targetRef,
      `${path}.namespace`,
      `a policy of namespace ${namespace} may only target resources of its own namespace`,
    );
  return { kind, name };
}

function targetsOf(spec: Record<string, unknown>, namespace: string): PolicyTarget[] {
  if (spec.selector !== undefined || (spec.targetRef !== undefined && spec.targetRefs !== undefined))
    throw new PolicyCompileError(
      PolicyErrorCode.selectorAndTargetRefs,
      spec.selector !== undefined ? "spec.selector" : "spec.targetRef",
      "only one of selector, targetRef and targetRefs may be set (selector: enforced by the node agents; targetRefs: by a waypoint)",
    );
  if (spec.targetRef === undefined && spec.targetRefs === undefined)
    throw new PolicyCompileError(PolicyErrorCode.targetRef, "spec.targetRefs", "required for a policy enforced by a waypoint");
  if (spec.targetRefs !== undefined && (!Array.isArray(spec.targetRefs) || spec.targetRefs.length === 0))
    throw new PolicyCompileError(PolicyErrorCode.targetRef, "spec.targetRefs", "must list at least one Gateway or Service");
  return refsOf(spec).map(([raw, path]) => targetOf(raw, path, namespace));
}

/**
 * What an invalid policy could have targeted, so it fails closed there and not wider: every entry whose kind and name
 * can be read. When none can, every waypoint target of the namespace (as an unreadable selector means the namespace
 * at L4).
 */
function readableTargets(spec: Record<string, unknown>): PolicyTarget[] | "namespace" {
  const targets = refsOf(spec).flatMap(([raw]) =>
    isObject(raw) && (raw.kind === "Gateway" || raw.kind === "Service") && typeof raw.name === "string" && raw.name !== ""
      ? [{ kind: raw.kind, name: raw.name } satisfies PolicyTarget]
      : [],
  );
  return targets.length ? targets : "namespace";
}

function describeTargets(namespace: string, targets: PolicyTarget[] | "namespace"): string {
  if (targets === "namespace") return `every waypoint target of namespace ${namespace}`;
  return targets.length ? targets.map((t) => `${t.kind} ${namespace}/${t.name}`).join(", ") : "no target (it names none)";
}

/**
 * Istio's semantics at a waypoint: every L4 and L7 attribute is enforced, except those needing JWT validation
 * (refused, see PolicyErrorCode.jwtUnsupported). An invalid policy is never partly applied and fails closed for the
 * targets it names or could have named: ALLOW allows nothing, DENY denies everything, AUDIT audits nothing.
 */
export function compileWaypointAuthorizationPolicy(obj: KubeObject): CompileResult<CompiledL7Authorization> {
  const namespace = obj.metadata.namespace ?? "";
  const name = obj.metadata.name;
  const spec = isObject(obj.spec) ? obj.spec : {};
  const action = spec.action === undefined ? "ALLOW" : spec.action;
  try {
    const checked = checkSpec(obj.spec, spec);
    const targets = targetsOf(spec, namespace);
    const rules = compileRules(spec, "L7").map((o) => o.rule);
    const verb = checked === "AUDIT" ? "audited (logged, never changes a decision)" : "enforced";
    return {
      compiled: { namespace, name, targets, action: checked, rules },
      condition: condition("True", "Accepted", `${verb} at L7 by the waypoint for ${describeTargets(namespace, targets)}`, obj.metadata.generation),
    };
  } catch (err) {
    if (!(err instanceof PolicyCompileError)) throw err;
    const failed: CompiledL7Authorization["action"] = action === "DENY" ? "DENY" : action === "AUDIT" ? "AUDIT" : "ALLOW";
    // A policy that names no targetRef at all is not the waypoint's; failing closed for the namespace would punish it for that.
    const targets = spec.targetRef === undefined && spec.targetRefs === undefined ? [] : readableTargets(spec);
    const where = describeTargets(namespace, targets);
    const outcome =
      failed === "DENY" ? `denying every request to ${where}` : failed === "AUDIT" ? "auditing nothing" : `allowing nothing through it for ${where}`;
    return {
      compiled: { namespace, name, targets, action: failed, rules: failed === "DENY" ? [{}] : [] },
      condition: condition("False", "Invalid", `${err.message}; not applied as written: ${outcome} until fixed`, obj.metadata.generation),
      error: { code: err.code, path: err.path },
    };
  }
}

/** One AuthorizationPolicy compiled for the enforcers it belongs to, with the one condition its status carries. */
export interface EnforcedPolicy {
  /** For the destination node agents (selector or namespace/mesh-wide); absent for a policy bound by targetRefs alone. */
  l4?: CompileResult<CompiledAuthorization>;
  /** For waypoints (targetRef / targetRefs). */
  l7?: CompileResult<CompiledL7Authorization>;
  condition: Condition;
}

/**
 * Routes a policy to its enforcers. A targetRef'd policy goes to waypoints only: node agents never see it, so it can
 * neither widen nor narrow what they enforce. One with a selector as well is Invalid at both points (as in Istio), each
 * failing closed for what it covers; its status is the waypoint's verdict, which names both fields.
 */
export function compileForEnforcers(obj: KubeObject): EnforcedPolicy {
  if (!isWaypointPolicy(obj)) {
    const l4 = compileAuthorizationPolicy(obj);
    return { l4, condition: l4.condition };
  }
  const l7 = compileWaypointAuthorizationPolicy(obj);
  const withSelector = isObject(obj.spec) && obj.spec.selector !== undefined;
  return withSelector ? { l4: compileAuthorizationPolicy(obj), l7, condition: l7.condition } : { l7, condition: l7.condition };
}
