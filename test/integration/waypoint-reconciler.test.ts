// The controller's waypoint reconciler against the sandbox API server with the Gateway API CRDs: what it creates for a waypoint Gateway, the status it writes, and what it refuses to touch.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DESIRED_HASH_ANNOTATION, WaypointReconciler, type WaypointDeploymentSettings } from "../../controller/waypoints/index.ts";
import { GATEWAY_API_VERSION, WAYPOINT_CONTROLLER_NAME, WAYPOINT_GATEWAY_CLASS } from "../../contract/waypoint.ts";
import { type KubeObject, isNotFound, pathFor } from "../../kube/client.ts";
import { GATEWAY_API_DIR } from "../../sandbox/index.ts";
import { readManifestDir } from "../../sandbox/manifests.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const SETTINGS: WaypointDeploymentSettings = {
  image: "ambit.dev/waypoint:0.1",
  pullPolicy: "IfNotPresent",
  trustDomain: "cluster.local",
  controllerAddress: "ambit-controller.ambit-system.svc",
  logLevel: "info",
  resources: { requests: { cpu: "100m", memory: "64Mi" } },
};

const gateway = (name: string, listener: Record<string, unknown> = { name: "mesh", port: 15008, protocol: "HBONE" }): KubeObject => ({
  apiVersion: GATEWAY_API_VERSION,
  kind: "Gateway",
  metadata: { name, namespace: "shop" },
  spec: { gatewayClassName: WAYPOINT_GATEWAY_CLASS, listeners: [listener] },
});

