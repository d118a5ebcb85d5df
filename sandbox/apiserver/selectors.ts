// Label and field selectors with Kubernetes semantics: ?labelSelector= / ?fieldSelector= strings and metav1.LabelSelector.
import { ApiError } from "./types.ts";
import type { KubeObject } from "./types.ts";

export type LabelMatcher = (labels: Record<string, string> | undefined) => boolean;
export type FieldMatcher = (obj: KubeObject) => boolean;

type Labels = Record<string, string>;
type Requirement = (labels: Labels) => boolean;

const has = (labels: Labels, key: string) => Object.hasOwn(labels, key);

const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a qualified name ([prefix/]name), or undefined when it is one. */
function labelKeyProblem(key: string): string | undefined {
  const parts = key.split("/");
  if (parts.length > 2) return `label key ${JSON.stringify(key)} may contain at most one "/"`;
  const name = parts.at(-1)!;
  const prefix = parts.length === 2 ? parts[0]! : undefined;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))
    return `label key prefix ${JSON.stringify(prefix)} must be a lowercase DNS subdomain`;
  if (name.length > 63 || !NAME_PART.test(name)) {
    return `label key name ${JSON.stringify(name)} must be 63 characters or less, consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric`;
  }
  return undefined;
}

function labelValueProblem(value: string): string | undefined {
  if (value === "" || (value.length <= 63 && NAME_PART.test(value))) return undefined;
  return `label value ${JSON.stringify(value)} must be 63 characters or less, empty or consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric`;
}

const unparsable = (requirement: string, why: string) => new ApiError(400, "BadRequest", `unable to parse requirement: ${JSON.stringify(requirement)}: ${why}`);

/** Splits at commas outside parentheses: in "a in (x,y),b" the first comma belongs to the set. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let depth = 0;
  for (let i = 0; i < selector.length; i++) {
    const char = selector[i];
    if (char === "(") {
      if (depth > 0) throw unparsable(selector.slice(start), "nested parentheses");
      depth++;
    } else if (char === ")") {
      if (depth === 0) throw unparsable(selector.slice(start, i + 1), "unexpected ')'");
      depth--;
    } else if (char === "," && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  if (depth > 0) throw unparsable(selector.slice(start), "missing ')'");
  parts.push(selector.slice(start));
  return parts.map((part) => part.trim());
}

const KEY = String.raw`([^\s=!(),<>]+)`;
const EXISTS = new RegExp(`^${KEY}$`);
const NOT_EXISTS = new RegExp(String.raw`^!\s*${KEY}$`);
const EQUALITY = new RegExp(String.raw`^${KEY}\s*(==|=|!=)\s*([^\s=!(),<>]*)$`);
const SET = new RegExp(String.raw`^${KEY}\s+(in|notin)\s*\(([^()]*)\)$`);
const NUMERIC = new RegExp(String.raw`^${KEY}\s*([<>])\s*([^\s=!(),<>]+)$`);

function parseRequirement(text: string): Requirement {
  const checkKey = (key: string) => {
    const problem = labelKeyProblem(key);
    if (problem !== undefined) throw unparsable(text, problem);
    return key;
  };
  const checkValue = (value: string) => {
    const problem = labelValueProblem(value);
    if (problem !== undefined) throw unparsable(text, problem);
    return value;
  };

  let match: RegExpExecArray | null;
  if ((match = NOT_EXISTS.exec(text))) {
    const key = checkKey(match[1]!);
    return (labels) => !has(labels, key);
  }
  if ((match = EXISTS.exec(text))) {
    const key = checkKey(match[1]!);
    return (labels) => has(labels, key);
  }
  if ((match = EQUALITY.exec(text))) {
    const key = checkKey(match[1]!);
    const value = checkValue(match[3]!);
    if (match[2] === "!=") return (labels) => !has(labels, key) || labels[key] !== value;
    return (labels) => has(labels, key) && labels[key] === value;
  }
  if ((match = SET.exec(text))) {
    const key = checkKey(match[1]!);
    const inner = match[3]!.trim();
    if (inner === "") throw unparsable(text, `for '${match[2]}' the set of values must not be empty`);
    const values = new Set(inner.split(",").map((value) => checkValue(value.trim())));
    if (match[2] === "notin") return (labels) => !has(labels, key) || !values.has(labels[key]!);
    return (labels) => has(labels, key) && values.has(labels[key]!);
  }
  if ((match = NUMERIC.exec(text))) {
    const key = checkKey(match[1]!);
    const bound = match[3]!;
    if (!/^-?[0-9]+$/.test(bound)) throw unparsable(text, `for '${match[2]}' the value must be an integer`);
    const greater = match[2] === ">";
    return (labels) => {
      const value = labels[key];
      if (!has(labels, key) || value === undefined || !/^-?[0-9]+$/.test(value)) return false;
      return greater ? Number(value) > Number(bound) : Number(value) < Number(bound);
    };
  }
  throw unparsable(text, "expected one of key, !key, key=value, key==value, key!=value, key in (v1,v2), key notin (v1,v2)");
}

/** Parses a `labelSelector` query parameter; empty selects everything, a syntax error is a 400. */
export function parseLabelSelector(selector: string | undefined): LabelMatcher {
  const text = (selector ?? "").trim();
  if (text === "") return () => true;
  const requirements = splitRequirements(text).map(parseRequirement);
  return (labels) => requirements.every((requirement) => requirement(labels ?? {}));
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }>;
}

