// The controller program: watches the cluster, runs the CA and its CSR endpoint, compiles policy and routes, streams each node and waypoint its view.
import http from "node:http";
import { X509Certificate } from "node:crypto";
import pino from "pino";
import { Registry, collectDefaultMetrics } from "prom-client";
import { type KubeAccess, KubeClient, type KubeObject, pathFor } from "../kube/client.ts";
import { inClusterConfig } from "../kube/credentials.ts";
import { SharedInformers } from "../kube/informers.ts";
import { RESOURCE_TYPES } from "../contract/mesh.ts";
import { GATEWAY_NAME_LABEL } from "../contract/waypoint.ts";
import type { CompiledL7Authorization } from "../contract/l7-authorization.ts";
import { compileForEnforcers, compilePeerAuthentication, type Condition } from "./authorization/index.ts";
import { loadControllerConfig } from "./config.ts";
import { LeaderElector, leaderIdentity } from "./leader/index.ts";
import { CallerAuthenticator, CsrServer, MeshCa, TrustRootsPublisher, podOnNodeCheck } from "./identity/index.ts";
import { ConfigStreamServer, meshStreamAuthenticator } from "./stream/index.ts";
import { MeshViews, type ScopedPolicy, SidecarViews, WaypointViews } from "./views/index.ts";
import { hasSidecar } from "../contract/sidecar.ts";
import {
  type CompiledMeshRoutes,
  type WaypointLookup,
  WaypointReconciler,
  boundToAmbitWaypoint,
  compileMeshRoutes,
  isWaypointGateway,
  writeRouteStatuses,
} from "./waypoints/index.ts";
import { podNetworkOf } from "./state/index.ts";
import { TrafficPolicyState } from "./traffic-policy/index.ts";

const config = loadControllerConfig();
const log = pino({ level: config.logLevel, base: { component: "controller", pod: config.podName } });
// client-node (behind ./kube/kubeconfig.ts) is loaded only for a kubeconfig file: in a cluster it is not needed.
const kc: KubeAccess = process.env.KUBECONFIG ? (await import("../kube/kubeconfig.ts")).loadKubeconfig(process.env.KUBECONFIG) : inClusterConfig();
const client = new KubeClient(kc);
const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "ambit_controller_" });
for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"])
  registry.removeSingleMetric(`ambit_controller_${name}`);

// ---- cluster state and compiled policy.
// Nodes give agents the pod network (pod CIDRs); routes are compiled for waypoints; ServiceAccounts have no consumer
// yet. Gateway API kinds only when its CRDs are installed: without them there are no waypoints.
const gatewayApi = await client.get("/apis/gateway.networking.k8s.io/v1").then(
  () => true,
  () => false,
);
// BackendTrafficPolicy (networking.ambit.dev) only when its CRD is served: a cluster may run the chart's older CRDs.
const trafficPolicyApi = await client.get("/apis/networking.ambit.dev/v1alpha1").then(
  () => true,
  () => false,
);
const watched = [
  "pods",
  "services",
  "endpointslices",
  "namespaces",
  "nodes",
  "serviceaccounts",
  "authorizationpolicies",
  "peerauthentications",
  ...(gatewayApi ? (["httproutes", "grpcroutes", "gateways", "gatewayclasses"] as const) : []),
  ...(trafficPolicyApi ? (["backendtrafficpolicies"] as const) : []),
] as const;
const informers = new SharedInformers(client, [...watched], (resource, err) =>
  log.warn({ resource, err: String(err) }, "watch failed; restarting with backoff"),
);
/** BackendTrafficPolicies for waypoints; their targets are Services and routes, whose existence decides TargetNotFound. */
const trafficPolicies = new TrafficPolicyState(
  client,
  {
    policies: () => (trafficPolicyApi ? informers.list("backendtrafficpolicies") : []),
    exists: (namespace, t) =>
      (t.kind === "Service"
        ? informers.get("services", t.name, namespace)
        : gatewayApi
          ? informers.get(t.kind === "HTTPRoute" ? "httproutes" : "grpcroutes", t.name, namespace)
          : undefined) !== undefined,
    isLeader: () => elector.isLeader(),
  },
  log,
);
/** Every policy with its status; `scoped` is what node agents enforce (absent for a waypoint's policy), `l7` what waypoints do. */
const compiled = new Map<string, { scoped?: ScopedPolicy; l7?: CompiledL7Authorization; condition: Condition; object: KubeObject; plural: string }>();
/** A new array on every recompilation: waypoint views rebuild their resources only then. */
let l7Policies: CompiledL7Authorization[] = [];
let meshRoutes: CompiledMeshRoutes = { routes: [], results: [], servicePorts: [] };

