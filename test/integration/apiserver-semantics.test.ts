// Kubernetes API semantics of the sandbox API server that controllers and agents rely on.
import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeRequestError, type KubeObject } from "../../kube/client.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const status = async (p: Promise<unknown>): Promise<number> => {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof KubeRequestError) return err.status;
    throw err;
  }
};

describe("sandbox API server semantics", () => {
  let t: TestApiServer;
  const ns = (name: string) => t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } });
  const pod = (namespace: string, name: string, extra: Record<string, unknown> = {}) =>
    t.client.create(`/api/v1/namespaces/${namespace}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace, ...extra },
      spec: { containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }], ...((extra.spec as object) ?? {}) },
    });

  beforeAll(async () => {
    t = await startTestApiServer();
    await ns("app");
  });
  afterAll(async () => {
    await t?.close();
  });

  it("rejects requests without a valid token", async () => {
    const code = await new Promise<number>((resolve, reject) => {
      const req = https.request(`${t.api.url}/api/v1/pods`, { ca: t.api.caPem, headers: { authorization: "Bearer nope" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    expect(code).toBe(401);
  });

  it("answers 413 to a 4 MB object instead of resetting the connection, and serves the same client after", async () => {
    const big = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "big", namespace: "app" }, data: { blob: "x".repeat(4 * 1024 * 1024) } };
    const err = await t.client.create("/api/v1/namespaces/app/configmaps", big).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KubeRequestError);
    expect(err).toMatchObject({ status: 413, reason: "RequestEntityTooLarge", message: expect.stringContaining("Request entity too large") });
    expect(await status(t.client.get("/api/v1/namespaces/app"))).toBe(200);
  });

  it("refuses an update from a stale resourceVersion and bumps generation only on spec changes", async () => {
    const created = await t.client.create<KubeObject>("/apis/apps/v1/namespaces/app/deployments", {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web" },
      spec: {
        selector: { matchLabels: { app: "web" } },
        template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "c", image: "i" }] } },
      },
    });
    expect(created.metadata.generation).toBe(1);
    const labelled = await t.client.mergePatch<KubeObject>("/apis/apps/v1/namespaces/app/deployments/web", { metadata: { labels: { a: "b" } } });
    expect(labelled.metadata.generation).toBe(1);
    const scaled = await t.client.mergePatch<KubeObject>("/apis/apps/v1/namespaces/app/deployments/web", { spec: { replicas: 3 } });
    expect(scaled.metadata.generation).toBe(2);
    const stale = { ...created, spec: { ...created.spec, replicas: 5 } };
    expect(await status(t.client.request("PUT", "/apis/apps/v1/namespaces/app/deployments/web", stale))).toBe(409);
    // Status writes through the main resource are ignored; /status changes only status.
    await t.client.request("PUT", "/apis/apps/v1/namespaces/app/deployments/web", { ...scaled, status: { replicas: 99 } });
    expect((await t.client.get("/apis/apps/v1/namespaces/app/deployments/web")).status?.replicas).toBeUndefined();
    const viaStatus = await t.client.mergePatch<KubeObject>("/apis/apps/v1/namespaces/app/deployments/web/status", {
      status: { replicas: 3 },
      spec: { replicas: 7 },
    });
    expect(viaStatus.status.replicas).toBe(3);
    expect(viaStatus.spec.replicas).toBe(3);
  });

  it("rejects invalid objects with 422 and unknown namespaces with 404", async () => {
    expect(await status(pod("app", "Bad_Name"))).toBe(422);
    expect(await status(t.client.create("/api/v1/namespaces/app/pods", { apiVersion: "v1", kind: "Pod", metadata: { name: "nocontainers" }, spec: {} }))).toBe(
      422,
    );
    expect(await status(pod("missing", "p"))).toBe(404);
    expect(await status(pod("app", "dup"))).toBe(200);
    expect(await status(pod("app", "dup"))).toBe(409);
  });

  it("deletes a pod bound to a node gracefully, and for good once the kubelet confirms", async () => {
    await pod("app", "graceful", { spec: { nodeName: "node-1" } });
    const marked = (await t.client.delete("/api/v1/namespaces/app/pods/graceful")) as KubeObject;
    expect(marked.metadata.deletionTimestamp).toBeTruthy();
    expect((await t.client.get("/api/v1/namespaces/app/pods/graceful")).metadata.deletionGracePeriodSeconds).toBe(30);
    await t.client.delete("/api/v1/namespaces/app/pods/graceful", { gracePeriodSeconds: 0 });
    expect(await status(t.client.get("/api/v1/namespaces/app/pods/graceful"))).toBe(404);
  });

  it("filters pods by spec.nodeName and labels", async () => {
    await pod("app", "on-2", { spec: { nodeName: "node-2" }, labels: { tier: "x" } });
    const onNode = await t.client.list("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-2");
    expect(onNode.map((p) => p.metadata.name)).toEqual(["on-2"]);
    const byLabel = await t.client.list("/api/v1/namespaces/app/pods?labelSelector=tier%20in%20(x,y)");
    expect(byLabel.map((p) => p.metadata.name)).toEqual(["on-2"]);
    expect(await status(t.client.list("/api/v1/pods?fieldSelector=spec.bogus%3D1"))).toBe(400);
  });

  it("garbage-collects dependents and terminates namespaces with everything in them", async () => {
    await ns("gc");
    const owner = await t.client.create<KubeObject>("/api/v1/namespaces/gc/configmaps", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "owner" } });
    await t.client.create("/api/v1/namespaces/gc/configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "dependent", ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata.uid }] },
    });
    await t.client.delete("/api/v1/namespaces/gc/configmaps/owner");
    expect(await status(t.client.get("/api/v1/namespaces/gc/configmaps/dependent"))).toBe(404);

    await t.client.create("/api/v1/namespaces/gc/secrets", { apiVersion: "v1", kind: "Secret", metadata: { name: "s" }, stringData: { k: "v" } });
    await t.client.delete("/api/v1/namespaces/gc");
    expect(await status(t.client.get("/api/v1/namespaces/gc"))).toBe(404);
    expect(await t.client.list("/api/v1/namespaces/gc/secrets")).toEqual([]);
  });

  it("allocates ClusterIPs, refuses a taken one and releases it on delete", async () => {
    const svc = (name: string, clusterIP?: string) =>
      t.client.create<KubeObject>("/api/v1/namespaces/app/services", {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name },
        spec: { ...(clusterIP ? { clusterIP } : {}), selector: { app: name }, ports: [{ port: 80 }] },
      });
    const a = await svc("svc-a", "10.96.5.5");
    expect(a.spec.clusterIP).toBe("10.96.5.5");
    expect(a.spec.ports[0].targetPort).toBe(80);
    expect(await status(svc("svc-b", "10.96.5.5"))).toBe(422);
    expect(await status(svc("svc-c", "10.97.0.1"))).toBe(422);
    await t.client.delete("/api/v1/namespaces/app/services/svc-a");
    expect((await svc("svc-d", "10.96.5.5")).spec.clusterIP).toBe("10.96.5.5");
  });

  it("does not store anything on dryRun", async () => {
    await t.client.request("POST", "/api/v1/namespaces/app/configmaps?dryRun=All", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "dry" } });
    expect(await status(t.client.get("/api/v1/namespaces/app/configmaps/dry"))).toBe(404);
  });

  it("issues bound service-account tokens and reviews them", async () => {
    const p = (await pod("app", "holder", { spec: { nodeName: "node-1" } })) as KubeObject;
    const request = (audiences?: string[]) =>
      t.client.create("/api/v1/namespaces/app/serviceaccounts/default/token", {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          ...(audiences ? { audiences } : {}),
          expirationSeconds: 600,
          boundObjectRef: { kind: "Pod", apiVersion: "v1", name: "holder", uid: p.metadata.uid },
        },
      }) as Promise<{ status: { token: string } }>;
    const review = (token: string, audiences?: string[]) =>
      t.client.create("/apis/authentication.k8s.io/v1/tokenreviews", {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: { token, ...(audiences ? { audiences } : {}) },
      }) as Promise<{
        status: { authenticated: boolean; user: { username: string; extra?: Record<string, string[]> }; error?: string };
      }>;
    const caToken = (await request(["ambit-ca"])).status.token;
    const ok = await review(caToken, ["ambit-ca"]);
    expect(ok.status.authenticated).toBe(true);
    expect(ok.status.user.username).toBe("system:serviceaccount:app:default");
    expect(ok.status.user.extra?.["authentication.kubernetes.io/pod-name"]).toEqual(["holder"]);
    const wrongAudience = await review(caToken, ["something-else"]);
    expect(wrongAudience.status.authenticated).toBe(false);
    expect(wrongAudience.status.error).toMatch(/audience/);
    // A terminating pod's containers still reach the API with it (kube-apiserver: until the grace period ends plus
    // a minute); once the pod is gone for good, the token dies with it.
    await t.client.delete("/api/v1/namespaces/app/pods/holder", { gracePeriodSeconds: 30 });
    expect((await t.client.get("/api/v1/namespaces/app/pods/holder")).metadata.deletionTimestamp).toBeTruthy();
    expect((await review(caToken, ["ambit-ca"])).status.authenticated).toBe(true);
    await t.client.delete("/api/v1/namespaces/app/pods/holder", { gracePeriodSeconds: 0 });
    const afterDelete = await review(caToken, ["ambit-ca"]);
    expect(afterDelete.status.authenticated).toBe(false);
    expect(afterDelete.status.error).toMatch(/no longer exists/);
  });
});