/**
 * metav1.LabelSelector semantics: null/undefined selects nothing, {} selects everything. A selector Kubernetes
 * would refuse to convert (In without values, Exists with values, unknown operator) selects nothing, as controllers do.
 */
export function labelSelectorMatches(selector: LabelSelector | undefined | null, labels: Record<string, string> | undefined): boolean {
  if (selector === null || selector === undefined) return false;
  const present = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!has(present, key) || present[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const found = has(present, key);
    switch (operator) {
      case "In":
        if (values.length === 0 || !found || !values.includes(present[key]!)) return false;
        break;
      case "NotIn":
        if (values.length === 0 || (found && values.includes(present[key]!))) return false;
        break;
      case "Exists":
        if (values.length > 0 || !found) return false;
        break;
      case "DoesNotExist":
        if (values.length > 0 || found) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** Service spec.selector semantics: every pair must match, and an empty or missing selector selects nothing. */
export function selectorFromMap(selector: Record<string, string> | undefined): LabelMatcher {
  const pairs = Object.entries(selector ?? {});
  if (pairs.length === 0) return () => false;
  return (labels) => labels !== undefined && pairs.every(([key, value]) => has(labels, key) && labels[key] === value);
}

// ---- field selectors ----

type FieldGetter = (obj: KubeObject) => string;

function at(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** Kubernetes formats selectable fields with fmt: missing strings are "", booleans are "true"/"false". */
const stringField =
  (...path: string[]): FieldGetter =>
  (obj) => {
    const value = at(obj, ...path);
    return value === undefined || value === null ? "" : String(value);
  };
const boolField =
  (...path: string[]): FieldGetter =>
  (obj) =>
    String(at(obj, ...path) === true);

const COMMON_FIELDS: Record<string, FieldGetter> = {
  "metadata.name": stringField("metadata", "name"),
  "metadata.namespace": stringField("metadata", "namespace"),
};

const FIELDS_BY_KIND: Record<string, Record<string, FieldGetter>> = {
  Pod: {
    "spec.nodeName": stringField("spec", "nodeName"),
    "spec.serviceAccountName": stringField("spec", "serviceAccountName"),
    "spec.restartPolicy": stringField("spec", "restartPolicy"),
    "spec.schedulerName": stringField("spec", "schedulerName"),
    "spec.hostNetwork": boolField("spec", "hostNetwork"),
    "status.phase": stringField("status", "phase"),
    "status.podIP": (pod) => stringField("status", "podIP")(pod) || stringField("status", "podIPs", "0", "ip")(pod),
    "status.nominatedNodeName": stringField("status", "nominatedNodeName"),
  },
  Secret: { type: stringField("type") },
  Event: {
    "involvedObject.kind": stringField("involvedObject", "kind"),
    "involvedObject.name": stringField("involvedObject", "name"),
    "involvedObject.namespace": stringField("involvedObject", "namespace"),
    "involvedObject.uid": stringField("involvedObject", "uid"),
    "involvedObject.apiVersion": stringField("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": stringField("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": stringField("involvedObject", "fieldPath"),
    reason: stringField("reason"),
    type: stringField("type"),
    source: stringField("source", "component"),
    reportingComponent: stringField("reportingComponent"),
  },
  Node: { "spec.unschedulable": boolField("spec", "unschedulable") },
  Namespace: { "status.phase": stringField("status", "phase") },
};

/** Splits at separators not escaped with a backslash (Kubernetes escapes '\', ',' and '=' in values). */
function splitUnescaped(term: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < term.length; i++) {
    if (term[i] === "\\") i++;
    else if (term[i] === separator) {
      parts.push(term.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(term.slice(start));
  return parts;
}

function unescapeValue(value: string, selector: string): string {
  return value.replace(/\\(.?)/g, (_escape, char: string) => {
    if (char === "\\" || char === "," || char === "=") return char;
    throw new ApiError(400, "BadRequest", `invalid field selector: '${selector}'; invalid escape sequence in value ${JSON.stringify(value)}`);
  });
}

interface FieldTerm {
  get: FieldGetter;
  negated: boolean;
  value: string;
}

function parseFieldTerm(term: string, selector: string, fields: Record<string, FieldGetter>): FieldTerm {
  for (let i = 0; i < term.length; i++) {
    if (term[i] === "\\") {
      i++;
      continue;
    }
    const operator = ["!=", "==", "="].find((op) => term.startsWith(op, i));
    if (operator === undefined) continue;
    const field = term.slice(0, i).trim();
    const get = Object.hasOwn(fields, field) ? fields[field] : undefined;
    if (get === undefined) throw new ApiError(400, "BadRequest", `field label not supported: ${field}`);
    return { get, negated: operator === "!=", value: unescapeValue(term.slice(i + operator.length), selector) };
  }
  throw new ApiError(400, "BadRequest", `invalid selector: '${selector}'; can't understand '${term}'`);
}

/** Parses a `fieldSelector` query parameter for objects of `kind`; only the fields Kubernetes indexes are allowed. */
export function parseFieldSelector(selector: string | undefined, kind: string): FieldMatcher {
  const fields = { ...COMMON_FIELDS, ...FIELDS_BY_KIND[kind] };
  const terms = splitUnescaped(selector ?? "", ",")
    .filter((term) => term.trim() !== "")
    .map((term) => parseFieldTerm(term, selector ?? "", fields));
  return (obj) => terms.every(({ get, negated, value }) => (get(obj) === value) !== negated);
}
