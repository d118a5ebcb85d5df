// Every object the chart renders meets Kubernetes' schema for its apiVersion and kind, with no field Kubernetes lacks.
import fs from "node:fs/promises";
import path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { type KubeManifest, renderChartDir } from "../../helm/chart.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

const CHART = path.join(REPO_ROOT, "daemonset");
const RELEASE = { name: "ambit", namespace: "ambit-system" };

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

/** What is wrong with an object: kubernetes-models' schema errors, then fields its kind does not have. */
async function problems(o: KubeManifest): Promise<string[]> {
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

async function expectValid(values: Record<string, unknown>) {
  const { crds, objects } = await renderChartDir(CHART, { release: RELEASE, values });
  for (const crd of crds) expect([crd.apiVersion, crd.kind]).toEqual(["apiextensions.k8s.io/v1", "CustomResourceDefinition"]);
  for (const o of [...crds, ...objects]) expect(await problems(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
  return { crds, objects };
}

describe("the chart's objects against Kubernetes' schemas (kubernetes-models, strict about unknown fields)", () => {
  it("with the defaults: every object, the CRDs as apiextensions.k8s.io/v1 CustomResourceDefinitions", async () => {
    const { crds, objects } = await expectValid({});
    expect(crds.length).toBe(3);
    expect(new Set(objects.map((o) => o.kind))).toEqual(
      new Set(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "DaemonSet", "Service", "Deployment", "PodDisruptionBudget"]),
    );
  });

  it("with other values: images, replicas, numeric and hugepage quantities, no scrape annotations, other log level and trust domain, the dashboard ConfigMap", async () => {
    await expectValid({
      trustDomain: "corp.example",
      logLevel: "debug",
      agent: {
        image: { repository: "registry.example.com:5000/ambit/agent", tag: "1.2.3", pullPolicy: "Always" },
        prometheusScrape: false,
        resources: { requests: { cpu: 0.5, memory: "256Mi" }, limits: { memory: "2Gi", "hugepages-2Mi": "64Mi" } },
      },
      controller: { replicas: 3, workloadCertTtlSeconds: 3600, resources: { requests: { cpu: 1 }, limits: null } },
      dashboards: { enabled: true },
    });
  });

  it("with the sandbox's values (what `ambit dev up --mesh` installs)", async () => {
    await expectValid(parseYaml(await fs.readFile(path.join(REPO_ROOT, "sandbox", "chart-values.yaml"), "utf8")) as Record<string, unknown>);
  });

  it("finds what it must: a misspelt field anywhere, a wrong type, a CRD schema field Kubernetes lacks", async () => {
    const { crds, objects } = await renderChartDir(CHART, { release: RELEASE });
    const ds = structuredClone(objects.find((o) => o.kind === "DaemonSet")!) as KubeManifest & {
      spec: { template: { spec: { containers: Array<Record<string, unknown>> } } };
    };
    ds.spec.template.spec.containers[0]!.imagePulPolicy = "Always";
    (ds.spec.template.spec.containers[0]!.securityContext as Record<string, unknown>).capabilites = {};
    expect((await problems(ds)).sort()).toEqual([
      "unknown field spec.template.spec.containers[0].imagePulPolicy",
      "unknown field spec.template.spec.containers[0].securityContext.capabilites",
    ]);
    const deployment = structuredClone(objects.find((o) => o.kind === "Deployment")!) as KubeManifest & { spec: Record<string, unknown> };
    deployment.spec.replicas = "3";
    expect((await problems(deployment)).join()).toContain("spec/replicas must be integer");
    const crd = structuredClone(crds[0]!) as KubeManifest & {
      spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: Record<string, Record<string, unknown>> } } }> };
    };
    crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec!.additionalPropertes = false;
    expect(await problems(crd)).toEqual(["unknown field spec.versions[0].schema.openAPIV3Schema.properties.spec.additionalPropertes"]);
  });
});