/**
 * The waypoint reconciler is set once the views exist (below); leadership may start before that, and then it
 * reconciles on the first change. One pass at a time: a change during a pass asks for one more after it.
 */
const waypointWork: { reconciler?: WaypointReconciler; pass?: Promise<void>; again: boolean } = { again: false };

// ---- leader election: the leader creates the CA root, publishes the trust bundle and writes policy status.
const identity = leaderIdentity(config.podName);
const elector = new LeaderElector({
  client,
  namespace: config.namespace,
  name: "ambit-controller",
  identity,
  leaseDurationMs: config.leaseDurationMs,
  renewDeadlineMs: config.renewDeadlineMs,
  retryPeriodMs: config.retryPeriodMs,
  log,
  registry,
  onStartedLeading: () => {
    void ca
      .refresh()
      .then(publishTrustBundle)
      .catch((err: unknown) => log.error({ err: String(err) }, "CA set-up as leader failed; retrying"));
    writeAllStatuses();
    writeRouteStatus();
    trafficPolicies.writeStatus();
    reconcileWaypoints();
  },
});
elector.start();

// ---- CA: a signing root from the cacerts plug-in secret or the controller's own (created once by the leader).
const ca = new MeshCa({
  client,
  namespace: config.namespace,
  trustDomain: config.trustDomain,
  log,
  mayWrite: () => elector.isLeader(),
  maxCertTtlSeconds: config.workloadCertTtlSeconds,
});
while (!ca.ready) {
  await ca.refresh().catch((err: unknown) => log.warn({ err: String(err) }, "CA root not available yet"));
  if (!ca.ready) await new Promise((r) => setTimeout(r, 1000));
}
// Rotation or a new plug-in CA done by the leader (or by the user) reaches every replica within this period.
setInterval(() => void ca.refresh().catch((err: unknown) => log.warn({ err: String(err) }, "CA refresh failed")), 10_000).unref();

function recompilePolicies(): void {
  compiled.clear();
  for (const obj of informers.list("authorizationpolicies")) {
    const { l4, l7, condition } = compileForEnforcers(obj);
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    compiled.set(`a/${key}`, {
      ...(l4
        ? {
            scoped: {
              resource: { type: RESOURCE_TYPES.authorization, key, value: l4.compiled },
              namespace: l4.compiled.namespace,
              selector: l4.compiled.selector,
            },
          }
        : {}),
      ...(l7 ? { l7: l7.compiled } : {}),
      condition,
      object: obj,
      plural: "authorizationpolicies",
    });
  }
  for (const obj of informers.list("peerauthentications")) {
    const r = compilePeerAuthentication(obj);
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    compiled.set(`p/${key}`, {
      scoped: { resource: { type: RESOURCE_TYPES.peerAuthentication, key, value: r.compiled }, namespace: r.compiled.namespace, selector: r.compiled.selector },
      condition: r.condition,
      object: obj,
      plural: "peerauthentications",
    });
  }
  l7Policies = [...compiled.values()].flatMap((c) => (c.l7 ? [c.l7] : []));
}

/** Routes depend on Services too (parent ports, backends): recompiled on either, a new result each time. */
function recompileRoutes(): void {
  if (!gatewayApi) return;
  meshRoutes = compileMeshRoutes(informers.list("httproutes"), informers.list("grpcroutes"), (namespace, name) => informers.get("services", name, namespace));
}

/**
 * The leader records on each route, for its parents bound to an ambit waypoint, what the route engine says. One pass at
 * a time (two would send the same conditional write twice, and one would fail): a change during a pass asks for one more.
 */
