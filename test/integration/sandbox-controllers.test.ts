// Sandbox scheduler, Deployment and DaemonSet controllers against a real API server: exact replica counts, replicas spread, one daemon pod per node.
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pathFor } from "../../kube/client.ts";
import { SharedInformers } from "../../kube/informers.ts";
import { DaemonSetController } from "../../sandbox/controllers/daemonsets.ts";
import { DeploymentController } from "../../sandbox/controllers/deployments.ts";
import { Scheduler } from "../../sandbox/controllers/scheduler.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

describe("sandbox scheduler and Deployment controller", () => {
  let t: TestApiServer;
  let informers: SharedInformers;
  let scheduler: Scheduler;
  let deployments: DeploymentController;
  let daemonsets: DaemonSetController;
  /** Every pod name the informer ever showed, per Deployment (app label). */
  const seen = new Map<string, Set<string>>();

  const readyNode = async (name: string) => {
    await t.client.create(pathFor("v1", "nodes"), { apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name } } });
    const now = new Date().toISOString();
    await t.client.mergePatch(`${pathFor("v1", "nodes")}/${name}/status`, {
      status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", lastHeartbeatTime: now, lastTransitionTime: now }] },
    });
  };
  const deployment = (name: string, replicas: number) =>
    t.client.create(pathFor("apps/v1", "deployments", "demo"), {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "demo" }] } },
      },
    });
  /** A DaemonSet "agent" of one container, on every node. */
  const agentDaemonSet = () =>
    t.client.create(pathFor("apps/v1", "daemonsets", "demo"), {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "agent" },
      spec: {
        selector: { matchLabels: { app: "agent" } },
        template: { metadata: { labels: { app: "agent" } }, spec: { containers: [{ name: "a", image: "agent" }] } },
      },
    });
  /** Live pods of one Deployment, by node (unscheduled under ""); terminating ones stay, as no kubelet runs here. */
  const placement = async (app: string) => {
    const list = await t.client.get(`${pathFor("v1", "pods", "demo")}?labelSelector=app%3D${app}`);
    const byNode: Record<string, number> = {};
    for (const pod of list.items as { metadata: { deletionTimestamp?: string }; spec?: { nodeName?: string } }[]) {
      if (pod.metadata.deletionTimestamp) continue;
      const node = pod.spec?.nodeName ?? "";
      byNode[node] = (byNode[node] ?? 0) + 1;
    }
    return byNode;
  };

  beforeEach(async () => {
    seen.clear();
    t = await startTestApiServer();
    await t.client.create(pathFor("v1", "namespaces"), { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } });
    await readyNode("node-1");
    await readyNode("node-2");
    const log = pino({ level: "silent" });
    informers = new SharedInformers(t.client, ["deployments", "daemonsets", "pods", "nodes"]);
    informers.on("pods", (_event, pod) => {
      const app = pod.metadata.labels?.app;
      if (!app) return;
      const names = seen.get(app) ?? new Set<string>();
      names.add(pod.metadata.name);
      seen.set(app, names);
    });
    // Constructed before start() so their handlers see the initial list, as in the supervisor.
    scheduler = new Scheduler(t.client, informers, log);
    deployments = new DeploymentController(t.client, informers, log);
    daemonsets = new DaemonSetController(t.client, informers, log);
    await informers.start();
  });
  afterEach(async () => {
    scheduler.stop();
    deployments.stop();
    daemonsets.stop();
    await informers.stop();
    await t.close();
  });

  it("a DaemonSet gets exactly one pod per node, even when passes run before the created pods reach the cache", async () => {
    await agentDaemonSet();
    // Node events queue the DaemonSet again and again while its first pods are being created.
    for (let i = 0; i < 20; i++) await t.client.mergePatch(`${pathFor("v1", "nodes")}/node-${(i % 2) + 1}`, { metadata: { labels: { round: String(i) } } });
    await expect.poll(() => placement("agent"), { timeout: 10_000 }).toEqual({ "node-1": 1, "node-2": 1 });
    // Settled: no pass creates a third pod (and nothing had to be deleted).
    for (let i = 0; i < 10; i++) await t.client.mergePatch(`${pathFor("v1", "nodes")}/node-1`, { metadata: { labels: { round: `again-${i}` } } });
    await expect.poll(() => informers.get("nodes", "node-1")?.metadata.labels?.round, { timeout: 5_000 }).toBe("again-9");
    await expect.poll(() => daemonsets.busy, { timeout: 5_000 }).toBe(false);
    expect(seen.get("agent")?.size).toBe(2);
  });

  it("a DaemonSet with two current pods on a node (an earlier controller's) keeps the oldest", async () => {
    const ds = await agentDaemonSet();
    await expect.poll(() => placement("agent"), { timeout: 10_000 }).toEqual({ "node-1": 1, "node-2": 1 });
    const [first] = (await t.client.get(`${pathFor("v1", "pods", "demo")}?fieldSelector=spec.nodeName%3Dnode-1`)).items as Array<{
      metadata: { name: string; labels: Record<string, string> };
    }>;
    await t.client.create(pathFor("v1", "pods", "demo"), {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "agent-extra",
        labels: first!.metadata.labels,
        ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: "agent", uid: ds.metadata.uid, controller: true }],
      },
      spec: { nodeName: "node-1", containers: [{ name: "a", image: "agent" }] },
    });
    await expect.poll(() => placement("agent"), { timeout: 10_000 }).toEqual({ "node-1": 1, "node-2": 1 });
    const left = (await t.client.get(`${pathFor("v1", "pods", "demo")}?fieldSelector=spec.nodeName%3Dnode-1`)).items as Array<{
      metadata: { name: string; deletionTimestamp?: string };
    }>;
    expect(left.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name)).toEqual([first!.metadata.name]);
  });

  it("creates exactly the replicas asked for, never a surplus to delete, and spreads them over the nodes", async () => {
    // Several replicas at once is where the controller used to act on a cache that did not show its own
    // creations yet (and made 4 pods for 2), and where concurrent binds all picked the same emptiest node.
    await deployment("payments", 4);
    await expect.poll(() => placement("payments"), { timeout: 10_000 }).toEqual({ "node-1": 2, "node-2": 2 });
    // Let any late reconcile act before checking nothing extra was made.
    await new Promise((r) => setTimeout(r, 500));
    expect(seen.get("payments")?.size).toBe(4);
    expect(await placement("payments")).toEqual({ "node-1": 2, "node-2": 2 });
  });

  it("spreads each Deployment by its own replicas, whatever the other pods on the nodes", async () => {
    await deployment("orders", 1);
    await expect.poll(async () => Object.values(await placement("orders")).reduce((a, b) => a + b, 0)).toBe(1);
    // The node with orders now has one pod more; a 2-replica Deployment still puts one replica on each node.
    await deployment("payments", 2);
    await expect.poll(() => placement("payments"), { timeout: 10_000 }).toEqual({ "node-1": 1, "node-2": 1 });
    await new Promise((r) => setTimeout(r, 500));
    expect(seen.get("orders")?.size).toBe(1);
    expect(seen.get("payments")?.size).toBe(2);
  });

  it("scales down to the asked count and back up without overshooting", async () => {
    await deployment("web", 3);
    await expect.poll(async () => Object.values(await placement("web")).reduce((a, b) => a + b, 0), { timeout: 10_000 }).toBe(3);
    await t.client.mergePatch(`${pathFor("apps/v1", "deployments", "demo")}/web`, { spec: { replicas: 1 } });
    await expect.poll(async () => Object.values(await placement("web")).reduce((a, b) => a + b, 0), { timeout: 10_000 }).toBe(1);
    await t.client.mergePatch(`${pathFor("apps/v1", "deployments", "demo")}/web`, { spec: { replicas: 2 } });
    await expect.poll(() => placement("web"), { timeout: 10_000 }).toEqual({ "node-1": 1, "node-2": 1 });
    await new Promise((r) => setTimeout(r, 500));
    // 3 made, 2 deleted, 1 added: 4 names in all, none created only to be removed.
    expect(seen.get("web")?.size).toBe(4);
  });
});
