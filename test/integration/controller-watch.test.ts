// The controller's watch path (shared informers feeding per-node views) survives 410 Gone and an API server restart.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshViews } from "../../controller/views/index.ts";
import { KubeClient } from "../../kube/client.ts";
import { SharedInformers } from "../../kube/informers.ts";
import { type ApiServer, startApiServer } from "../../sandbox/apiserver/index.ts";

const pod = (name: string, node: string, ip: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "demo" },
  spec: { nodeName: node, containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }] },
  status: { phase: "Running", podIP: ip },
});

describe("controller watches", () => {
  let dir: string;
  let api: ApiServer;
  let client: KubeClient;
  let informers: SharedInformers;
  let views: MeshViews;
  const errors: string[] = [];
  const start = (port: number) =>
    startApiServer({ host: "127.0.0.1", port, pkiDir: path.join(dir, "pki"), serviceCidr: "10.96.0.0/16", adminToken: "watch-test-token" });
  const admin = () => {
    const kc = new KubeConfig();
    kc.loadFromString(api.kubeconfig());
    return new KubeClient(kc);
  };
  const namesOn = (node: string) =>
    [...views.viewFor(node).values()]
      .filter((r) => r.type === "workload" && (r.value as { node: string }).node === node)
      .map((r) => (r.value as { name: string }).name)
      .sort()
      .join(",");
  const create = async (p: ReturnType<typeof pod>) => {
    const c = admin();
    const created = await c.create("/api/v1/namespaces/demo/pods", p);
    // The status a kubelet would report (the sandbox API server keeps what it is given on the status subresource).
    await c.request("PUT", `/api/v1/namespaces/demo/pods/${p.metadata.name}/status`, { ...created, status: p.status });
    c.close();
  };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-watch-"));
    api = await start(0);
    const setup = admin();
    await setup.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } });
    setup.close();
    const kc = new KubeConfig();
    kc.loadFromString(api.kubeconfig());
    client = new KubeClient(kc);
    informers = new SharedInformers(client, ["pods", "services", "endpointslices"], (r, err) => errors.push(`${r}: ${String(err)}`));
    views = new MeshViews({
      pods: () => informers.list("pods"),
      services: () => informers.list("services"),
      endpointSlices: () => informers.list("endpointslices"),
      policies: () => [],
      trustBundle: () => ({ rootsPem: ["-----BEGIN CERTIFICATE-----\n"] }),
      podNetwork: () => ({ podCidrs: [] }),
      rootNamespace: "ambit-system",
    });
    informers.on("pods", () => views.invalidate());
    await informers.start();
  });
  afterAll(async () => {
    await informers?.stop();
    client?.close();
    await api?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("relists after 410 Gone: changes made while the history was compacted reach the views", async () => {
    await create(pod("a", "node-1", "10.244.1.10"));
    await expect.poll(() => namesOn("node-1"), { timeout: 5000 }).toBe("a");
    const release = api.holdWatches();
    api.dropWatches();
    await create(pod("b", "node-1", "10.244.1.11"));
    await admin().delete("/api/v1/namespaces/demo/pods/a");
    api.compactHistory();
    release();
    await expect.poll(() => namesOn("node-1"), { timeout: 10_000 }).toBe("b");
  });

  it("survives an API server restart and converges on the new server's state", { timeout: 60_000 }, async () => {
    const { port } = new URL(api.url);
    await api.close();
    await new Promise((r) => setTimeout(r, 1500));
    api = await start(Number(port));
    // The restarted server lost everything (in-memory): the informers must relist, drop "b", and see "c".
    const c = admin();
    await c.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } });
    c.close();
    await create(pod("c", "node-2", "10.244.2.10"));
    await expect.poll(() => `${namesOn("node-1")}|${namesOn("node-2")}`, { timeout: 45_000 }).toBe("|c");
    expect(errors.length).toBeGreaterThan(0);
  });
});