const routeStatusWork: { pass?: Promise<unknown>; again: boolean } = { again: false };
function writeRouteStatus(): void {
  if (!gatewayApi || !elector.isLeader()) return;
  if (routeStatusWork.pass) {
    routeStatusWork.again = true;
    return;
  }
  const bound = boundToAmbitWaypoint((namespace, name) => informers.get("services", name, namespace), waypointLookup);
  routeStatusWork.pass = writeRouteStatuses(client, meshRoutes, bound, log).finally(() => {
    routeStatusWork.pass = undefined;
    if (routeStatusWork.again) {
      routeStatusWork.again = false;
      writeRouteStatus();
    }
  });
}

/** The leader records on each policy what is enforced where (Accepted / PartiallyEnforced / Invalid). */
function writeAllStatuses(): void {
  if (!elector.isLeader()) return;
  for (const entry of compiled.values()) {
    const current = (entry.object.status?.conditions as Condition[] | undefined)?.find((c) => c.type === "Accepted");
    const next = entry.condition;
    if (
      current &&
      current.status === next.status &&
      current.reason === next.reason &&
      current.message === next.message &&
      current.observedGeneration === next.observedGeneration
    )
      continue;
    const path = pathFor("security.ambit.dev/v1", entry.plural, entry.object.metadata.namespace, entry.object.metadata.name, "status");
    void client
      .mergePatch(path, { status: { conditions: [{ ...next, lastTransitionTime: new Date().toISOString() }] } })
      .catch((err: unknown) =>
        log.warn({ policy: `${entry.object.metadata.namespace}/${entry.object.metadata.name}`, err: String(err) }, "could not write policy status"),
      );
  }
}

const waypointLookup: WaypointLookup = {
  namespace: (name) => informers.get("namespaces", name),
  gateway: (namespace, name) => (gatewayApi ? informers.get("gateways", name, namespace) : undefined),
};
const views = new MeshViews({
  pods: () => informers.list("pods"),
  services: () => informers.list("services"),
  endpointSlices: () => informers.list("endpointslices"),
  policies: () => [...compiled.values()].flatMap((c) => (c.scoped ? [c.scoped] : [])),
  trustBundle: () => ({ rootsPem: ca.trustBundle() }),
  podNetwork: () => podNetworkOf(informers.list("nodes")),
  rootNamespace: config.rootNamespace,
  waypoints: waypointLookup,
});
const waypointViews = new WaypointViews({
  shared: () => views.shared(),
  routes: () => meshRoutes.servicePorts,
  l7Policies: () => l7Policies,
  trafficPolicies: () => trafficPolicies.policies(),
});
const sidecarViews = new SidecarViews(views, waypointViews);

// ---- waypoints: the leader deploys each ambit-waypoint Gateway and writes its status.
waypointWork.reconciler = gatewayApi
  ? new WaypointReconciler(
      client,
      {
        gateways: () => informers.list("gateways"),
        gatewayClasses: () => informers.list("gatewayclasses"),
        pods: () => informers.list("pods"),
        services: () => informers.list("services"),
      },
      { ...config.waypoint, trustDomain: config.trustDomain, logLevel: config.logLevel },
      () => ca.trustBundle().join(""),
      log,
    )
  : undefined;
function reconcileWaypoints(opts: { resync?: boolean } = {}): void {
  const { reconciler } = waypointWork;
  if (!reconciler || !elector.isLeader()) return;
  if (waypointWork.pass) {
    waypointWork.again = true;
    return;
  }
  waypointWork.pass = reconciler.reconcile(opts).then(({ failures }) => {
    waypointWork.pass = undefined;
    if (waypointWork.again) {
      waypointWork.again = false;
      reconcileWaypoints();
    } else if (failures > 0) {
      // Without this a Gateway whose status write lost a race (409) would wait for the next event or the resync.
      setTimeout(() => reconcileWaypoints(), WAYPOINT_RETRY_MS).unref();
    }
  });
}
const WAYPOINT_RETRY_MS = 2_000;
// Puts back what someone deleted or edited by hand; Gateway changes are handled as they come.
setInterval(() => reconcileWaypoints({ resync: true }), 60_000).unref();

// ---- serving certificate of both endpoints, renewed at half life (and whenever the root changes).
const servingNames = [`ambit-controller.${config.namespace}.svc`, `ambit-controller.${config.namespace}.svc.cluster.local`, ...config.servingNames];
let serving = ca.issueServing(servingNames, 24 * 3600);

