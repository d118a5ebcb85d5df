// What the controller gives a waypoint, against the sandbox API server and over real TLS: its own identity from the CA, its config stream (routes, L7 and traffic policies of what it serves, and only those), route and traffic policy status.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigStreamClient } from "../../agent/config-client/index.ts";
import { type CaRequestError, ControllerCaClient } from "../../agent/identity/controller-ca.ts";
import type { Credentials } from "../../agent/identity/index.ts";
import { compileForEnforcers } from "../../controller/authorization/index.ts";
import { CallerAuthenticator, CsrServer, MeshCa, podOnNodeCheck } from "../../controller/identity/index.ts";
import { ConfigStreamServer, meshStreamAuthenticator } from "../../controller/stream/index.ts";
import { TrafficPolicyState } from "../../controller/traffic-policy/index.ts";
import { MeshViews, SidecarViews, WaypointViews } from "../../controller/views/index.ts";
import { SIDECAR_STATUS_ANNOTATION, hasSidecar } from "../../contract/sidecar.ts";
import {
  type CompiledMeshRoutes,
  type WaypointLookup,
  boundToAmbitWaypoint,
  compileMeshRoutes,
  isWaypointGateway,
  writeRouteStatuses,
} from "../../controller/waypoints/index.ts";
import type { CompiledL7Authorization } from "../../contract/l7-authorization.ts";
import type { Resource } from "../../contract/stream.ts";
import { GATEWAY_API_VERSION, USE_WAYPOINT_LABEL, WAYPOINT_CONTROLLER_NAME, WAYPOINT_GATEWAY_CLASS } from "../../contract/waypoint.ts";
import { SharedInformers } from "../../kube/informers.ts";
import { type KubeObject, pathFor } from "../../kube/client.ts";
import { TRAFFIC_POLICY_VERSION } from "../../contract/traffic-policy.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { GATEWAY_API_DIR } from "../../sandbox/index.ts";
import { readManifestDir } from "../../sandbox/manifests.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const SERVER_NAME = "ambit-controller.ambit-system.svc";
const log = pino({ level: "silent" });

async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const httpRoute = (namespace: string, name: string, service: string, path = "/"): KubeObject => ({
  apiVersion: GATEWAY_API_VERSION,
  kind: "HTTPRoute",
  metadata: { name, namespace },
  spec: {
    parentRefs: [{ group: "", kind: "Service", name: service, port: 9080 }],
    rules: [{ matches: [{ path: { type: "PathPrefix", value: path } }], backendRefs: [{ name: service, port: 9080 }] }],
  },
});
const authorizationPolicy = (name: string, targetRefs: unknown[]): KubeObject => ({
  apiVersion: "security.ambit.dev/v1",
  kind: "AuthorizationPolicy",
  metadata: { name, namespace: "shop" },
  spec: { targetRefs, rules: [{ to: [{ operation: { methods: ["GET"] } }] }] },
});

