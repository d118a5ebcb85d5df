// Validates AuthorizationPolicy and PeerAuthentication objects and compiles them to L4 rules, with status conditions saying what is enforced where.
import net from "node:net";
import type { KubeObject } from "../../kube/client.ts";
import { type CompiledAuthorization, type CompiledCondition, type CompiledOperation, type CompiledPeerAuthentication, type CompiledRule, type CompiledSource, L4_CONDITION_KEYS, type L4ConditionKey, type MtlsMode } from "../../contract/authorization.ts";

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
}

const L7_SOURCE_FIELDS = ["requestPrincipals", "notRequestPrincipals"] as const;
const L4_SOURCE_FIELDS = ["principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"] as const;
const L7_OPERATION_FIELDS = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"] as const;
const L4_OPERATION_FIELDS = ["ports", "notPorts"] as const;
const MODES: MtlsMode[] = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"];

class Invalid extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function stringList(v: unknown, path: string): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && s !== "")) throw new Invalid(`${path}: must be a list of non-empty strings`);
  return v as string[];
}

function cidrList(v: unknown, path: string): string[] {
  const list = stringList(v, path);
  list.forEach((block, i) => {
    const [ip, bits, extra] = block.split("/");
    const family = net.isIP(ip ?? "");
    const max = family === 6 ? 128 : 32;
    if (!family || extra !== undefined || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > max))) throw new Invalid(`${path}[${i}]: "${block}" is not an IP address or CIDR block`);
  });
  return list;
}

function portList(v: unknown, path: string): number[] {
  if (!Array.isArray(v)) throw new Invalid(`${path}: must be a list of port numbers`);
  return v.map((p, i) => {
    const n = typeof p === "number" ? p : /^\d+$/.test(String(p)) ? Number(p) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Invalid(`${path}[${i}]: "${String(p)}" is not a port number (1-65535)`);
    return n;
  });
}

function selectorOf(spec: Record<string, unknown>): Record<string, string> | undefined {
  if (spec.selector === undefined) return undefined;
  if (!isObject(spec.selector)) throw new Invalid("spec.selector: must be an object with matchLabels");
  const labels = spec.selector.matchLabels;
  if (labels === undefined) return undefined;
  if (!isObject(labels) || !Object.values(labels).every((v) => typeof v === "string")) throw new Invalid("spec.selector.matchLabels: must map label names to string values");
  return labels as Record<string, string>;
}

/** Principals are written without the scheme; a pasted `spiffe://` prefix is a common mistake that would never match. */
function principals(v: unknown, path: string): string[] {
  const list = stringList(v, path);
  list.forEach((p, i) => {
    if (p.startsWith("spiffe://")) throw new Invalid(`${path}[${i}]: write principals without the spiffe:// scheme, e.g. "cluster.local/ns/default/sa/app"`);
  });
  return list;
}

interface RuleOutcome {
  rule: CompiledRule;
  /** L7 attributes the rule named (for the condition message). */
  l7: string[];
}