const authenticator = new CallerAuthenticator(client, config.agentServiceAccounts, {
  cachedPod: (namespace, name) => informers.get("pods", name, namespace),
});
const csrServer = new CsrServer({
  ca,
  authenticator,
  trustDomain: config.trustDomain,
  defaultTtlSeconds: config.workloadCertTtlSeconds,
  credentials: serving,
  log,
  registry,
  hasPodOnNode: podOnNodeCheck(client, (namespace) => informers.list("pods", namespace)),
});

const stream = new ConfigStreamServer({
  credentials: serving,
  trustBundlePem: ca.trustBundle().join(""),
  debounceMs: config.debounceMs,
  log,
  registry,
  viewFor: (node) => views.viewFor(node),
  waypointViewFor: (waypoint) => waypointViews.viewFor(waypoint),
  sidecarViewFor: (pod) => sidecarViews.viewFor(pod),
  authenticate: meshStreamAuthenticator({
    trustDomain: config.trustDomain,
    agentServiceAccounts: config.agentServiceAccounts,
    authenticator,
    isWaypoint: (namespace, name) => {
      const gateway = waypointLookup.gateway(namespace, name);
      return gateway !== undefined && isWaypointGateway(gateway);
    },
    isSidecarPod: (namespace, name) => {
      const pod = informers.get("pods", name, namespace);
      return pod !== undefined && hasSidecar(pod);
    },
  }),
});

const refreshServing = () => {
  serving = ca.issueServing(servingNames, 24 * 3600);
  csrServer.setCredentials(serving);
  stream.setCredentials(serving, ca.trustBundle().join(""));
};
setInterval(refreshServing, 12 * 3600_000).unref();
ca.onChange(() => {
  refreshServing();
  views.invalidate();
  stream.changed();
  publishTrustBundle().catch((err: unknown) => log.warn({ err: String(err) }, "could not publish the trust bundle"));
});

/** Agents read the roots from this ConfigMap before their first connection (Istio's istio-ca-root-cert). */
async function publishTrustBundle(): Promise<void> {
  if (!elector.isLeader() || !ca.ready) return;
  await publishNamespaceRoots();
  const data = { "root-cert.pem": ca.trustBundle().join("") };
  const path = pathFor("v1", "configmaps", config.namespace, "ambit-ca-root");
  const existing = await client.get(path).catch(() => undefined);
  if ((existing?.data as Record<string, string> | undefined)?.["root-cert.pem"] === data["root-cert.pem"]) return;
  if (existing) await client.mergePatch(path, { data });
  else await client.create(pathFor("v1", "configmaps", config.namespace), { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "ambit-ca-root" }, data });
  log.info({ roots: ca.trustBundle().length }, "published the trust bundle (configmap ambit-ca-root)");
}

/** Sidecars mount their namespace's copy (pods mount only their own namespace's ConfigMaps); new namespaces get one too. */
const rootsPublisher = new TrustRootsPublisher(client, log);
let rootsPublishing: Promise<void> = Promise.resolve();
function publishNamespaceRoots(): Promise<void> {
  // One pass at a time: two passes racing would both create a namespace's ConfigMap and one would fail with 409.
  rootsPublishing = rootsPublishing.then(async () => {
    if (!elector.isLeader() || !ca.ready) return;
    // The system namespace's copy is the agents' (written above with its own labels).
    const namespaces = informers.list("namespaces").filter((ns) => ns.metadata.name !== config.namespace);
    await rootsPublisher.publish(namespaces, ca.trustBundle().join(""));
  });
  return rootsPublishing;
}
informers.on("namespaces", () => void publishNamespaceRoots());

