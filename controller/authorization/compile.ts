// Validates AuthorizationPolicy and PeerAuthentication objects and compiles them to L4 rules, with status conditions saying what is enforced where.
import type { KubeObject } from "../../kube/client.ts";
import {
  type AuthorizationAction,
  type CompiledAuthorization,
  type CompiledPeerAuthentication,
  type CompiledRule,
  type CompiledSource,
  L4_CONDITION_KEYS,
  type L4ConditionKey,
  type MtlsMode,
} from "../../contract/authorization.ts";
import type { CompiledL7Condition, CompiledL7Operation, CompiledL7Rule } from "../../contract/l7-authorization.ts";
import { PolicyCompileError, PolicyErrorCode } from "./errors.ts";
import { cidrList, headerNameOf, hostList, isObject, methodList, onlyKnown, pathList, portList, principals, stringList } from "./fields.ts";

export interface Condition {
  type: "Accepted";
  status: "True" | "False";
  reason: "Accepted" | "PartiallyEnforced" | "Invalid";
  message: string;
  observedGeneration?: number;
}

export interface CompileResult<T> {
  /** Always present: an invalid policy compiles to its fail-closed form (see below), never to part of itself. */
  compiled: T;
  condition: Condition;
  /** Present exactly when the condition is Invalid: the stable code and the field it names (the message starts with it). */
  error?: { code: PolicyErrorCode; path: string };
}

const L7_SOURCE_FIELDS = ["requestPrincipals", "notRequestPrincipals"] as const;
const L4_SOURCE_FIELDS = [
  "principals",
  "notPrincipals",
  "namespaces",
  "notNamespaces",
  "ipBlocks",
  "notIpBlocks",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
] as const;
const L7_OPERATION_FIELDS = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"] as const;
const L4_OPERATION_FIELDS = ["ports", "notPorts"] as const;
const MODES: MtlsMode[] = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"];
/** Istio's `security.istio.io/v1` fields: anything else is a typo that would otherwise be silently ignored. */
const AUTHZ_SPEC_FIELDS = ["selector", "targetRef", "targetRefs", "action", "rules", "provider"];
const RULE_FIELDS = ["from", "to", "when"];
const CONDITION_FIELDS = ["key", "values", "notValues"];
const PEER_SPEC_FIELDS = ["selector", "mtls", "portLevelMtls"];
/**
 * Values (principals, namespaces, blocks, ports, condition values) one policy may hold. Agents compile each policy
 * once per config version into tries and sorted sets, so the per-connection cost does not grow with this number;
 * the bound keeps one object from costing every agent unbounded memory and compile time (20,000 blocks compile in
 * about 10 ms, see bench/policy-check.ts).
 */
export const MAX_POLICY_VALUES = 50_000;

function selectorOf(spec: Record<string, unknown>): Record<string, string> | undefined {
  if (spec.selector === undefined) return undefined;
  if (!isObject(spec.selector)) throw new PolicyCompileError(PolicyErrorCode.selector, "spec.selector", "must be an object with matchLabels");
  onlyKnown(spec.selector, ["matchLabels"], "spec.selector");
  const labels = spec.selector.matchLabels;
  if (labels === undefined) return undefined;
  if (!isObject(labels) || !Object.values(labels).every((v) => typeof v === "string"))
    throw new PolicyCompileError(PolicyErrorCode.selector, "spec.selector.matchLabels", "must map label names to string values");
  return labels as Record<string, string>;
}

/** Which workloads a policy applies to, also when its selector is invalid (see `scopeOf`). */
interface Scope {
  selector?: Record<string, string>;
  selectorKeys?: string[];
}

/**
 * The workloads an invalid selector could have meant, so an invalid policy fails closed for those and never for
 * the whole namespace: label values written as numbers or booleans count as the strings a label holds; a label
 * whose value cannot be read must at least be present; a misspelt `matchLabels` (the selector's only field) is
 * read as if it were spelt right. Only a selector with nothing readable at all leaves the namespace as the scope.
 */
function scopeOf(spec: Record<string, unknown>): Scope {
  try {
    const selector = selectorOf(spec);
    return selector ? { selector } : {};
  } catch {
    const sel = spec.selector;
    if (!isObject(sel)) return {};
    const keys = Object.keys(sel);
    const labels = isObject(sel.matchLabels)
      ? sel.matchLabels
      : keys.length === 1 && isObject(sel[keys[0]!])
        ? (sel[keys[0]!] as Record<string, unknown>)
        : undefined;
    if (!labels) return {};
    const selector: Record<string, string> = {};
    const selectorKeys: string[] = [];
    for (const [k, v] of Object.entries(labels)) {
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") selector[k] = String(v);
      else selectorKeys.push(k);
    }
    return { ...(Object.keys(selector).length ? { selector } : {}), ...(selectorKeys.length ? { selectorKeys } : {}) };
  }
}

