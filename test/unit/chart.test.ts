// The Helm chart in daemonset/, rendered as `helm template` would: what a user installs, checked object by object.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type KubeManifest, loadChart, renderChartDir } from "../../helm/chart.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

const CHART = path.join(REPO_ROOT, "daemonset");
type Container = { image: string; env: Array<{ name: string; value?: string }>; securityContext: { capabilities: { drop: string[]; add?: string[] }; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean } };
const find = (objects: KubeManifest[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name) as (KubeManifest & { spec: Record<string, any> }) | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
const envOf = (c: Container) => Object.fromEntries(c.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));

describe("the Ambit chart", () => {
  it("renders with its defaults: every namespaced object in the release namespace, CRDs apart, the next step in NOTES", async () => {
    const { crds, objects, notes } = await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" } });
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(["authorizationpolicies.security.ambit.dev", "peerauthentications.security.ambit.dev"]);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      ["ClusterRole/ambit-agent", "ClusterRole/ambit-controller", "ClusterRoleBinding/ambit-agent", "ClusterRoleBinding/ambit-controller", "DaemonSet/ambit-agent", "Deployment/ambit-controller", "PodDisruptionBudget/ambit-controller", "Role/ambit-agent", "Role/ambit-controller", "RoleBinding/ambit-agent", "RoleBinding/ambit-controller", "Service/ambit-controller", "ServiceAccount/ambit-agent", "ServiceAccount/ambit-controller"].sort(),
    );
    for (const o of objects.filter((o) => !o.kind.startsWith("Cluster"))) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe("ambit-system");
    expect(notes).toContain("kubectl label namespace <namespace> ambit.dev/dataplane-mode=ambient");
  });

  it("the agent DaemonSet: three capabilities and no more, read-only root, node-critical, every taint tolerated, surge rollout", async () => {
    const { objects } = await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" } });
    const ds = find(objects, "DaemonSet", "ambit-agent")!;
    const pod = ds.spec.template.spec;
    const agent = pod.containers[0] as Container;
    expect(agent.securityContext.capabilities).toEqual({ drop: ["ALL"], add: ["NET_ADMIN", "SYS_ADMIN", "NET_RAW"] });
    expect(agent.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(pod).toMatchObject({ priorityClassName: "system-node-critical", tolerations: [{ operator: "Exists" }], hostNetwork: true, terminationGracePeriodSeconds: 60 });
    expect(ds.spec.updateStrategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(agent.image).toBe("ambit/agent:0.1.0");
    expect(envOf(agent)).toMatchObject({ AMBIT_SYSTEM_NAMESPACE: "ambit-system", AMBIT_CONTROLLER_ADDRESS: "ambit-controller.ambit-system.svc", AMBIT_HANDOVER_WAIT_MS: "20000", AMBIT_DRAIN_DEADLINE_MS: "30000", TRUST_DOMAIN: "cluster.local" });
    expect(ds.spec.template.metadata.annotations).toMatchObject({ "prometheus.io/scrape": "true", "prometheus.io/port": "15020" });
  });

  it("values change what they name: namespace, images, replicas, trust domain; the controller never runs as root", async () => {
    const { objects } = await renderChartDir(CHART, {
      release: { name: "mesh", namespace: "mesh-system" },
      values: { trustDomain: "corp.example", agent: { image: { tag: "1.2.3" }, prometheusScrape: false }, controller: { replicas: 3 } },
    });
    const ds = find(objects, "DaemonSet", "ambit-agent")!;
    const agent = ds.spec.template.spec.containers[0] as Container;
    expect(agent.image).toBe("ambit/agent:1.2.3");
    expect(envOf(agent)).toMatchObject({ AMBIT_CONTROLLER_ADDRESS: "ambit-controller.mesh-system.svc", TRUST_DOMAIN: "corp.example" });
    expect(ds.spec.template.metadata.annotations).toBeUndefined();
    const deployment = find(objects, "Deployment", "ambit-controller")!;
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.template.spec.containers[0].securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    const binding = find(objects, "RoleBinding", "ambit-agent")!;
    expect((binding as unknown as { subjects: unknown[] }).subjects).toEqual([{ kind: "ServiceAccount", name: "ambit-agent", namespace: "mesh-system" }]);
  });

  it("is loaded as Helm's loader loads it: .Files holds crds/ and the other files, not templates/, Chart.yaml or values.yaml", async () => {
    const chart = await loadChart(CHART);
    const files = Object.keys(chart.files ?? {});
    expect(files).toEqual(expect.arrayContaining(["crds/authorizationpolicies.security.ambit.dev.yaml", "README.md"]));
    expect(files.filter((f) => /^(templates|charts)\/|^(Chart\.yaml|values\.yaml|values\.schema\.json)$/.test(f))).toEqual([]);
    expect(Object.keys(chart.templates)).toContain("agent.yaml");
  });
});