for (const r of ["pods", "services", "endpointslices", "namespaces", "nodes"] as const) {
  informers.on(r, () => {
    views.invalidate();
    stream.changed();
  });
}
// Gateways and namespace labels change which waypoint each Service and pod is bound to; pods and Services of
// waypoints change their Gateways' status.
if (gatewayApi) {
  for (const r of ["gateways", "gatewayclasses"] as const) {
    informers.on(r, () => {
      views.invalidate();
      stream.changed();
      reconcileWaypoints();
    });
  }
  // Only a waypoint's own pods and Service change a Gateway's status: other pod churn starts no pass.
  for (const r of ["pods", "services"] as const)
    informers.on(r, (_event, obj) => {
      if (obj.metadata.labels?.[GATEWAY_NAME_LABEL]) reconcileWaypoints();
    });
  // Routes and Services change what is compiled; Services, Namespaces and Gateways which parents are bound to a waypoint.
  for (const r of ["httproutes", "grpcroutes", "services"] as const) {
    informers.on(r, () => {
      recompileRoutes();
      stream.changed();
    });
  }
  for (const r of ["httproutes", "grpcroutes", "services", "namespaces", "gateways"] as const) informers.on(r, () => writeRouteStatus());
}
for (const r of ["authorizationpolicies", "peerauthentications"] as const) {
  informers.on(r, () => {
    recompilePolicies();
    views.invalidate("policies");
    stream.changed();
    writeAllStatuses();
  });
}
if (trafficPolicyApi)
  for (const r of ["backendtrafficpolicies", "services", ...(gatewayApi ? (["httproutes", "grpcroutes"] as const) : [])] as const) {
    informers.on(r, () => {
      trafficPolicies.recompile();
      stream.changed();
      trafficPolicies.writeStatus();
    });
  }
await informers.start();
recompilePolicies();
recompileRoutes();
trafficPolicies.recompile();
writeAllStatuses();
writeRouteStatus();
trafficPolicies.writeStatus();
reconcileWaypoints();
await publishTrustBundle().catch((err: unknown) => log.warn({ err: String(err) }, "could not publish the trust bundle yet"));

const caAddress = await csrServer.listen(config.ports.ca);
const streamAddress = await stream.listen(config.ports.configStream);

// ---- monitoring: metrics, readiness, and a debug dump of who is connected.
const isLoopback = (address: string | undefined): boolean =>
  address !== undefined && (address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127."));
const monitoring = http.createServer((req, res) => {
  if (req.url === "/metrics") {
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(body);
      },
      (err: unknown) => {
        log.error({ err: String(err) }, "collecting metrics failed");
        res.writeHead(500, { "content-type": "text/plain" }).end("collecting metrics failed\n");
      },
    );
    return;
  }
  if (req.url === "/ready") {
    const ready = ca.ready;
    res.writeHead(ready ? 200 : 503, { "content-type": "text/plain" });
    res.end(ready ? "ready\n" : "CA root not loaded\n");
    return;
  }
  if (req.url === "/debug/status") {
    // The dump names every agent address and every policy in every namespace: any pod can reach :15014, so only
    // the controller's own netns (kubectl port-forward, kubectl exec) may read it.
    if (!isLoopback(req.socket.remoteAddress)) {
      res.writeHead(403, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          code: "AMBIT_E_DEBUG_LOCAL_ONLY",
          message: "/debug/status answers only on localhost: use `kubectl port-forward` to the controller pod and ask http://127.0.0.1:15014/debug/status",
        }) + "\n",
      );
      return;
    }
    const root = new X509Certificate(ca.trustBundle()[0]!);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify(
        {
          identity,
          leader: elector.leader(),
          isLeader: elector.isLeader(),
          ca: { source: ca.source, roots: ca.trustBundle().length, rootNotAfter: root.validTo },
          agents: stream.status(),
          policies: [...compiled.values()].map((c) => ({
            key: `${c.object.metadata.namespace}/${c.object.metadata.name}`,
            kind: c.object.kind,
            condition: c.condition,
          })),
        },
        null,
        2,
      ),
    );
    return;
  }
  res.writeHead(404).end();
});
await new Promise<void>((resolve) => monitoring.listen(config.ports.monitoring, "0.0.0.0", resolve));
log.info({ ca: caAddress.port, configStream: streamAddress.port, monitoring: config.ports.monitoring, caSource: ca.source }, "controller started");

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "controller stopping; agents keep their configuration and reconnect to the other replica");
  await elector.stop();
  await Promise.allSettled([stream.close(), csrServer.close(), informers.stop()]);
  monitoring.close();
  client.close();
  process.exit(0);
};
/** A step of shutdown that fails leaves the controller half stopped (and deaf to further signals): log it and exit. */
const shutdownFailed = (err: unknown) => {
  log.fatal({ err: String(err) }, "shutdown failed");
  process.exit(1);
};
process.on("SIGTERM", () => void shutdown("SIGTERM").catch(shutdownFailed));
process.on("SIGINT", () => void shutdown("SIGINT").catch(shutdownFailed));
