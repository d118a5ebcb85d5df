// Events as kubectl shows them: the sandbox scheduler, Deployment controller and recorder against a real API server.
import { execa } from "execa";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pathFor } from "../../kube/client.ts";
import { SharedInformers } from "../../kube/informers.ts";
import { DeploymentController } from "../../sandbox/controllers/deployments.ts";
import { EventRecorder } from "../../sandbox/controllers/events.ts";
import { Scheduler } from "../../sandbox/controllers/scheduler.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const hasKubectl = (await execa("sh", ["-c", "command -v kubectl"], { reject: false })).exitCode === 0;
const log = pino({ level: "silent" });

function kubectlFor(t: () => TestApiServer) {
  return async (args: string[]) => {
    const r = await execa("kubectl", args, { env: { KUBECONFIG: t().kubeconfigPath }, reject: false, timeout: 30_000 });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
}

/** The rows of the Events section of `kubectl describe`, as [type, reason, age, from, message]. */
function describedEvents(describe: string): string[][] {
  const section = describe.split(/^Events:/m)[1] ?? "";
  return section
    .split("\n")
    .slice(3)
    .filter((l) => l.trim() !== "")
    .map((l) => l.trim().split(/\s{2,}/));
}

describe.skipIf(!hasKubectl)("events recorded by the sandbox's scheduler and controllers, read with kubectl", () => {
  let t: TestApiServer;
  let informers: SharedInformers;
  let scheduler: Scheduler;
  let deployments: DeploymentController;
  const kubectl = kubectlFor(() => t);

  beforeAll(async () => {
    t = await startTestApiServer();
    for (const name of ["node-1", "node-2"]) {
      await t.client.create(pathFor("v1", "nodes"), { apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name } } });
      const now = new Date().toISOString();
      await t.client.mergePatch(`${pathFor("v1", "nodes")}/${name}/status`, {
        status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", lastHeartbeatTime: now, lastTransitionTime: now }] },
      });
    }
    informers = new SharedInformers(t.client, ["deployments", "pods", "nodes"]);
    scheduler = new Scheduler(t.client, informers, log);
    deployments = new DeploymentController(t.client, informers, log);
    await informers.start();
    expect((await kubectl(["create", "namespace", "shop"])).exitCode).toBe(0);
  });
  afterAll(async () => {
    scheduler?.stop();
    deployments?.stop();
    await informers?.stop();
    await t?.close();
  });

  it("kubectl scale: the Deployment's events say it scaled and created pods; each pod's say it was scheduled", async () => {
    expect((await kubectl(["create", "deployment", "web", "-n", "shop", "--image=nginx", "--replicas=1"])).exitCode).toBe(0);
    const pods = async () => JSON.parse((await kubectl(["get", "pods", "-n", "shop", "-l", "app=web", "-o", "json"])).stdout).items;
    await expect.poll(async () => (await pods()).filter((p: { spec: { nodeName?: string } }) => p.spec.nodeName).length, { timeout: 10_000 }).toBe(1);
    expect((await kubectl(["scale", "deployment/web", "-n", "shop", "--replicas=3"])).stdout.trim()).toBe("deployment.apps/web scaled");
    await expect.poll(async () => (await pods()).filter((p: { spec: { nodeName?: string } }) => p.spec.nodeName).length, { timeout: 10_000 }).toBe(3);

    const hash = (await pods())[0].metadata.labels["pod-template-hash"];
    await expect
      .poll(async () => describedEvents((await kubectl(["describe", "deployment", "-n", "shop", "web"])).stdout).map((e) => [e[0], e[1], e[3], e[4]]), {
        timeout: 10_000,
      })
      .toEqual(
        expect.arrayContaining([
          ["Normal", "ScalingReplicaSet", "deployment-controller", `Scaled up replica set web-${hash} from 0 to 1`],
          ["Normal", "ScalingReplicaSet", "deployment-controller", `Scaled up replica set web-${hash} from 1 to 3`],
          ["Normal", "SuccessfulCreate", "replicaset-controller", expect.stringMatching(new RegExp(`^Created pod: web-${hash}-`))],
        ]),
      );
    const pod = (await pods())[0];
    const described = await kubectl(["describe", "pod", "-n", "shop", pod.metadata.name]);
    expect(describedEvents(described.stdout)).toContainEqual([
      "Normal",
      "Scheduled",
      expect.any(String),
      "default-scheduler",
      `Successfully assigned shop/${pod.metadata.name} to ${pod.spec.nodeName}`,
    ]);
  });

  it("a pod no node fits gets FailedScheduling, worded as kube-scheduler words it", async () => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "picky", namespace: "shop" },
      spec: { nodeSelector: { disk: "ssd" }, containers: [{ name: "c", image: "x" }] },
    };
    expect((await execa("kubectl", ["create", "-f", "-"], { env: { KUBECONFIG: t.kubeconfigPath }, input: JSON.stringify(pod), reject: false })).exitCode).toBe(
      0,
    );
    await expect
      .poll(async () => describedEvents((await kubectl(["describe", "pod", "-n", "shop", "picky"])).stdout), { timeout: 10_000 })
      .toContainEqual([
        "Warning",
        "FailedScheduling",
        expect.any(String),
        "default-scheduler",
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
      ]);
  });

  it("kubectl get events prints the server-side table, and the field selectors kubectl describe uses narrow the list", async () => {
    const table = await kubectl(["get", "events", "-n", "shop"]);
    expect(table.exitCode, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.trim().split("\n");
    expect(header).toMatch(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE$/);
    expect(rows.some((r) => /^\S+\s+Warning\s+FailedScheduling\s+pod\/picky\s+0\/2 nodes are available/.test(r))).toBe(true);
    const wide = await kubectl(["get", "events", "-n", "shop", "-o", "wide", "--field-selector", "reason=FailedScheduling"]);
    expect(wide.stdout).toMatch(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+SUBOBJECT\s+SOURCE\s+MESSAGE\s+FIRST SEEN\s+COUNT\s+NAME\n/);
    expect(wide.stdout).toMatch(/default-scheduler/);
    const picky = JSON.parse((await kubectl(["get", "pod", "-n", "shop", "picky", "-o", "json"])).stdout);
    const selector = `involvedObject.name=picky,involvedObject.namespace=shop,involvedObject.kind=Pod,involvedObject.uid=${picky.metadata.uid}`;
    const selected = JSON.parse((await kubectl(["get", "events", "-n", "shop", "--field-selector", selector, "-o", "json"])).stdout).items;
    expect(selected.length).toBeGreaterThan(0);
    for (const e of selected) {
      expect(e.involvedObject).toMatchObject({ kind: "Pod", name: "picky", namespace: "shop", uid: picky.metadata.uid, apiVersion: "v1" });
      expect(e).toMatchObject({
        type: "Warning",
        reason: "FailedScheduling",
        source: { component: "default-scheduler" },
        reportingComponent: "default-scheduler",
      });
      expect(e.count).toBeGreaterThanOrEqual(1);
      expect(Date.parse(e.lastTimestamp)).toBeGreaterThanOrEqual(Date.parse(e.firstTimestamp));
    }
    expect(JSON.parse((await kubectl(["get", "events", "-n", "shop", "--field-selector", "involvedObject.name=nothing", "-o", "json"])).stdout).items).toEqual(
      [],
    );
  });

  it("counts repeats on one event and combines more than ten similar ones, as client-go's recorder does", async () => {
    const recorder = new EventRecorder(t.client, { component: "kubelet", host: "node-1" }, log);
    const cm = await t.client.create(pathFor("v1", "configmaps", "shop"), { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "probe-target" } });
    for (let i = 0; i < 3; i++) recorder.event(cm, "Warning", "Unhealthy", "Readiness probe failed: connection refused", "spec.containers{app}");
    for (let i = 0; i < 12; i++) recorder.event(cm, "Normal", "Pulled", `pulled ${i}`);
    await recorder.flush();
    const events = JSON.parse((await kubectl(["get", "events", "-n", "shop", "--field-selector", "involvedObject.name=probe-target", "-o", "json"])).stdout)
      .items as Array<{
      reason: string;
      message: string;
      count: number;
      involvedObject: { fieldPath?: string };
      source: { component: string; host: string };
    }>;
    const unhealthy = events.filter((e) => e.reason === "Unhealthy");
    expect(unhealthy).toHaveLength(1);
    expect(unhealthy[0]).toMatchObject({ count: 3, involvedObject: { fieldPath: "spec.containers{app}" }, source: { component: "kubelet", host: "node-1" } });
    const pulled = events.filter((e) => e.reason === "Pulled");
    // The first nine stand alone; from the tenth on they are one combined event.
    expect(pulled).toHaveLength(10);
    expect(pulled.find((e) => e.message.startsWith("(combined from similar events): "))).toMatchObject({
      count: 3,
      message: "(combined from similar events): pulled 11",
    });
    // The spam filter: 25 events per object in a burst, then one per 5 minutes.
    const noisy = await t.client.create(pathFor("v1", "configmaps", "shop"), { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "noisy" } });
    for (let i = 0; i < 30; i++) recorder.event(noisy, "Normal", `Reason${i}`, "same message");
    await recorder.flush();
    expect(
      JSON.parse((await kubectl(["get", "events", "-n", "shop", "--field-selector", "involvedObject.name=noisy", "-o", "json"])).stdout).items,
    ).toHaveLength(25);
    // kubectl describe reads the same events, with "(x3 over ...)" for repeats.
    const cmDescribe = await kubectl(["describe", "configmap", "-n", "shop", "probe-target"]);
    expect(describedEvents(cmDescribe.stdout)).toContainEqual([
      "Warning",
      "Unhealthy",
      expect.stringMatching(/\(x3 over /),
      "kubelet",
      "Readiness probe failed: connection refused",
    ]);
  });
});

