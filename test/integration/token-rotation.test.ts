// In-cluster credentials across a projected token rotation, against the sandbox API server's real token checks.
import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../../kube/client.ts";
import { inClusterConfig } from "../../kube/credentials.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

describe("in-cluster credentials", () => {
  let t: TestApiServer;
  let prefix: string;
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  const tokenPath = () => path.join(prefix, "var/run/secrets/kubernetes.io/serviceaccount/token");

  /** A token bound to a pod, as the kubelet projects it: it stops being valid when that pod is gone. */
  const boundToken = async (pod: string) => {
    const created = await t.client.create("/api/v1/namespaces/default/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: pod },
      spec: { serviceAccountName: "agent", containers: [{ name: "c", image: "x" }] },
    });
    const res = await t.client.create("/api/v1/namespaces/default/serviceaccounts/agent/token", {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: 3600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod, uid: created.metadata.uid } },
    });
    return (res.status as { token: string }).token;
  };
  /** The kubelet's way: a new file renamed over the old one. */
  const project = async (token: string) => {
    await fs.writeFile(`${tokenPath()}.new`, token, { mode: 0o600 });
    await fs.rename(`${tokenPath()}.new`, tokenPath());
  };

  beforeAll(async () => {
    t = await startTestApiServer();
    await t.client.create("/api/v1/namespaces/default/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "agent" } });
    // What the calls below need, and no more (the API server enforces RBAC for service accounts).
    await t.client.create("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "pods" },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list", "watch", "patch"] }],
    });
    await t.client.create("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "pods" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pods" },
      subjects: [{ kind: "ServiceAccount", name: "agent", namespace: "default" }],
    });
    prefix = path.join(t.dir, "pod-root");
    await fs.mkdir(path.dirname(tokenPath()), { recursive: true });
    await fs.writeFile(path.join(path.dirname(tokenPath()), "ca.crt"), t.api.caPem);
    await fs.writeFile(path.join(path.dirname(tokenPath()), "namespace"), "default");
    const url = new URL(t.api.url);
    process.env.KUBERNETES_SERVICE_HOST = url.hostname;
    process.env.KUBERNETES_SERVICE_PORT = url.port;
  });

  afterAll(async () => {
    for (const [k, v] of [
      ["KUBERNETES_SERVICE_HOST", saved.host],
      ["KUBERNETES_SERVICE_PORT", saved.port],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await t?.close();
  });

  it("KubeClient's requests and watches use the rotated token at once; the old one is refused by then", async () => {
    await project(await boundToken("agent-a"));
    const client = new KubeClient(inClusterConfig(prefix));
    try {
      expect((await client.list("/api/v1/namespaces/default/pods")).map((p) => p.metadata.name)).toContain("agent-a");

      // Rotation: the kubelet projects a new token, and the old one stops being valid (its pod is gone here; on a
      // real cluster it expires).
      await project(await boundToken("agent-b"));
      await t.client.delete("/api/v1/namespaces/default/pods/agent-a", { gracePeriodSeconds: 0 });
      expect((await client.list("/api/v1/namespaces/default/pods")).map((p) => p.metadata.name)).toEqual(["agent-b"]);
      const events: string[] = [];
      const watch = await client.watch(
        "/api/v1/namespaces/default/pods",
        "",
        (type, obj) => events.push(`${type} ${obj.metadata.name}`),
        (end) => events.push(`end ${String(end)}`),
      );
      await client.mergePatch("/api/v1/namespaces/default/pods/agent-b", { metadata: { labels: { rotated: "yes" } } });
      await expect.poll(() => events).toEqual(["ADDED agent-b", "MODIFIED agent-b"]);
      watch.abort();
    } finally {
      client.close();
    }
  });
});
