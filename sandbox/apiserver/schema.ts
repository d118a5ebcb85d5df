// Custom resources checked against their CRD's structural schema: types, enums, required fields, unknown fields pruned.
import type { KubeObject } from "./types.ts";

/** The part of OpenAPI v3 a structural CRD schema uses, and the Kubernetes extensions that change validation. */
export interface StructuralSchema {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  properties?: Record<string, StructuralSchema>;
  additionalProperties?: StructuralSchema | boolean;
  items?: StructuralSchema;
  required?: string[];
  enum?: unknown[];
  nullable?: boolean;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-embedded-resource"?: boolean;
}

export interface SchemaFindings {
  /** Paths of fields the schema does not know, removed from the object (kube-apiserver prunes them too). */
  unknown: string[];
  /** Field errors in Kubernetes' wording: "<path>: <reason>". */
  errors: string[];
}

const typeOf = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);

function check(value: unknown, schema: StructuralSchema, path: string, out: SchemaFindings): void {
  if (value === null) {
    if (!schema.nullable && schema.type !== undefined)
      out.errors.push(`${path}: Invalid value: "null": ${path} in body must be of type ${schema.type}: "null"`);
    return;
  }
  const actual = typeOf(value);
  if (schema["x-kubernetes-int-or-string"]) {
    if (actual !== "integer" && actual !== "string")
      out.errors.push(`${path}: Invalid value: "${actual}": ${path} in body must be of type integer or string: "${actual}"`);
    return;
  }
  const expected = schema.type;
  const matches = expected === undefined || expected === actual || (expected === "number" && actual === "integer");
  if (!matches) {
    out.errors.push(`${path}: Invalid value: "${actual}": ${path} in body must be of type ${expected}: "${actual}"`);
    return;
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    out.errors.push(`${path}: Unsupported value: ${JSON.stringify(value)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  if (actual === "array" && schema.items) (value as unknown[]).forEach((item, i) => check(item, schema.items!, `${path}[${i}]`, out));
  if (actual === "object") {
    const obj = value as Record<string, unknown>;
    for (const field of schema.required ?? []) if (obj[field] === undefined) out.errors.push(`${path}.${field}: Required value`);
    for (const [key, child] of Object.entries(obj)) {
      const childPath = path ? `${path}.${key}` : key;
      const known = schema.properties?.[key];
      if (known) check(child, known, childPath, out);
      else if (typeof schema.additionalProperties === "object") check(child, schema.additionalProperties, childPath, out);
      else if (schema.additionalProperties === true || schema["x-kubernetes-preserve-unknown-fields"]) continue;
      else {
        out.unknown.push(childPath);
        delete obj[key];
      }
    }
  }
}

/**
 * Validates a custom resource in place against `schema` (the CRD version's openAPIV3Schema) and prunes the fields it
 * does not declare. apiVersion, kind and metadata are the server's to check, as in Kubernetes.
 */
export function checkCustomResource(obj: KubeObject, schema: StructuralSchema): SchemaFindings {
  const out: SchemaFindings = { unknown: [], errors: [] };
  const { apiVersion, kind, metadata, ...rest } = obj;
  check(rest, { ...schema, properties: { ...(schema.properties ?? {}) } }, "", out);
  for (const key of Object.keys(obj)) if (!["apiVersion", "kind", "metadata"].includes(key) && !(key in rest)) delete obj[key];
  Object.assign(obj, { apiVersion, kind, metadata });
  return out;
}
