// Whether a node program's DaemonSet will start a successor: what the agent and the CNI installer ask when stopped.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ownerDaemonSetStays } from "../../kube/owner.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

describe("ownerDaemonSetStays", () => {
  let t: TestApiServer;
  const ds = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: "ambit-agent", namespace: "ambit-system" },
    spec: { selector: { matchLabels: { app: "a" } }, template: { metadata: { labels: { app: "a" } }, spec: { containers: [{ name: "c", image: "i" }] } } },
  };
  const pod = (name: string, owner?: { name: string; uid: string }) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: "ambit-system",
      ...(owner ? { ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: owner.name, uid: owner.uid, controller: true }] } : {}),
    },
    spec: { containers: [{ name: "c", image: "i" }] },
  });

  beforeAll(async () => {
    t = await startTestApiServer();
    await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "ambit-system" } });
  });
  afterAll(() => t?.close());

  it("true while the DaemonSet exists; false when it is gone, replaced by another of the same name, or the pod has none", async () => {
    const created = await t.client.create("/apis/apps/v1/namespaces/ambit-system/daemonsets", ds);
    await t.client.create("/api/v1/namespaces/ambit-system/pods", pod("agent-1", { name: "ambit-agent", uid: created.metadata.uid! }));
    await t.client.create("/api/v1/namespaces/ambit-system/pods", pod("loner"));
    expect(await ownerDaemonSetStays(t.client, "ambit-system", "agent-1")).toBe(true);
    expect(await ownerDaemonSetStays(t.client, "ambit-system", "loner")).toBe(false);
    expect(await ownerDaemonSetStays(t.client, "ambit-system", "no-such-pod")).toBe(false);
    await t.client.delete("/apis/apps/v1/namespaces/ambit-system/daemonsets/ambit-agent", { propagationPolicy: "Orphan" });
    expect(await ownerDaemonSetStays(t.client, "ambit-system", "agent-1")).toBe(false);
    await t.client.create("/apis/apps/v1/namespaces/ambit-system/daemonsets", ds);
    expect(await ownerDaemonSetStays(t.client, "ambit-system", "agent-1")).toBe(false);
  });
});