describe("a waypoint's identity and config", () => {
  let t: TestApiServer;
  let dir: string;
  let ca: MeshCa;
  let csr: CsrServer;
  let stream: ConfigStreamServer;
  let informers: SharedInformers;
  let caPort: number;
  let streamPort: number;
  const uids: Record<string, string> = {};
  const clients: ConfigStreamClient[] = [];
  let meshRoutes: CompiledMeshRoutes = { routes: [], results: [], servicePorts: [] };
  let trafficPolicies: TrafficPolicyState;
  const l7Policies: CompiledL7Authorization[] = [
    authorizationPolicy("at-waypoint", [{ group: "gateway.networking.k8s.io", kind: "Gateway", name: "waypoint" }]),
    authorizationPolicy("for-reviews", [{ group: "", kind: "Service", name: "reviews" }]),
    authorizationPolicy("for-ratings", [{ group: "", kind: "Service", name: "ratings" }]),
  ].map((p) => compileForEnforcers(p).l7!.compiled);

  const token = async (namespace: string, sa: string, pod: string) => {
    const res = await t.client.create<{ apiVersion: string; kind: string; metadata: { name: string }; status: { token: string } }>(
      `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { audiences: ["ambit-ca"], expirationSeconds: 3600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod, uid: uids[pod] } },
      },
    );
    return res.status.token;
  };
  const caClient = async (tok: string) => {
    const file = path.join(dir, `token-${Math.random()}`);
    await fs.writeFile(file, tok, { mode: 0o600 });
    return new ControllerCaClient({
      host: "127.0.0.1",
      port: caPort,
      serverName: SERVER_NAME,
      trustBundlePem: () => ca.trustBundle().join(""),
      tokenFile: file,
    });
  };
  /** Connects as `credentials` with `tok`, naming `node` in hello; the updates and the last error. */
  const connect = (credentials: Credentials, tok: string, node: string) => {
    const updates: ReadonlyMap<string, Resource>[] = [];
    const client = new ConfigStreamClient({
      url: `https://127.0.0.1:${streamPort}`,
      serverName: SERVER_NAME,
      ca: () => ca.trustBundle().join(""),
      credentials: () => credentials,
      token: () => tok,
      node,
      log,
      backoff: { initialMs: 50, maxMs: 200, jitter: 0 },
      onUpdate: (view) => void updates.push(new Map(view)),
    });
    client.start();
    clients.push(client);
    return { client, updates, latest: () => updates.at(-1) };
  };
  const own = (view: ReadonlyMap<string, Resource> | undefined) =>
    [...(view?.keys() ?? [])].filter((k) => k.startsWith("routes/") || k.startsWith("l7authorization/")).sort();

  beforeAll(async () => {
    t = await startTestApiServer();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-wp-"));
    for (const crd of [...(await readManifestDir(GATEWAY_API_DIR)), ...(await readManifestDir(path.join(REPO_ROOT, "daemonset", "crds")))])
      await t.client.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
    for (const [name, labels] of [
      ["ambit-system", {}],
      ["shop", { [USE_WAYPOINT_LABEL]: "waypoint" }],
    ] as const)
      await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
    await t.client.create("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: "node-1" }, spec: { podCIDR: "10.244.1.0/24" } });
    for (const [ns, sa] of [
      ["ambit-system", "ambit-agent"],
      ["shop", "waypoint"],
      ["shop", "other-wp"],
      ["shop", "reviews"],
      ["shop", "client"],
    ])
      await t.client.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa } });
    for (const [ns, name, sa] of [
      ["ambit-system", "agent-1", "ambit-agent"],
      ["shop", "waypoint-1", "waypoint"],
      ["shop", "other-wp-1", "other-wp"],
      ["shop", "reviews-1", "reviews"],
      ["shop", "client-1", "client"],
    ]) {
      const p = await t.client.create(`/api/v1/namespaces/${ns}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        // client-1 carries a sidecar (what injection records on the pod).
        metadata: { name, labels: { app: sa }, ...(sa === "client" ? { annotations: { [SIDECAR_STATUS_ANNOTATION]: '{"version":1}' } } : {}) },
        spec: { nodeName: "node-1", serviceAccountName: sa, containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }] },
      });
      uids[name!] = p.metadata.uid!;
      // What a kubelet would report: workloads need an address.
      await t.client.mergePatch(`/api/v1/namespaces/${ns}/pods/${name}/status`, {
        status: { phase: "Running", podIP: `10.244.1.${Object.keys(uids).length + 1}` },
      });
    }
    for (const name of ["waypoint", "other-wp"])
      await t.client.create(pathFor(GATEWAY_API_VERSION, "gateways", "shop"), {
        apiVersion: GATEWAY_API_VERSION,
        kind: "Gateway",
        metadata: { name },
        spec: { gatewayClassName: WAYPOINT_GATEWAY_CLASS, listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }] },
      });
    for (const [name, labels] of [
      ["reviews", {}],
      ["ratings", { [USE_WAYPOINT_LABEL]: "other-wp" }],
    ] as const)
      await t.client.create("/api/v1/namespaces/shop/services", {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, labels },
        spec: { selector: { app: name }, ports: [{ name: "http", port: 9080 }] },
      });
    await t.client.create(pathFor(GATEWAY_API_VERSION, "httproutes", "shop"), httpRoute("shop", "reviews-route", "reviews"));
    await t.client.create(pathFor(GATEWAY_API_VERSION, "httproutes", "shop"), httpRoute("shop", "ratings-route", "ratings"));

    // The controller's parts, wired as controller/main.ts wires them.
    informers = new SharedInformers(t.client, [
      "pods",
      "services",
      "endpointslices",
      "namespaces",
      "nodes",
      "httproutes",
      "grpcroutes",
      "gateways",
      "backendtrafficpolicies",
    ]);
    trafficPolicies = new TrafficPolicyState(
      t.client,
      {
        policies: () => informers.list("backendtrafficpolicies"),
        exists: (namespace, target) =>
          informers.get(target.kind === "Service" ? "services" : target.kind === "HTTPRoute" ? "httproutes" : "grpcroutes", target.name, namespace) !==
          undefined,
        isLeader: () => true,
      },
      log,
    );
    const lookup: WaypointLookup = {
      namespace: (name) => informers.get("namespaces", name),
      gateway: (namespace, name) => informers.get("gateways", name, namespace),
    };
    ca = new MeshCa({ client: t.client, namespace: "ambit-system", trustDomain: "cluster.local", log, mayWrite: () => true, maxCertTtlSeconds: 86400 });
    await ca.refresh();
    const views = new MeshViews({
      pods: () => informers.list("pods"),
      services: () => informers.list("services"),
      endpointSlices: () => informers.list("endpointslices"),
      policies: () => [],
      trustBundle: () => ({ rootsPem: ca.trustBundle() }),
      podNetwork: () => ({ podCidrs: ["10.244.1.0/24"] }),
      rootNamespace: "ambit-system",
      waypoints: lookup,
    });
    const waypointViews = new WaypointViews({
      shared: () => views.shared(),
      routes: () => meshRoutes.servicePorts,
      l7Policies: () => l7Policies,
      trafficPolicies: () => trafficPolicies.policies(),
    });
    const sidecarViews = new SidecarViews(views, waypointViews);
    const recompile = () =>
      (meshRoutes = compileMeshRoutes(informers.list("httproutes"), informers.list("grpcroutes"), (namespace, name) =>
        informers.get("services", name, namespace),
      ));
    const authenticator = new CallerAuthenticator(t.client, ["ambit-system/ambit-agent"], {
      cachedPod: (namespace, name) => informers.get("pods", name, namespace),
    });
    const serving = ca.issueServing([SERVER_NAME], 3600);
    csr = new CsrServer({
      ca,
      authenticator,
      trustDomain: "cluster.local",
      hasPodOnNode: podOnNodeCheck(t.client),
      defaultTtlSeconds: 86400,
      credentials: serving,
      log,
      registry: new Registry(),
    });
    stream = new ConfigStreamServer({
      credentials: serving,
      trustBundlePem: ca.trustBundle().join(""),
      debounceMs: 10,
      log,
      registry: new Registry(),
      viewFor: (node) => views.viewFor(node),
      waypointViewFor: (waypoint) => waypointViews.viewFor(waypoint),
      sidecarViewFor: (pod) => sidecarViews.viewFor(pod),
      authenticate: meshStreamAuthenticator({
        trustDomain: "cluster.local",
        agentServiceAccounts: ["ambit-system/ambit-agent"],
        authenticator,
        isWaypoint: (namespace, name) => {
          const gw = lookup.gateway(namespace, name);
          return gw !== undefined && isWaypointGateway(gw);
        },
        isSidecarPod: (namespace, name) => {
          const pod = informers.get("pods", name, namespace);
          return pod !== undefined && hasSidecar(pod);
        },
      }),
    });
    for (const r of ["pods", "services", "endpointslices", "namespaces", "gateways"] as const)
      informers.on(r, () => {
        views.invalidate();
        stream.changed();
      });
    for (const r of ["httproutes", "grpcroutes", "services"] as const)
      informers.on(r, () => {
        recompile();
        stream.changed();
      });
    for (const r of ["backendtrafficpolicies", "services", "httproutes", "grpcroutes"] as const)
      informers.on(r, () => {
        trafficPolicies.recompile();
        stream.changed();
        trafficPolicies.writeStatus();
      });
    await informers.start();
    recompile();
    trafficPolicies.recompile();
    caPort = (await csr.listen(0, "127.0.0.1")).port;
    streamPort = (await stream.listen(0, "127.0.0.1")).port;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await stream?.close();
    await csr?.close();
    await informers?.stop();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("a waypoint obtains its own identity with its pod's token, and is refused another", async () => {
    const client = await caClient(await token("shop", "waypoint", "waypoint-1"));
    await client.issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "waypoint" });
    const other = await client.issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "reviews" }).catch((err: CaRequestError) => err);
    expect(other).toMatchObject({ status: 403, code: "AMBIT_E_CA_NOT_OWN_IDENTITY" });
  });

  it("a waypoint's stream holds its routes and policies and only those, besides every workload and Service; a route change reaches it", async () => {
    const tok = await token("shop", "waypoint", "waypoint-1");
    const identity = await (await caClient(tok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "waypoint" });
    const wp = connect(identity, tok, "shop/waypoint");
    await waitFor("the waypoint's snapshot", () => wp.updates.length > 0);
    expect(own(wp.latest())).toEqual(["l7authorization/shop/at-waypoint", "l7authorization/shop/for-reviews", "routes/shop/reviews:9080"]);
    expect([...wp.latest()!.keys()].filter((k) => k.startsWith("service/")).sort()).toEqual([
      "service/default/kubernetes",
      "service/shop/ratings",
      "service/shop/reviews",
    ]);
    expect([...wp.latest()!.keys()].filter((k) => k.startsWith("workload/"))).toHaveLength(5);
    expect(wp.latest()!.has("trustbundle/default")).toBe(true);
    expect(wp.latest()!.get("routes/shop/reviews:9080")?.value).toMatchObject({
      producer: [{ name: "reviews-route", rules: [{ matches: [{ path: { value: "/" } }] }] }],
    });

    // The other waypoint gets its own share.
    const otherTok = await token("shop", "other-wp", "other-wp-1");
    const otherIdentity = await (await caClient(otherTok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "other-wp" });
    const other = connect(otherIdentity, otherTok, "shop/other-wp");
    await waitFor("the other waypoint's snapshot", () => other.updates.length > 0);
    expect(own(other.latest())).toEqual(["l7authorization/shop/for-ratings", "routes/shop/ratings:9080"]);

    // A route change reaches the waypoint serving it, and not the other.
    const otherVersions = other.updates.length;
    // The sandbox API server refuses any update of a route that has no status yet (422 "status in body must be of
    // type object"; Kubernetes accepts it), so the route gets an empty one first, as its status subresource allows.
    const routePath = pathFor(GATEWAY_API_VERSION, "httproutes", "shop", "reviews-route");
    await t.client.mergePatch(`${routePath}/status`, { status: { parents: [] } });
    await t.client.mergePatch(routePath, {
      spec: { rules: [{ matches: [{ path: { type: "PathPrefix", value: "/v2" } }], backendRefs: [{ name: "reviews", port: 9080 }] }] },
    });
    await waitFor("the changed route", () => JSON.stringify(wp.latest()?.get("routes/shop/reviews:9080")?.value ?? "").includes('"/v2"'));
    await new Promise((r) => setTimeout(r, 100));
    expect(other.updates.length).toBe(otherVersions);
  });

  it("refuses a waypoint certificate with another pod's token, a certificate of no waypoint, and a hello naming another waypoint", async () => {
    const wpTok = await token("shop", "waypoint", "waypoint-1");
    const wpIdentity = await (await caClient(wpTok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "waypoint" });
    const reviewsTok = await token("shop", "reviews", "reviews-1");
    const reviewsIdentity = await (await caClient(reviewsTok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "reviews" });
    const attempts = [
      connect(wpIdentity, reviewsTok, "shop/waypoint"),
      connect(reviewsIdentity, reviewsTok, "shop/reviews"),
      connect(wpIdentity, wpTok, "shop/other-wp"),
    ];
    await waitFor("three refusals", () => attempts.every((a) => a.client.staleness().lastError !== undefined));
    expect(attempts.map((a) => [a.updates.length, a.client.staleness().lastError?.status])).toEqual([
      [0, 403],
      [0, 403],
      [0, 403],
    ]);
    expect(attempts[0]!.client.staleness().lastError?.message).toContain("not a pod of waypoint shop/waypoint");
    expect(attempts[1]!.client.staleness().lastError?.message).toContain("pod shop/reviews-1 carries no Ambit sidecar");
    await Promise.all(attempts.map((a) => a.client.close()));
  });

  it("a sidecar's stream holds its own pod's record with labels, every route and no waypoint's L7 policy; only its own pod gets one", async () => {
    const tok = await token("shop", "client", "client-1");
    const identity = await (await caClient(tok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "client" });
    const sidecar = connect(identity, tok, "shop/client-1");
    await waitFor("the sidecar's snapshot", () => sidecar.updates.length > 0);
    const view = sidecar.latest()!;
    // Every route (a sidecar routes whatever its pod calls), no L7 policy (those are the waypoints').
    expect(own(view)).toEqual(["routes/shop/ratings:9080", "routes/shop/reviews:9080"]);
    expect(view.has("trustbundle/default")).toBe(true);
    const workloads = [...view.values()]
      .filter((r) => r.type === "workload")
      .map((r) => r.value as { name: string; labels: Record<string, string>; captured: boolean });
    expect(workloads).toHaveLength(5);
    // Labels only for its own pod (selectors are matched where they are enforced), and it counts as reachable over HBONE.
    expect(workloads.filter((w) => Object.keys(w.labels).length > 0).map((w) => w.name)).toEqual(["client-1"]);
    expect(workloads.find((w) => w.name === "client-1")?.captured).toBe(true);

    // Its certificate with its token, naming another pod in hello: refused; a plain pod's certificate gets no view.
    const otherPod = connect(identity, tok, "shop/reviews-1");
    const reviewsTok = await token("shop", "reviews", "reviews-1");
    const reviewsIdentity = await (await caClient(reviewsTok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "reviews" });
    const plain = connect(reviewsIdentity, reviewsTok, "shop/reviews-1");
    await waitFor("two refusals", () => [otherPod, plain].every((a) => a.client.staleness().lastError !== undefined));
    expect([otherPod, plain].map((a) => [a.updates.length, a.client.staleness().lastError?.status])).toEqual([
      [0, 403],
      [0, 403],
    ]);
    expect(otherPod.client.staleness().lastError?.message).toContain(
      'this sidecar authenticated as pod shop/client-1 but asked for the config of "shop/reviews-1"',
    );
    expect(plain.client.staleness().lastError?.message).toContain("carries no Ambit sidecar");
  });

  it("an agent is unaffected: its node view holds no routes and no L7 policies", async () => {
    const tok = await token("ambit-system", "ambit-agent", "agent-1");
    const identity = await (await caClient(tok)).issue({ trustDomain: "cluster.local", namespace: "ambit-system", serviceAccount: "ambit-agent" });
    const agent = connect(identity, tok, "node-1");
    await waitFor("the agent's snapshot", () => agent.updates.length > 0);
    expect(own(agent.latest())).toEqual([]);
    expect([...agent.latest()!.keys()].filter((k) => k.startsWith("service/"))).toHaveLength(3);
  });

  it("the leader writes route status only for parents bound to an ambit waypoint, beside other implementations' entries", async () => {
    await t.client.create(pathFor(GATEWAY_API_VERSION, "httproutes", "shop"), {
      ...httpRoute("shop", "two-parents", "reviews"),
      spec: {
        parentRefs: [
          { group: "", kind: "Service", name: "reviews", port: 9080 },
          { group: "", kind: "Service", name: "unbound", port: 9080 },
        ],
      },
    });
    await t.client.create("/api/v1/namespaces/shop/services", {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "unbound", labels: { [USE_WAYPOINT_LABEL]: "none" } },
      spec: { ports: [{ port: 9080 }] },
    });
    await waitFor(
      "the caches",
      () => meshRoutes.routes.some((r) => r.metadata.name === "two-parents") && informers.get("services", "unbound", "shop") !== undefined,
    );
    const bound = boundToAmbitWaypoint((namespace, name) => informers.get("services", name, namespace), {
      namespace: (name) => informers.get("namespaces", name),
      gateway: (namespace, name) => informers.get("gateways", name, namespace),
    });
    expect(await writeRouteStatuses(t.client, meshRoutes, bound, log)).toBeGreaterThanOrEqual(3);
    const twoParents = await t.client.get(pathFor(GATEWAY_API_VERSION, "httproutes", "shop", "two-parents"));
    expect(twoParents.status?.parents).toEqual([
      {
        parentRef: { group: "", kind: "Service", name: "reviews", port: 9080 },
        controllerName: WAYPOINT_CONTROLLER_NAME,
        conditions: [
          expect.objectContaining({ type: "Accepted", status: "True", lastTransitionTime: expect.any(String) }),
          expect.objectContaining({ type: "ResolvedRefs", status: "True" }),
        ],
      },
    ]);
    // Nothing changed: the next pass (on the cache's newer objects) writes nothing.
    await waitFor("status in the cache", () => meshRoutes.routes.every((r) => r.status?.parents !== undefined));
    expect(await writeRouteStatuses(t.client, meshRoutes, bound, log)).toBe(0);
  });

  it("a BackendTrafficPolicy reaches the waypoint of its Service and no other; the leader writes Accepted, and Conflicted on a younger one", async () => {
    const tok = await token("shop", "waypoint", "waypoint-1");
    const identity = await (await caClient(tok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "waypoint" });
    const wp = connect(identity, tok, "shop/waypoint");
    const otherTok = await token("shop", "other-wp", "other-wp-1");
    const otherIdentity = await (await caClient(otherTok)).issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "other-wp" });
    const other = connect(otherIdentity, otherTok, "shop/other-wp");
    await waitFor("both snapshots", () => wp.updates.length > 0 && other.updates.length > 0);
    const btp = (name: string) => ({
      apiVersion: TRAFFIC_POLICY_VERSION,
      kind: "BackendTrafficPolicy",
      metadata: { name },
      spec: {
        targetRefs: [{ group: "", kind: "Service", name: "reviews" }],
        circuitBreaker: { maxPendingRequests: 5 },
        loadBalancer: { type: "LeastRequest" },
      },
    });
    await t.client.create(pathFor(TRAFFIC_POLICY_VERSION, "backendtrafficpolicies", "shop"), btp("reviews-resilience"));
    await waitFor("the policy in the waypoint's stream", () => wp.latest()?.has("trafficpolicy/shop/reviews-resilience") === true);
    expect(wp.latest()!.get("trafficpolicy/shop/reviews-resilience")?.value).toMatchObject({
      targets: [{ kind: "Service", name: "reviews" }],
      circuitBreaker: { maxConnections: 1024, maxPendingRequests: 5, maxParallelRequests: 1024 },
      loadBalancer: { type: "LeastRequest" },
    });
    expect([...other.latest()!.keys()].filter((k) => k.startsWith("trafficpolicy/"))).toEqual([]);

    const policyPath = (name: string) => pathFor(TRAFFIC_POLICY_VERSION, "backendtrafficpolicies", "shop", name);
    const reasonOf = async (name: string) =>
      ((await t.client.get(policyPath(name))).status?.ancestors as Array<{ conditions: Array<{ reason: string }> }> | undefined)?.[0]?.conditions[0]?.reason;
    await waitFor("Accepted in status", () => informers.get("backendtrafficpolicies", "reviews-resilience", "shop")?.status !== undefined);
    expect(await reasonOf("reviews-resilience")).toBe("Accepted");

    // Created later, or in the same second (timestamps have one-second resolution) and after it alphabetically: it loses.
    await t.client.create(pathFor(TRAFFIC_POLICY_VERSION, "backendtrafficpolicies", "shop"), btp("younger"));
    await waitFor("Conflicted in status", () => informers.get("backendtrafficpolicies", "younger", "shop")?.status !== undefined);
    expect(await reasonOf("younger")).toBe("Conflicted");
    expect(wp.latest()!.has("trafficpolicy/shop/younger")).toBe(false);
  });
});