describe("event retention", () => {
  let t: TestApiServer;
  beforeAll(async () => {
    t = await startTestApiServer({ eventTtlSeconds: 1, maxEvents: 5 });
  });
  afterAll(async () => {
    await t?.close();
  });
  const event = (name: string) => ({
    apiVersion: "v1",
    kind: "Event",
    metadata: { name, namespace: "default" },
    involvedObject: { kind: "Pod", name: "p", namespace: "default" },
    reason: "Test",
    message: name,
    type: "Normal",
    count: 1,
  });
  const names = async () =>
    ((await t.client.get(pathFor("v1", "events", "default"))).items as Array<{ metadata: { name: string } }>).map((e) => e.metadata.name).sort();

  it("keeps at most maxEvents, dropping the least recently written", async () => {
    for (let i = 0; i < 7; i++) await t.client.create(pathFor("v1", "events", "default"), event(`e${i}`));
    await expect.poll(names).toEqual(["e2", "e3", "e4", "e5", "e6"]);
  });

  it("expires events a TTL after their last write; a write renews it", async () => {
    await t.client.create(pathFor("v1", "events", "default"), event("renewed"));
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 400));
      await t.client.mergePatch(`${pathFor("v1", "events", "default")}/renewed`, { count: i + 2 });
    }
    // 1.2 s after e2..e6 were written they are gone; "renewed" was written 0.4 s ago.
    expect(await names()).toEqual(["renewed"]);
    await expect.poll(names, { timeout: 5_000 }).toEqual([]);
  });
});
