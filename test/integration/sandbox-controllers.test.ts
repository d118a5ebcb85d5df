// Sandbox scheduler and Deployment controller against a real API server: exact replica counts, replicas spread.
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pathFor } from "../../kube/client.ts";
import { SharedInformers } from "../../kube/informers.ts";
import { DeploymentController } from "../../sandbox/controllers/deployments.ts";
import { Scheduler } from "../../sandbox/controllers/scheduler.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

describe("sandbox scheduler and Deployment controller", () => {
  let t: TestApiServer;
  let informers: SharedInformers;
  let scheduler: Scheduler;
  let deployments: DeploymentController;
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
    informers = new SharedInformers(t.client, ["deployments", "pods", "nodes"]);
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
    await informers.start();
  });
  afterEach(async () => {
    scheduler.stop();
    deployments.stop();
    await informers.stop();
    await t.close();
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