describe("waypoint reconciler", () => {
  let t: TestApiServer;
  const log = pino({ level: "silent" });
  const list = (apiVersion: string, plural: string) => t.client.list(pathFor(apiVersion, plural));
  let cache: { gateways: KubeObject[]; gatewayClasses: KubeObject[]; pods: KubeObject[]; services: KubeObject[] };
  /** What the informers would hold: read fresh before each pass, as after a watch event. */
  const refresh = async () => {
    cache = {
      gateways: await list(GATEWAY_API_VERSION, "gateways"),
      gatewayClasses: await list(GATEWAY_API_VERSION, "gatewayclasses"),
      pods: await list("v1", "pods"),
      services: await list("v1", "services"),
    };
  };
  /** The CA's roots as the controller would pass them; a test changes them to see every waypoint's copy follow. */
  let roots = "-----BEGIN CERTIFICATE-----\nroot-1\n-----END CERTIFICATE-----\n";
  const reconciler = (settings = SETTINGS) =>
    new WaypointReconciler(
      t.client,
      { gateways: () => cache.gateways, gatewayClasses: () => cache.gatewayClasses, pods: () => cache.pods, services: () => cache.services },
      settings,
      () => roots,
      log,
    );
  const pass = async (settings = SETTINGS) => {
    await refresh();
    await reconciler(settings).reconcile();
  };
  const get = (apiVersion: string, plural: string, name: string, ns: string | null = "shop") =>
    t.client.request<KubeObject>("GET", pathFor(apiVersion, plural, ns ?? undefined, name));
  const condition = (obj: KubeObject, type: string) =>
    (obj.status?.conditions as Array<{ type: string; status: string; reason: string; message: string }>)?.find((c) => c.type === type);

  beforeAll(async () => {
    t = await startTestApiServer();
    for (const crd of await readManifestDir(GATEWAY_API_DIR)) await t.client.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
    await t.client.request("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("creates the ambit-waypoint GatewayClass when it is missing, then marks it Accepted", async () => {
    await pass();
    const cls = await get(GATEWAY_API_VERSION, "gatewayclasses", WAYPOINT_GATEWAY_CLASS, null);
    expect(cls.spec.controllerName).toBe(WAYPOINT_CONTROLLER_NAME);
    await pass();
    expect(condition(await get(GATEWAY_API_VERSION, "gatewayclasses", WAYPOINT_GATEWAY_CLASS, null), "Accepted")).toMatchObject({ status: "True" });
  });

  it("deploys a waypoint Gateway as its ServiceAccount, trust roots, Deployment and Service, owned by the Gateway; Programmed once a pod is ready", async () => {
    const gw = await t.client.request<KubeObject>("POST", pathFor(GATEWAY_API_VERSION, "gateways", "shop"), gateway("waypoint"));
    await pass();
    // The Service it created reaches the informers after this pass; the next one (on that event) sees its ClusterIP.
    expect(condition(await get(GATEWAY_API_VERSION, "gateways", "waypoint"), "Programmed")).toMatchObject({ message: expect.stringContaining("no ClusterIP") });
    await pass();
    for (const [apiVersion, plural] of [
      ["v1", "serviceaccounts"],
      ["v1", "configmaps"],
      ["apps/v1", "deployments"],
      ["v1", "services"],
    ] as const) {
      const obj = await get(apiVersion, plural, "waypoint");
      expect(obj.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: "Gateway", name: "waypoint", uid: gw.metadata.uid, controller: true })]);
    }
    const deployment = await get("apps/v1", "deployments", "waypoint");
    const pod = deployment.spec.template;
    expect(pod.metadata.labels).toEqual({ "gateway.networking.k8s.io/gateway-name": "waypoint", "ambit.dev/dataplane-mode": "none" });
    expect(pod.spec.serviceAccountName).toBe("waypoint");
    expect(pod.spec.containers[0].image).toBe("ambit.dev/waypoint:0.1");
    // The waypoint's first connection to the controller trusts the roots mounted from its own namespace's copy.
    expect((await get("v1", "configmaps", "waypoint")).data).toEqual({ "root-cert.pem": roots });
    expect(pod.spec.volumes).toContainEqual({ name: "ca-root", configMap: { name: "waypoint", items: [{ key: "root-cert.pem", path: "root-cert.pem" }] } });
    expect((await get("v1", "services", "waypoint")).spec.ports).toEqual([expect.objectContaining({ port: 15008, targetPort: 15008 })]);

    let status = await get(GATEWAY_API_VERSION, "gateways", "waypoint");
    expect(condition(status, "Accepted")).toMatchObject({ status: "True" });
    expect(condition(status, "Programmed")).toMatchObject({ status: "False", reason: "Pending", message: expect.stringContaining("no waypoint pod is ready") });

    const created = await t.client.request<KubeObject>("POST", "/api/v1/namespaces/shop/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "waypoint-1", namespace: "shop", labels: { "gateway.networking.k8s.io/gateway-name": "waypoint" } },
      spec: { containers: [{ name: "waypoint", image: "ambit.dev/waypoint:0.1" }] },
    });
    await t.client.request("PUT", "/api/v1/namespaces/shop/pods/waypoint-1/status", {
      ...created,
      status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] },
    });
    await pass();
    status = await get(GATEWAY_API_VERSION, "gateways", "waypoint");
    const vip = (await get("v1", "services", "waypoint")).spec.clusterIP as string;
    expect(condition(status, "Programmed")).toMatchObject({ status: "True", reason: "Programmed" });
    expect(status.status.addresses).toEqual([{ type: "IPAddress", value: vip }]);
    expect(status.status.listeners[0].conditions.map((c: { type: string; status: string }) => `${c.type}=${c.status}`)).toEqual([
      "Accepted=True",
      "Programmed=True",
      "ResolvedRefs=True",
    ]);
  });

  it("writes status only when something in it changed", async () => {
    const before = await get(GATEWAY_API_VERSION, "gateways", "waypoint");
    await pass();
    const after = await get(GATEWAY_API_VERSION, "gateways", "waypoint");
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });

  it("reads the status back whatever its key order (kube-apiserver returns a custom resource's fields sorted) and writes nothing", async () => {
    const sorted = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sorted)
        : v !== null && typeof v === "object"
          ? Object.fromEntries(
              Object.keys(v)
                .sort()
                .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
            )
          : v;
    await refresh();
    cache.gateways = cache.gateways.map((g) => ({ ...g, status: sorted(g.status) }));
    cache.gatewayClasses = cache.gatewayClasses.map((c) => ({ ...c, status: sorted(c.status) }));
    const spy = vi.spyOn(t.client, "request");
    try {
      await reconciler().reconcile();
      expect(spy.mock.calls.filter(([method, path]) => method === "PUT" && String(path).endsWith("/status"))).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });

  it("puts the Deployment right when settings change or someone edits it, and leaves it alone otherwise", async () => {
    const version = (await get("apps/v1", "deployments", "waypoint")).metadata.resourceVersion;
    await pass();
    expect((await get("apps/v1", "deployments", "waypoint")).metadata.resourceVersion).toBe(version);

    await pass({ ...SETTINGS, image: "ambit.dev/waypoint:0.2" });
    expect((await get("apps/v1", "deployments", "waypoint")).spec.template.spec.containers[0].image).toBe("ambit.dev/waypoint:0.2");

    await t.client.request(
      "PATCH",
      "/apis/apps/v1/namespaces/shop/deployments/waypoint",
      { metadata: { annotations: { [DESIRED_HASH_ANNOTATION]: "edited" } } },
      "application/merge-patch+json",
    );
    await pass({ ...SETTINGS, image: "ambit.dev/waypoint:0.2" });
    expect((await get("apps/v1", "deployments", "waypoint")).metadata.annotations?.[DESIRED_HASH_ANNOTATION]).not.toBe("edited");
  });

  it("pod and Service events only recompute status; the objects are checked again when the Gateway changes or on resync", async () => {
    const one = reconciler();
    await refresh();
    await one.reconcile();
    const spy = vi.spyOn(t.client, "request");
    try {
      await one.reconcile();
      expect(spy.mock.calls.filter(([method]) => method === "GET")).toEqual([]);
      await t.client.request("DELETE", "/api/v1/namespaces/shop/serviceaccounts/waypoint");
      await one.reconcile({ resync: true });
      expect(spy.mock.calls.filter(([method]) => method === "GET").length).toBeGreaterThanOrEqual(3);
    } finally {
      spy.mockRestore();
    }
    expect((await get("v1", "serviceaccounts", "waypoint")).metadata.ownerReferences).toHaveLength(1);
  });

  it("copies new CA roots to each waypoint's ConfigMap on the next pass, without waiting for a resync", async () => {
    const one = reconciler();
    await refresh();
    await one.reconcile();
    const before = roots;
    roots = before + "-----BEGIN CERTIFICATE-----\nroot-2\n-----END CERTIFICATE-----\n";
    try {
      await one.reconcile();
      expect((await get("v1", "configmaps", "waypoint")).data).toEqual({ "root-cert.pem": roots });
    } finally {
      roots = before;
    }
  });

  it("refuses a Gateway that is not a waypoint's shape, naming each field, and creates nothing for it", async () => {
    await t.client.request("POST", pathFor(GATEWAY_API_VERSION, "gateways", "shop"), gateway("web", { name: "http", port: 80, protocol: "HTTP" }));
    await pass();
    const gw = await get(GATEWAY_API_VERSION, "gateways", "web");
    expect(condition(gw, "Accepted")).toMatchObject({
      status: "False",
      reason: "ListenersNotValid",
      message: "spec.listeners[0].port: must be 15008, not 80; spec.listeners[0].protocol: must be HBONE, not HTTP",
    });
    expect(condition(gw, "Programmed")).toMatchObject({ status: "False", reason: "Invalid" });
    expect(gw.status.listeners[0].conditions.map((c: { type: string; status: string; reason: string }) => `${c.type}=${c.status}:${c.reason}`)).toEqual([
      "Accepted=False:UnsupportedProtocol",
      "Programmed=False:Invalid",
      "ResolvedRefs=True:ResolvedRefs",
    ]);
    await expect(get("apps/v1", "deployments", "web")).rejects.toSatisfy(isNotFound);
  });

  it("does not overwrite a Deployment of the same name it did not create, and says so in the Gateway's status", async () => {
    await t.client.request("POST", "/apis/apps/v1/namespaces/shop/deployments", {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "api", namespace: "shop" },
      spec: {
        selector: { matchLabels: { app: "api" } },
        template: { metadata: { labels: { app: "api" } }, spec: { containers: [{ name: "api", image: "api:1" }] } },
      },
    });
    await t.client.request("POST", pathFor(GATEWAY_API_VERSION, "gateways", "shop"), gateway("api"));
    await pass();
    expect((await get("apps/v1", "deployments", "api")).spec.template.spec.containers[0].image).toBe("api:1");
    expect(condition(await get(GATEWAY_API_VERSION, "gateways", "api"), "Programmed")).toMatchObject({
      status: "False",
      message: "a Deployment shop/api exists that the Ambit controller did not create; delete or rename it",
    });
  });

  it("deleting the Gateway deletes what was made for it (owner references)", async () => {
    await t.client.request("DELETE", pathFor(GATEWAY_API_VERSION, "gateways", "shop", "waypoint"));
    for (const [apiVersion, plural] of [
      ["v1", "serviceaccounts"],
      ["v1", "configmaps"],
      ["apps/v1", "deployments"],
      ["v1", "services"],
    ] as const)
      await expect(get(apiVersion, plural, "waypoint")).rejects.toSatisfy(isNotFound);
  });
});
