// Kubernetes' schemas for objects the tests build or render: kubernetes-models' validation, plus fields a kind does not have.
import * as k8s from "@kubernetes/client-node";

/** What an object needs to be looked up: the rest is checked. */
export interface KubeManifest {
  apiVersion: string;
  kind: string;
}

type Model = new (data: unknown) => { validate(): void };
type Attribute = { baseName: string; type: string };
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** kubernetes-models' class for an apiVersion and kind: its validate() checks the object against Kubernetes' OpenAPI schema. */
async function kubernetesModel(apiVersion: string, kind: string): Promise<Model> {
  const [group, version] = apiVersion.includes("/") ? (apiVersion.split("/") as [string, string]) : ["", apiVersion];
  const specifier = `kubernetes-models/${group ? `${group}/` : ""}${version}/${kind}`;
  // Resolved by Node at run time; vite cannot (and need not) analyse a computed specifier.
  const module = (await import(/* @vite-ignore */ specifier)) as Record<string, Model>;
  return module[kind]!;
}

/** client-node's generated model of a Kubernetes type: the names and types of its fields, from the same OpenAPI spec. */
const modelOf = (type: string): Attribute[] | undefined =>
  (k8s as unknown as Record<string, { attributeTypeMap?: Attribute[] } | undefined>)[type]?.attributeTypeMap;

/**
 * The fields of `value` that its type does not have. kubernetes-models' schemas let unknown fields through (they
 * are generated without additionalProperties: false), and so would a server-side apply with a lenient client; a
 * misspelt field there is silently dropped by the API server. Types come from client-node's attributeTypeMap.
 */
function unknownFields(value: unknown, type: string, where: string): string[] {
  if (value === null || value === undefined) return [];
  const list = /^Array<(.+)>$/.exec(type);
  if (list) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, list[1]!, `${where}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return isObject(value) ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${where}.${k}`)) : [];
  // JSONSchemaProps' items and additionalProperties are typed `any` by the generator: a schema, a list of schemas
  // (items) or a boolean (additionalProperties).
  if (type === "JSONSchemaPropsOrArray" || type === "JSONSchemaPropsOrBool") {
    return Array.isArray(value)
      ? unknownFields(value, "Array<V1JSONSchemaProps>", where)
      : isObject(value)
        ? unknownFields(value, "V1JSONSchemaProps", where)
        : [];
  }
  const attributes = modelOf(type);
  // Scalars, IntOrString, `any`: kubernetes-models checks their types.
  if (!attributes || !isObject(value)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const a = attributes.find((x) => x.baseName === k);
    if (!a) out.push(`${where}.${k}`);
    else if (type === "V1JSONSchemaProps" && k === "items") out.push(...unknownFields(v, "JSONSchemaPropsOrArray", `${where}.${k}`));
    else if (type === "V1JSONSchemaProps" && k === "additionalProperties") out.push(...unknownFields(v, "JSONSchemaPropsOrBool", `${where}.${k}`));
    else out.push(...unknownFields(v, a.type, `${where}.${k}`));
  }
  return out;
}

/** client-node's name of a top-level type: V1DaemonSet for apps/v1 DaemonSet. */
const typeName = (o: KubeManifest) => {
  const version = o.apiVersion.split("/").at(-1)!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${o.kind}`;
};

/** What is wrong with an object (an empty list when nothing is): kubernetes-models' schema errors, then fields its kind does not have. */
export async function problems(o: KubeManifest): Promise<string[]> {
  const out: string[] = [];
  try {
    new (await kubernetesModel(o.apiVersion, o.kind))(o).validate();
  } catch (err) {
    out.push((err as Error).message);
  }
  if (!modelOf(typeName(o))) out.push(`no client-node model ${typeName(o)} for ${o.apiVersion} ${o.kind}`);
  else out.push(...unknownFields(o, typeName(o), "").map((f) => `unknown field ${f.slice(1)}`));
  return out;
}
