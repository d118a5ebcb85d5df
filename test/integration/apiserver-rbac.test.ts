// RBAC in the sandbox API server: service accounts get what their Roles and ClusterRoles grant, and nothing else.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient, KubeRequestError } from "../../kube/client.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const RBAC = "/apis/rbac.authorization.k8s.io/v1";

describe("RBAC for service-account callers", () => {
  let t: TestApiServer;
  let sa: KubeClient;

  /** A client authenticated as service account `who` of namespace `ns`, with a token the server issued. */
  const clientFor = async (ns: string, who: string): Promise<KubeClient> => {
    const res = await t.client.create(`/api/v1/namespaces/${ns}/serviceaccounts/${who}/token`, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: 3600 },
    });
    const kc = new KubeConfig();
    kc.loadFromString(
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: t.api.url, "certificate-authority-data": Buffer.from(t.api.caPem).toString("base64") } }],
        users: [{ name: "u", user: { token: (res.status as { token: string }).token } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    return new KubeClient(kc);
  };
  const status = async (p: Promise<unknown>): Promise<number> =>
    p.then(
      () => 200,
      (e: unknown) => (e instanceof KubeRequestError ? e.status : Promise.reject(e)),
    );
  const create = (path: string, body: object) => t.client.create(path, body);

  beforeAll(async () => {
    t = await startTestApiServer();
    for (const ns of ["app", "other"]) await create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    await create("/api/v1/namespaces/app/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "reader" } });
    for (const ns of ["app", "other"])
      for (const name of ["one", "two"])
        await create(`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data: {} });
    await create(`/api/v1/namespaces/app/pods`, { apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "i" }] } });
    // configmaps: list and watch in "app" only; get, list and watch of "one" alone anywhere; pods/status patch in "app".
    await create(`${RBAC}/namespaces/app/roles`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "cm" },
      rules: [
        { apiGroups: [""], resources: ["configmaps"], verbs: ["list", "watch"] },
        { apiGroups: [""], resources: ["pods/status"], verbs: ["patch"] },
      ],
    });
    await create(`${RBAC}/namespaces/app/rolebindings`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "cm" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "cm" },
      subjects: [{ kind: "ServiceAccount", name: "reader" }],
    });
    await create(`${RBAC}/clusterroles`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "one-cm" },
      rules: [{ apiGroups: [""], resources: ["configmaps"], resourceNames: ["one"], verbs: ["get", "list", "watch"] }],
    });
    await create(`${RBAC}/clusterrolebindings`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "one-cm" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "one-cm" },
      subjects: [{ kind: "ServiceAccount", name: "reader", namespace: "app" }],
    });
    sa = await clientFor("app", "reader");
  });
  afterAll(async () => {
    sa?.close();
    await t?.close();
  });

  it("refuses what no role grants with 403 Forbidden and Kubernetes' message; the admin is not limited", async () => {
    const err = await sa.list("/api/v1/namespaces/app/pods").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      status: 403,
      reason: "Forbidden",
      message: expect.stringContaining(
        'pods is forbidden: User "system:serviceaccount:app:reader" cannot list resource "pods" in API group "" in the namespace "app"',
      ),
    });
    expect(await status(sa.list("/api/v1/namespaces"))).toBe(403);
    expect(await status(t.client.list("/api/v1/namespaces/app/pods"))).toBe(200);
  });

  it("a Role grants in its namespace only; a ClusterRoleBinding everywhere; resourceNames narrow to the named object", async () => {
    expect(await status(sa.list("/api/v1/namespaces/app/configmaps"))).toBe(200);
    expect(await status(sa.list("/api/v1/namespaces/other/configmaps"))).toBe(403);
    expect(await status(sa.get("/api/v1/namespaces/other/configmaps/one"))).toBe(200);
    expect(await status(sa.get("/api/v1/namespaces/other/configmaps/two"))).toBe(403);
    // A list narrowed to the named object by field selector counts as naming it; another name does not.
    expect(await status(sa.list("/api/v1/namespaces/other/configmaps?fieldSelector=metadata.name%3Done"))).toBe(200);
    expect(await status(sa.list("/api/v1/namespaces/other/configmaps?fieldSelector=metadata.name%3Dtwo"))).toBe(403);
    expect(await status(sa.create("/api/v1/namespaces/app/configmaps", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "new" } }))).toBe(403);
  });

  it("subresources are their own resource: pods/status does not grant pods, nor the reverse", async () => {
    expect(await status(sa.request("PATCH", "/api/v1/namespaces/app/pods/p/status", { status: { phase: "Running" } }, "application/merge-patch+json"))).toBe(
      200,
    );
    expect(await status(sa.mergePatch("/api/v1/namespaces/app/pods/p", { metadata: { labels: { x: "y" } } }))).toBe(403);
  });

  it("a RoleBinding to a ClusterRole grants it in the binding's namespace, and to groups", async () => {
    await create(`${RBAC}/clusterroles`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "pods-reader" },
      rules: [{ apiGroups: ["*"], resources: ["pods"], verbs: ["*"] }],
    });
    await create(`${RBAC}/namespaces/other/rolebindings`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "all-sa" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "pods-reader" },
      subjects: [{ kind: "Group", name: "system:serviceaccounts:app" }],
    });
    expect(await status(sa.list("/api/v1/namespaces/other/pods"))).toBe(200);
    expect(await status(sa.list("/api/v1/namespaces/app/pods"))).toBe(403);
  });
});