/** Where a policy is enforced: by the node agents (L4 attributes only) or by a waypoint (L7 attributes too). */
export type Layer = "L4" | "L7";

interface RuleOutcome<R> {
  rule: R;
  /** At L4: the L7 attributes the rule named (for the condition message). Always empty at L7. */
  l7: string[];
}

const L7_OPERATION_READERS = { hosts: hostList, notHosts: hostList, methods: methodList, notMethods: methodList, paths: pathList, notPaths: pathList };
/** What the waypoint evaluates in a `when`, besides the L4 keys. */
const L7_CONDITION_HELP = `${L4_CONDITION_KEYS.join(", ")}, request.headers[<name>]`;

function jwtUnsupported(path: string, what: string): PolicyCompileError {
  return new PolicyCompileError(
    PolicyErrorCode.jwtUnsupported,
    path,
    `${what} needs a validated JWT (RequestAuthentication), which Ambit does not do; use principals or namespaces (mTLS identities) instead`,
  );
}

/**
 * One rule, for either layer. At L4 the L7 parts are validated and reported in `l7` (the caller decides what dropping
 * them means for its action); at L7 they are compiled, and the JWT attributes are refused (see `jwtUnsupported`).
 */
export function compileRule(raw: unknown, path: string, layer: "L4"): RuleOutcome<CompiledRule>;
export function compileRule(raw: unknown, path: string, layer: "L7"): RuleOutcome<CompiledL7Rule>;
export function compileRule(raw: unknown, path: string, layer: Layer): RuleOutcome<CompiledL7Rule> {
  if (!isObject(raw)) throw new PolicyCompileError(PolicyErrorCode.badValue, path, "must be an object");
  onlyKnown(raw, RULE_FIELDS, path);
  const l7: string[] = [];
  const rule: CompiledL7Rule = {};
  // Istio reads an empty list as an absent field (any value); the L4 compile has always read it as "no value". At L7
  // neither reading is assumed: the list is refused, so a ported policy never silently means the opposite.
  const notEmpty = (obj: Record<string, unknown>, at: string) => {
    if (layer !== "L7") return;
    for (const [k, v] of Object.entries(obj))
      if (Array.isArray(v) && v.length === 0)
        throw new PolicyCompileError(PolicyErrorCode.badValue, `${at}.${k}`, "is empty: remove the field (any value) or list the values it should match");
  };
  notEmpty(raw, path);
  if (raw.from !== undefined) {
    if (!Array.isArray(raw.from)) throw new PolicyCompileError(PolicyErrorCode.badValue, `${path}.from`, "must be a list");
    rule.from = raw.from.map((f, i) => {
      const p = `${path}.from[${i}].source`;
      if (!isObject(f) || !isObject(f.source)) throw new PolicyCompileError(PolicyErrorCode.badValue, p, "required");
      onlyKnown(f, ["source"], `${path}.from[${i}]`);
      const s = f.source;
      onlyKnown(s, [...L4_SOURCE_FIELDS, ...L7_SOURCE_FIELDS], p);
      notEmpty(s, p);
      for (const k of L7_SOURCE_FIELDS) {
        if (s[k] === undefined) continue;
        if (layer === "L7") throw jwtUnsupported(`${p}.${k}`, k);
        stringList(s[k], `${p}.${k}`);
        l7.push(k);
      }
      const out: CompiledSource = {};
      if (s.principals !== undefined) out.principals = principals(s.principals, `${p}.principals`);
      if (s.notPrincipals !== undefined) out.notPrincipals = principals(s.notPrincipals, `${p}.notPrincipals`);
      if (s.namespaces !== undefined) out.namespaces = stringList(s.namespaces, `${p}.namespaces`);
      if (s.notNamespaces !== undefined) out.notNamespaces = stringList(s.notNamespaces, `${p}.notNamespaces`);
      // Each kept as its own field: fields of one source are ANDed, so merging the lists would widen the rule.
      for (const field of ["ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"] as const) {
        if (s[field] !== undefined) out[field] = cidrList(s[field], `${p}.${field}`);
      }
      return out;
    });
  }
  if (raw.to !== undefined) {
    if (!Array.isArray(raw.to)) throw new PolicyCompileError(PolicyErrorCode.badValue, `${path}.to`, "must be a list");
    rule.to = raw.to.map((t, i) => {
      const p = `${path}.to[${i}].operation`;
      if (!isObject(t) || !isObject(t.operation)) throw new PolicyCompileError(PolicyErrorCode.badValue, p, "required");
      onlyKnown(t, ["operation"], `${path}.to[${i}]`);
      const o = t.operation;
      onlyKnown(o, [...L4_OPERATION_FIELDS, ...L7_OPERATION_FIELDS], p);
      notEmpty(o, p);
      const out: CompiledL7Operation = {};
      for (const k of L7_OPERATION_FIELDS) {
        if (o[k] === undefined) continue;
        if (layer === "L7") {
          out[k] = L7_OPERATION_READERS[k](o[k], `${p}.${k}`);
          continue;
        }
        stringList(o[k], `${p}.${k}`);
        l7.push(k);
      }
      if (o.ports !== undefined) out.ports = portList(o.ports, `${p}.ports`);
      if (o.notPorts !== undefined) out.notPorts = portList(o.notPorts, `${p}.notPorts`);
      return out;
    });
  }
  if (raw.when !== undefined) {
    if (!Array.isArray(raw.when)) throw new PolicyCompileError(PolicyErrorCode.badValue, `${path}.when`, "must be a list");
    const conditions: CompiledL7Condition[] = [];
    raw.when.forEach((w, i) => {
      const p = `${path}.when[${i}]`;
      if (!isObject(w) || typeof w.key !== "string") throw new PolicyCompileError(PolicyErrorCode.badValue, `${p}.key`, "required");
      onlyKnown(w, CONDITION_FIELDS, p);
      notEmpty(w, p);
      const values = w.values !== undefined ? stringList(w.values, `${p}.values`) : undefined;
      const notValues = w.notValues !== undefined ? stringList(w.notValues, `${p}.notValues`) : undefined;
      if (!values && !notValues) throw new PolicyCompileError(PolicyErrorCode.badValue, p, "needs values or notValues");
      if (L4_CONDITION_KEYS.includes(w.key as L4ConditionKey)) {
        if (w.key.endsWith(".ip")) [values, notValues].forEach((list, j) => list && cidrList(list, `${p}.${j ? "notValues" : "values"}`));
        if (w.key === "destination.port") [values, notValues].forEach((list, j) => list && portList(list, `${p}.${j ? "notValues" : "values"}`));
        conditions.push({ key: w.key as L4ConditionKey, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) });
      } else if (layer === "L7") {
        if (w.key.startsWith("request.auth.")) throw jwtUnsupported(`${p}.key`, w.key);
        if (!w.key.startsWith("request.headers"))
          throw new PolicyCompileError(
            PolicyErrorCode.unsupportedAttribute,
            `${p}.key`,
            `"${w.key}" is not a supported attribute (at a waypoint: ${L7_CONDITION_HELP})`,
          );
        const header = headerNameOf(w.key, `${p}.key`);
        conditions.push({ key: "request.headers", header, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) });
      } else if (/^(request\.|experimental\.|connection\.sni$|source\.user$)/.test(w.key)) {
        l7.push(`when ${w.key}`);
      } else {
        throw new PolicyCompileError(
          PolicyErrorCode.unsupportedAttribute,
          `${p}.key`,
          `"${w.key}" is not a supported attribute (L4: ${L4_CONDITION_KEYS.join(", ")})`,
        );
      }
    });
    if (conditions.length) rule.when = conditions;
  }
  return { rule, l7 };
}

