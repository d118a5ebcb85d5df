// Per-node views: what each node receives, built over records shared by all nodes, and diffed without false changes.
import { describe, expect, it } from "vitest";
import type { Resource } from "../../contract/stream.ts";
import { NodeView } from "../../controller/stream/view.ts";
import { MeshViews, type ScopedPolicy } from "../../controller/views/index.ts";
import type { KubeObject } from "../../kube/client.ts";

const pod = (name: string, node: string, ip: string, labels: Record<string, string>, resourceVersion = "1"): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "demo", uid: `uid-${name}`, labels, resourceVersion },
  spec: { nodeName: node, serviceAccountName: name },
  status: { phase: "Running", podIP: ip },
});
const service: KubeObject = {
  apiVersion: "v1",
  kind: "Service",
  metadata: { name: "payments", namespace: "demo", resourceVersion: "1" },
  spec: { clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80 }] },
};
const policy = (name: string, selector: Record<string, string>): ScopedPolicy => ({
  resource: { type: "authorization", key: `demo/${name}`, value: { name } },
  namespace: "demo",
  selector,
});

function mesh(pods: KubeObject[], policies: ScopedPolicy[]) {
  const state = { pods, policies };
  const views = new MeshViews({
    pods: () => state.pods,
    services: () => [service],
    endpointSlices: () => [],
    policies: () => state.policies,
    trustBundle: () => ({ rootsPem: ["root"] }),
    podNetwork: () => ({ podCidrs: ["10.244.1.0/24", "10.244.2.0/24"] }),
    rootNamespace: "ambit-system",
  });
  return { views, state };
}

describe("MeshViews", () => {
  it("gives each node every workload (its own with labels), the services, the bundle, and only the policies selecting its workloads", () => {
    const { views } = mesh(
      [pod("orders", "node-1", "10.244.1.2", { app: "orders" }), pod("payments", "node-2", "10.244.2.2", { app: "payments" })],
      [policy("payments-only", { app: "payments" })],
    );
    const view = views.viewFor("node-1");
    const entries = [...view.entries()];
    // The Map-like view answers consistently however it is read.
    expect(view.size).toBe(entries.length);
    expect(new Set(entries.map(([id]) => id)).size).toBe(entries.length);
    for (const [id, r] of entries) {
      expect(view.has(id)).toBe(true);
      expect(view.get(id)).toBe(r);
    }
    expect(entries.map(([id]) => id).sort()).toEqual(
      ["network/default", "service/demo/payments", "trustbundle/default", "workload/uid-orders", "workload/uid-payments"].sort(),
    );
    expect(view.get("network/default")?.value).toEqual({ podCidrs: ["10.244.1.0/24", "10.244.2.0/24"] });
    expect((view.get("workload/uid-orders")!.value as { labels: object }).labels).toEqual({ app: "orders" });
    expect((view.get("workload/uid-payments")!.value as { labels: object }).labels).toEqual({});
    expect(view.has("authorization/demo/payments-only")).toBe(false);

    const node2 = views.viewFor("node-2");
    expect(node2.size).toBe(6);
    expect(node2.get("authorization/demo/payments-only")?.value).toEqual({ name: "payments-only" });
    expect((node2.get("workload/uid-payments")!.value as { labels: object }).labels).toEqual({ app: "payments" });
  });

  it("a pod's or a policy's change reaches only the nodes it concerns; the others see nothing new", () => {
    const { views, state } = mesh([pod("orders", "node-1", "10.244.1.2", { app: "orders" }), pod("payments", "node-2", "10.244.2.2", { app: "payments" })], []);
    const node1 = new NodeView({ maxVersions: 10, maxRefs: 100 });
    const node2 = new NodeView({ maxVersions: 10, maxRefs: 100 });
    expect(node1.update(views.viewFor("node-1"))?.upserts).toHaveLength(5);
    expect(node2.update(views.viewFor("node-2"))?.upserts).toHaveLength(5);

    state.pods = [state.pods[0]!, pod("payments", "node-2", "10.244.2.2", { app: "payments", version: "v2" }, "2")];
    views.invalidate();
    expect(node1.update(views.viewFor("node-1"))).toBeUndefined();
    const change = node2.update(views.viewFor("node-2"));
    expect(change?.upserts.map((r: Resource) => r.key)).toEqual(["uid-payments"]);
    expect(change?.removes).toEqual([]);

    // A policy change alone: only the node whose workload it selects gets it.
    state.policies = [policy("orders-only", { app: "orders" })];
    views.invalidate("policies");
    expect(node1.update(views.viewFor("node-1"))?.upserts.map((r: Resource) => r.key)).toEqual(["demo/orders-only"]);
    expect(node2.update(views.viewFor("node-2"))).toBeUndefined();

    // A pod gone is a remove on every node.
    state.pods = [state.pods[0]!];
    views.invalidate();
    expect(node1.update(views.viewFor("node-1"))?.removes).toEqual([{ type: "workload", key: "uid-payments" }]);
    expect(node2.update(views.viewFor("node-2"))?.removes).toEqual([{ type: "workload", key: "uid-payments" }]);
  });
});
