// Every object the chart renders meets Kubernetes' schema for its apiVersion and kind, with no field Kubernetes lacks.
import fs from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { type KubeManifest, renderChartDir } from "../../helm/chart.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { problems } from "../support/kube-schemas.ts";

const CHART = path.join(REPO_ROOT, "daemonset");
const RELEASE = { name: "ambit", namespace: "ambit-system" };

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