export const condition = (status: Condition["status"], reason: Condition["reason"], message: string, generation: unknown): Condition => ({
  type: "Accepted",
  status,
  reason,
  message,
  ...(typeof generation === "number" ? { observedGeneration: generation } : {}),
});

/** How many values a compiled rule holds, for the size bound. */
function valueCount(rule: CompiledL7Rule): number {
  let n = 0;
  for (const source of rule.from ?? []) for (const list of Object.values(source)) n += (list as unknown[]).length;
  for (const operation of rule.to ?? []) for (const list of Object.values(operation)) n += (list as unknown[]).length;
  for (const c of rule.when ?? []) n += (c.values?.length ?? 0) + (c.notValues?.length ?? 0);
  return Math.max(n, 1);
}

/** The spec's shape and action, the same for both layers: CUSTOM (and its `provider`) is refused, as no external authorizer exists. */
export function checkSpec(raw: unknown, spec: Record<string, unknown>): AuthorizationAction {
  if (!isObject(raw) && raw !== undefined) throw new PolicyCompileError(PolicyErrorCode.badValue, "spec", "must be an object");
  onlyKnown(spec, AUTHZ_SPEC_FIELDS, "spec");
  const action = spec.action === undefined ? "ALLOW" : spec.action;
  if (action !== "ALLOW" && action !== "DENY" && action !== "AUDIT") {
    throw new PolicyCompileError(
      PolicyErrorCode.unsupportedAction,
      "spec.action",
      `"${String(action)}" is not enforced by Ambit (use ALLOW, DENY or AUDIT; CUSTOM needs an external authorizer Ambit does not have)`,
    );
  }
  if (spec.provider !== undefined)
    throw new PolicyCompileError(PolicyErrorCode.unsupportedAction, "spec.provider", "belongs to action CUSTOM, which Ambit does not enforce");
  return action;
}

