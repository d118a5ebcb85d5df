// `ambit status` and `ambit enroll|unenroll` on recorded agent answers and a stand-in API: tables, documents, exit codes, waits.
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { runCheck } from "../../cli/check.ts";
import { type EnrollArgs, runEnroll } from "../../cli/enroll.ts";
import { runStatus } from "../../cli/status.ts";
import type { KubeObject } from "../../kube/client.ts";
import { FIXTURE_NOW, FixtureTransport, fakeKube, fixtureEnv } from "../support/cli-fixtures.ts";

const pod = (name: string, node: string, ready = true, image = "ambit/controller:0.1.0"): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "ambit-system" },
  spec: { nodeName: node, containers: [{ image }] },
  status: { phase: "Running", conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
});
const node = (name: string): KubeObject => ({ apiVersion: "v1", kind: "Node", metadata: { name } });

function cluster(opts: { controllerReady?: boolean; leaseRenewedAgoMs?: number } = {}) {
  return fakeKube({
    "/api/v1/namespaces/ambit-system/pods": [pod("ambit-controller-a", "node-1", opts.controllerReady ?? true), pod("ambit-controller-b", "node-2")],
    "/api/v1/nodes": [node("node-1"), node("node-2")],
    "/apis/coordination.k8s.io/v1/namespaces/ambit-system/leases/ambit-controller": {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "ambit-controller" },
      spec: {
        holderIdentity: "ambit-controller-b_1a2b3c4d",
        leaseDurationSeconds: 15,
        renewTime: new Date(FIXTURE_NOW - (opts.leaseRenewedAgoMs ?? 2000)).toISOString(),
      },
    },
  }).kube;
}

describe("ambit status", () => {
  it("shows the leader, every agent's config and captured pods, and exits zero when healthy", async () => {
    const env = fixtureEnv({ kube: cluster() });
    await runStatus(env, { output: "table" });
    await expect(env.out.join("")).toMatchFileSnapshot("golden/cli/status.txt");
    const json = fixtureEnv({ kube: cluster() });
    await runStatus(json, { output: "json" });
    const doc = JSON.parse(json.out.join(""));
    expect(doc).toMatchObject({ kind: "MeshStatus", healthy: true, leader: "ambit-controller-b", problems: [] });
    const yaml = fixtureEnv({ kube: cluster() });
    await runStatus(yaml, { output: "yaml" });
    expect(YAML.parse(yaml.out.join(""))).toEqual(doc);
  });

  it("fails with AMBIT_E_UNHEALTHY naming each problem: an agent down, a controller not ready, no fresh leader", async () => {
    const env = fixtureEnv({
      kube: cluster({ controllerReady: false, leaseRenewedAgoMs: 120_000 }),
      agents: new FixtureTransport(["node-1", "node-2"], ["node-2"]),
    });
    await expect(runStatus(env, { output: "table" })).rejects.toMatchObject({ code: "AMBIT_E_UNHEALTHY" });
    const problems = env.err.join("");
    expect(problems).toContain("controller ambit-controller-a is not ready");
    expect(problems).toContain("no controller holds a fresh leader lease");
    expect(problems).toMatch(/agent ambit-agent-1 on node-2 is not ready/);
    expect(problems).toMatch(/on node-2 did not answer on its admin port/);
  });

  it("reports a node without an agent pod", async () => {
    const env = fixtureEnv({ kube: cluster(), agents: new FixtureTransport(["node-1"]) });
    await expect(runStatus(env, { output: "json" })).rejects.toMatchObject({ code: "AMBIT_E_UNHEALTHY" });
    expect(JSON.parse(env.out.join("")).problems).toEqual([expect.stringContaining("node node-2 has no agent pod")]);
  });
});