function compileRule(raw: unknown, path: string): RuleOutcome {
  if (!isObject(raw)) throw new Invalid(`${path}: must be an object`);
  const l7: string[] = [];
  const rule: CompiledRule = {};
  if (raw.from !== undefined) {
    if (!Array.isArray(raw.from)) throw new Invalid(`${path}.from: must be a list`);
    rule.from = raw.from.map((f, i) => {
      const p = `${path}.from[${i}].source`;
      if (!isObject(f) || !isObject(f.source)) throw new Invalid(`${p}: required`);
      const s = f.source;
      for (const k of Object.keys(s)) if (![...L4_SOURCE_FIELDS, ...L7_SOURCE_FIELDS].includes(k as never)) throw new Invalid(`${p}.${k}: unknown field`);
      for (const k of L7_SOURCE_FIELDS) {
        if (s[k] === undefined) continue;
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
    if (!Array.isArray(raw.to)) throw new Invalid(`${path}.to: must be a list`);
    rule.to = raw.to.map((t, i) => {
      const p = `${path}.to[${i}].operation`;
      if (!isObject(t) || !isObject(t.operation)) throw new Invalid(`${p}: required`);
      const o = t.operation;
      for (const k of Object.keys(o)) if (![...L4_OPERATION_FIELDS, ...L7_OPERATION_FIELDS].includes(k as never)) throw new Invalid(`${p}.${k}: unknown field`);
      for (const k of L7_OPERATION_FIELDS) {
        if (o[k] === undefined) continue;
        stringList(o[k], `${p}.${k}`);
        l7.push(k);
      }
      const out: CompiledOperation = {};
      if (o.ports !== undefined) out.ports = portList(o.ports, `${p}.ports`);
      if (o.notPorts !== undefined) out.notPorts = portList(o.notPorts, `${p}.notPorts`);
      return out;
    });
  }
  if (raw.when !== undefined) {
    if (!Array.isArray(raw.when)) throw new Invalid(`${path}.when: must be a list`);
    const conditions: CompiledCondition[] = [];
    raw.when.forEach((w, i) => {
      const p = `${path}.when[${i}]`;
      if (!isObject(w) || typeof w.key !== "string") throw new Invalid(`${p}.key: required`);
      const values = w.values !== undefined ? stringList(w.values, `${p}.values`) : undefined;
      const notValues = w.notValues !== undefined ? stringList(w.notValues, `${p}.notValues`) : undefined;
      if (!values && !notValues) throw new Invalid(`${p}: needs values or notValues`);
      if (L4_CONDITION_KEYS.includes(w.key as L4ConditionKey)) {
        if (w.key.endsWith(".ip")) [values, notValues].forEach((list, j) => list && cidrList(list, `${p}.${j ? "notValues" : "values"}`));
        if (w.key === "destination.port") [values, notValues].forEach((list, j) => list && portList(list, `${p}.${j ? "notValues" : "values"}`));
        conditions.push({ key: w.key as L4ConditionKey, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) });
      } else if (/^(request\.|experimental\.|connection\.sni$|source\.user$)/.test(w.key)) {
        l7.push(`when ${w.key}`);
      } else {
        throw new Invalid(`${p}.key: "${w.key}" is not a supported attribute (L4: ${L4_CONDITION_KEYS.join(", ")})`);
      }
    });
    if (conditions.length) rule.when = conditions;
  }
  return { rule, l7 };
}

const condition = (status: Condition["status"], reason: Condition["reason"], message: string, generation: unknown): Condition => ({
  type: "Accepted",
  status,
  reason,
  message,
  ...(typeof generation === "number" ? { observedGeneration: generation } : {}),
});

/**
 * Istio's semantics for L4 enforcement. ALLOW rules that need L7 are dropped (the policy allows less), DENY rules
 * keep their L4 parts (they deny more). An invalid policy is never partly applied and fails closed: an invalid
 * ALLOW becomes an ALLOW with no rules (its workloads get only what other ALLOW policies grant), an invalid DENY
 * denies everything in its scope. Either way the condition says why and what to fix.
 */
export function compileAuthorizationPolicy(obj: KubeObject): CompileResult<CompiledAuthorization> {
  const namespace = obj.metadata.namespace ?? "";
  const name = obj.metadata.name;
  const spec = isObject(obj.spec) ? obj.spec : {};
  const action = spec.action === undefined ? "ALLOW" : spec.action;
  let selector: Record<string, string> | undefined;
  try {
    selector = selectorOf(spec);
  } catch {
    selector = undefined;
  }
  const base = { namespace, name, ...(selector ? { selector } : {}) };
  try {
    if (action !== "ALLOW" && action !== "DENY") {
      throw new Invalid(`spec.action: "${String(action)}" is not enforced by Ambit (use ALLOW or DENY; AUDIT and CUSTOM need a component Ambit does not have)`);
    }
    selectorOf(spec);
    // A policy bound by targetRefs is meant for a waypoint. Reading it as namespace-wide would widen ALLOWs of
    // workloads that have other ALLOW policies, so it is refused (fail closed) until waypoints enforce it.
    for (const field of ["targetRef", "targetRefs"]) {
      if (spec[field] !== undefined) throw new Invalid(`spec.${field}: binds the policy to a waypoint, which Ambit does not enforce yet; use spec.selector for enforcement by the node agents`);
    }
    if (spec.rules !== undefined && !Array.isArray(spec.rules)) throw new Invalid("spec.rules: must be a list");
    const outcomes = ((spec.rules as unknown[] | undefined) ?? []).map((r, i) => compileRule(r, `spec.rules[${i}]`));
    const notes: string[] = [];
    const rules: CompiledRule[] = [];
    outcomes.forEach((o, i) => {
      if (o.l7.length === 0) return void rules.push(o.rule);
      if (action === "ALLOW") notes.push(`rule ${i} needs L7 (${o.l7.join(", ")}): dropped for L4 enforcement, so it allows nothing until a waypoint enforces it`);
      else {
        rules.push(o.rule);
        notes.push(`rule ${i} needs L7 (${o.l7.join(", ")}): enforced on its L4 parts only, so it denies more; attach a waypoint to enforce it exactly`);
      }
    });
    const compiled: CompiledAuthorization = { ...base, action, rules };
    return notes.length ? { compiled, condition: condition("True", "PartiallyEnforced", notes.join("; "), obj.metadata.generation) } : { compiled, condition: condition("True", "Accepted", "enforced at L4 by the destination node agents", obj.metadata.generation) };
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    const denyAll = action === "DENY";
    return {
      compiled: { ...base, action: denyAll ? "DENY" : "ALLOW", rules: denyAll ? [{}] : [] },
      condition: condition("False", "Invalid", `${err.message}; not applied as written: ${denyAll ? "denying everything it selects" : "allowing nothing through it"} until fixed`, obj.metadata.generation),
    };
  }
}

export function compilePeerAuthentication(obj: KubeObject): CompileResult<CompiledPeerAuthentication> {
  const namespace = obj.metadata.namespace ?? "";
  const spec = isObject(obj.spec) ? obj.spec : {};
  const createdAt = String(obj.metadata.creationTimestamp ?? "");
  try {
    const selector = selectorOf(spec);
    const mtls = spec.mtls === undefined ? {} : spec.mtls;
    if (!isObject(mtls)) throw new Invalid("spec.mtls: must be an object");
    const mode = (mtls.mode ?? "UNSET") as MtlsMode;
    if (!MODES.includes(mode)) throw new Invalid(`spec.mtls.mode: "${String(mtls.mode)}" must be one of ${MODES.join(", ")}`);
    const portLevel: Record<string, MtlsMode> = {};
    const notes: string[] = [];
    if (spec.portLevelMtls !== undefined) {
      if (!isObject(spec.portLevelMtls)) throw new Invalid("spec.portLevelMtls: must map port numbers to {mode}");
      for (const [port, value] of Object.entries(spec.portLevelMtls)) {
        portList([port], "spec.portLevelMtls");
        const m = isObject(value) ? ((value.mode ?? "UNSET") as MtlsMode) : undefined;
        if (!m || !MODES.includes(m)) throw new Invalid(`spec.portLevelMtls.${port}.mode: must be one of ${MODES.join(", ")}`);
        portLevel[port] = m;
      }
      if (!selector && Object.keys(portLevel).length) notes.push("portLevelMtls is ignored without a workload selector (as in Istio)");
    }
    const compiled: CompiledPeerAuthentication = { namespace, name: obj.metadata.name, ...(selector ? { selector } : {}), mode, portLevel: selector ? portLevel : {}, createdAt };
    return { compiled, condition: notes.length ? condition("True", "PartiallyEnforced", notes.join("; "), obj.metadata.generation) : condition("True", "Accepted", "enforced by the destination node agents", obj.metadata.generation) };
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    // Fail closed: an unreadable peer authentication demands mTLS for everything it would have selected.
    let selector: Record<string, string> | undefined;
    try {
      selector = selectorOf(spec);
    } catch {
      selector = undefined;
    }
    return {
      compiled: { namespace, name: obj.metadata.name, ...(selector ? { selector } : {}), mode: "STRICT", portLevel: {}, createdAt },
      condition: condition("False", "Invalid", `${err.message}; not applied as written: STRICT until fixed`, obj.metadata.generation),
    };
  }
}