/** `spec.rules` for one layer, within the size bound every enforcer relies on. */
export function compileRules(spec: Record<string, unknown>, layer: "L4"): Array<RuleOutcome<CompiledRule>>;
export function compileRules(spec: Record<string, unknown>, layer: "L7"): Array<RuleOutcome<CompiledL7Rule>>;
export function compileRules(spec: Record<string, unknown>, layer: Layer): Array<RuleOutcome<CompiledL7Rule>> {
  if (spec.rules !== undefined && !Array.isArray(spec.rules)) throw new PolicyCompileError(PolicyErrorCode.badValue, "spec.rules", "must be a list");
  const outcomes = ((spec.rules as unknown[] | undefined) ?? []).map((r, i) =>
    layer === "L4" ? compileRule(r, `spec.rules[${i}]`, "L4") : compileRule(r, `spec.rules[${i}]`, "L7"),
  );
  const values = outcomes.reduce((n, o) => n + valueCount(o.rule), 0);
  if (values > MAX_POLICY_VALUES)
    throw new PolicyCompileError(
      PolicyErrorCode.tooLarge,
      "spec.rules",
      `${values} values (principals, namespaces, blocks, ports, conditions) in one policy, more than the ${MAX_POLICY_VALUES} ${layer === "L4" ? "an agent" : "a waypoint"} accepts; aggregate IP blocks into wider CIDRs or split the policy`,
    );
  return outcomes;
}

/**
 * Istio's semantics for L4 enforcement. ALLOW rules that need L7 are dropped (the policy allows less), DENY rules
 * keep their L4 parts (they deny more), AUDIT rules never change a decision (agents log the connections they
 * match). An invalid policy is never partly applied and fails closed for the workloads it selects (or could have
 * selected, when the selector itself is invalid): an invalid ALLOW becomes an ALLOW with no rules (its workloads get
 * only what other ALLOW policies grant), an invalid DENY denies everything, an invalid AUDIT audits nothing. Either
 * way the condition says why and what to fix.
 */
export function compileAuthorizationPolicy(obj: KubeObject): CompileResult<CompiledAuthorization> {
  const namespace = obj.metadata.namespace ?? "";
  const name = obj.metadata.name;
  const spec = isObject(obj.spec) ? obj.spec : {};
  const action = spec.action === undefined ? "ALLOW" : spec.action;
  const base = { namespace, name, ...scopeOf(spec) };
  try {
    const checked = checkSpec(obj.spec, spec);
    selectorOf(spec);
    // A policy bound by targetRefs is meant for a waypoint (compileForEnforcers never hands it here alone). Reading it
    // as namespace-wide would widen ALLOWs of workloads that have other ALLOW policies, so it is refused (fail closed).
    for (const field of ["targetRef", "targetRefs"]) {
      if (spec[field] !== undefined)
        throw new PolicyCompileError(
          PolicyErrorCode.forWaypoint,
          `spec.${field}`,
          "binds the policy to a waypoint, which enforces it (compileWaypointAuthorizationPolicy); node agents never do: use spec.selector for enforcement by the node agents",
        );
    }
    const outcomes = compileRules(spec, "L4");
    const notes: string[] = [];
    const rules: CompiledRule[] = [];
    outcomes.forEach((o, i) => {
      if (o.l7.length === 0) return void rules.push(o.rule);
      if (action === "ALLOW")
        notes.push(`rule ${i} needs L7 (${o.l7.join(", ")}): dropped for L4 enforcement, so it allows nothing until a waypoint enforces it`);
      else {
        rules.push(o.rule);
        notes.push(
          `rule ${i} needs L7 (${o.l7.join(", ")}): ${action === "DENY" ? "enforced on its L4 parts only, so it denies more" : "audited on its L4 parts only, so it logs more"}; attach a waypoint to enforce it exactly`,
        );
      }
    });
    const compiled: CompiledAuthorization = { ...base, action: checked, rules };
    const accepted =
      action === "AUDIT" ? "audited at L4 by the destination node agents (logged, never changes a decision)" : "enforced at L4 by the destination node agents";
    return notes.length
      ? { compiled, condition: condition("True", "PartiallyEnforced", notes.join("; "), obj.metadata.generation) }
      : { compiled, condition: condition("True", "Accepted", accepted, obj.metadata.generation) };
  } catch (err) {
    if (!(err instanceof PolicyCompileError)) throw err;
    const failed: CompiledAuthorization["action"] = action === "DENY" ? "DENY" : action === "AUDIT" ? "AUDIT" : "ALLOW";
    const scope = base.selector || base.selectorKeys ? "it could have selected" : "it selects";
    const outcome =
      failed === "DENY" ? `denying everything ${scope}` : failed === "AUDIT" ? "auditing nothing" : `allowing nothing through it for the workloads ${scope}`;
    return {
      compiled: { ...base, action: failed, rules: failed === "DENY" ? [{}] : [] },
      condition: condition("False", "Invalid", `${err.message}; not applied as written: ${outcome} until fixed`, obj.metadata.generation),
      error: { code: err.code, path: err.path },
    };
  }
}