describe("ambit enroll / unenroll", () => {
  const demoPod = (name: string, redirection?: string, extra: Partial<KubeObject["metadata"]> = {}): KubeObject => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "demo", ...(redirection ? { annotations: { "ambit.dev/redirection": redirection } } : {}), ...extra },
    spec: { nodeName: "node-1" },
    status: { phase: "Running" },
  });
  const args = (more: Partial<EnrollArgs> = {}): EnrollArgs => ({ output: "table", ns: "demo", timeout: 5, ...more });

  function api(podsOverTime: KubeObject[][], labelled: boolean) {
    let calls = 0;
    const { kube, patches } = fakeKube({
      "/api/v1/namespaces/demo": {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: "demo", labels: labelled ? { "ambit.dev/dataplane-mode": "ambient" } : {} },
      },
    });
    kube.list = async () => podsOverTime[Math.min(calls++, podsOverTime.length - 1)]! as never;
    return { kube, patches };
  }

  it("labels the namespace and waits until every running pod is captured (an opted-out pod stays released)", async () => {
    const optedOut = demoPod("legacy-tool", "disabled", { labels: { "ambit.dev/dataplane-mode": "none" } });
    const { kube, patches } = api(
      [
        [demoPod("orders", "disabled"), demoPod("payments"), optedOut],
        [demoPod("orders", "enabled"), demoPod("payments"), optedOut],
        [demoPod("orders", "enabled"), demoPod("payments", "enabled"), optedOut],
      ],
      true,
    );
    const env = fixtureEnv({ kube });
    env.now = () => Date.now();
    await runEnroll(env, args(), true);
    expect(patches).toEqual([{ path: "/api/v1/namespaces/demo", patch: { metadata: { labels: { "ambit.dev/dataplane-mode": "ambient" } } } }]);
    expect(env.out.join("")).toBe("3/3 running pods of demo captured\n");
  });

  it("unenroll removes the label and reports released pods as a document", async () => {
    const { kube, patches } = api([[demoPod("orders", "enabled")], [demoPod("orders", "disabled")]], false);
    const env = fixtureEnv({ kube });
    env.now = () => Date.now();
    await runEnroll(env, args({ output: "json" }), false);
    expect(patches[0]!.patch).toEqual({ metadata: { labels: { "ambit.dev/dataplane-mode": null } } });
    expect(JSON.parse(env.out.join(""))).toEqual({
      apiVersion: "ambit.dev/cli/v1",
      kind: "EnrollResult",
      namespace: "demo",
      enrolled: false,
      pods: [{ name: "orders", redirection: "disabled", expected: "disabled", done: true }],
    });
  });

  it("gives up after --timeout naming the pods still waiting, and knows unknown namespaces", async () => {
    const { kube } = api([[demoPod("orders", "disabled")]], true);
    const env = fixtureEnv({ kube });
    env.now = () => Date.now();
    await expect(runEnroll(env, args({ timeout: 0.3 }), true)).rejects.toMatchObject({
      code: "AMBIT_E_TIMEOUT",
      message: expect.stringContaining("orders (ambit.dev/redirection=disabled)"),
    });
    await expect(runEnroll(fixtureEnv(), args({ ns: "nope" }), true)).rejects.toMatchObject({ code: "AMBIT_E_UNKNOWN_NAMESPACE" });
  });
});

describe("ambit check", () => {
  const healthy = () => {
    const kube = cluster();
    const get = kube.get.bind(kube);
    const extra: Record<string, object> = {
      "/version": { gitVersion: "v1.32.0" },
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/authorizationpolicies.security.ambit.dev": { metadata: {} },
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peerauthentications.security.ambit.dev": { metadata: {} },
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/backendtrafficpolicies.networking.ambit.dev": { metadata: {} },
    };
    kube.get = (async (p: string) => extra[p] ?? get(p)) as typeof kube.get;
    kube.request = (async (_m: string, p: string) => kube.get(p)) as typeof kube.request;
    return kube;
  };

  it("passes on a healthy mesh, one line per check", async () => {
    const env = fixtureEnv({ kube: healthy() });
    await runCheck(env, { output: "table" });
    const text = env.out.join("");
    expect(text).toContain("[PASS] Kubernetes API reachable (v1.32.0)");
    expect(text).toContain("[PASS] CRD peerauthentications.security.ambit.dev installed");
    expect(text).toContain("[PASS] leader elected (ambit-controller-b)");
    expect(text).toMatch(/\[PASS\] node node-2: agent ambit-agent-1 ready/);
    expect(text).not.toContain("[FAIL]");
  });

  it("names the node whose agent is down and what to do, and exits AMBIT_E_UNHEALTHY", async () => {
    const env = fixtureEnv({ kube: healthy(), agents: new FixtureTransport(["node-1", "node-2"], ["node-2"]) });
    await expect(runCheck(env, { output: "json" })).rejects.toMatchObject({ code: "AMBIT_E_UNHEALTHY", message: expect.stringContaining("node-2") });
    const failed = JSON.parse(env.out.join("")).checks.filter((c: { passed: boolean }) => !c.passed);
    expect(failed).toEqual([
      expect.objectContaining({ check: "agent", message: "node node-2: agent ambit-agent-1 is not ready", hint: expect.stringContaining("describe pod") }),
    ]);
  });

  it("fails the CRD check when the mesh's CRDs are missing", async () => {
    const kube = healthy();
    const get = kube.get;
    kube.get = (async (p: string) => {
      if (p.includes("customresourcedefinitions")) throw Object.assign(new Error("404"), { status: 404 });
      return get(p);
    }) as typeof kube.get;
    const env = fixtureEnv({ kube });
    await expect(runCheck(env, { output: "table" })).rejects.toMatchObject({ code: "AMBIT_E_UNHEALTHY" });
    expect(env.out.join("")).toContain("[FAIL] CRD authorizationpolicies.security.ambit.dev is not installed\n       -> install the chart's CRDs");
  });
});