export function compilePeerAuthentication(obj: KubeObject): CompileResult<CompiledPeerAuthentication> {
  const namespace = obj.metadata.namespace ?? "";
  const spec = isObject(obj.spec) ? obj.spec : {};
  const createdAt = String(obj.metadata.creationTimestamp ?? "");
  try {
    onlyKnown(spec, PEER_SPEC_FIELDS, "spec");
    const selector = selectorOf(spec);
    const mtls = spec.mtls === undefined ? {} : spec.mtls;
    if (!isObject(mtls)) throw new PolicyCompileError(PolicyErrorCode.badValue, "spec.mtls", "must be an object");
    onlyKnown(mtls, ["mode"], "spec.mtls");
    const mode = (mtls.mode ?? "UNSET") as MtlsMode;
    if (!MODES.includes(mode))
      throw new PolicyCompileError(PolicyErrorCode.badValue, "spec.mtls.mode", `"${String(mtls.mode)}" must be one of ${MODES.join(", ")}`);
    const portLevel: Record<string, MtlsMode> = {};
    if (spec.portLevelMtls !== undefined) {
      // Istio refuses it too ("portLevelMtls requires selector"): target ports are a property of selected workloads.
      if (!selector)
        throw new PolicyCompileError(
          PolicyErrorCode.badValue,
          "spec.portLevelMtls",
          "requires spec.selector (port-level modes apply to the workloads a selector picks)",
        );
      if (!isObject(spec.portLevelMtls)) throw new PolicyCompileError(PolicyErrorCode.badValue, "spec.portLevelMtls", "must map port numbers to {mode}");
      for (const [port, value] of Object.entries(spec.portLevelMtls)) {
        portList([port], "spec.portLevelMtls");
        if (isObject(value)) onlyKnown(value, ["mode"], `spec.portLevelMtls.${port}`);
        const m = isObject(value) ? ((value.mode ?? "UNSET") as MtlsMode) : undefined;
        if (!m || !MODES.includes(m))
          throw new PolicyCompileError(PolicyErrorCode.badValue, `spec.portLevelMtls.${port}.mode`, `must be one of ${MODES.join(", ")}`);
        portLevel[port] = m;
      }
    }
    const compiled: CompiledPeerAuthentication = { namespace, name: obj.metadata.name, ...(selector ? { selector } : {}), mode, portLevel, createdAt };
    return { compiled, condition: condition("True", "Accepted", "enforced by the destination node agents", obj.metadata.generation) };
  } catch (err) {
    if (!(err instanceof PolicyCompileError)) throw err;
    // Fail closed: an unreadable peer authentication demands mTLS for everything it selects or could have selected.
    return {
      compiled: { namespace, name: obj.metadata.name, ...scopeOf(spec), mode: "STRICT", portLevel: {}, createdAt },
      condition: condition("False", "Invalid", `${err.message}; not applied as written: STRICT until fixed`, obj.metadata.generation),
      error: { code: err.code, path: err.path },
    };
  }
}
