// The waypoint program: its identity from the controller's CA, its config stream (services, routes, L7 policy), the HBONE listener on 15008, metrics and readiness.
import fs from "node:fs/promises";
import net from "node:net";
import { startAdminServers } from "../agent/admin/index.ts";
import { L7PolicyStore } from "../agent/authorization/index.ts";
import { ConfigStreamClient } from "../agent/config-client/index.ts";
import { HboneConnectionPool } from "../agent/hbone/index.ts";
import { PodIdentity, type SpiffeId, formatSpiffeId } from "../agent/identity/index.ts";
import { stopOnSignals } from "../agent/lifecycle/index.ts";
import { createLogger } from "../agent/logging/index.ts";
import { WorkloadIndex } from "../agent/state/index.ts";
import { waypointKey } from "../contract/waypoint.ts";
import { loadWaypointConfig } from "./config.ts";
import { waypointConfigFromView } from "./config-view.ts";
import { WaypointMetrics, WaypointProxy } from "./proxy/index.ts";
import { ResiliencePolicies } from "./resilience/index.ts";
import { RoutingTable } from "./routing/index.ts";

const config = loadWaypointConfig();
const me = waypointKey(config.waypoint);
const log = createLogger({ level: config.logLevel, base: { component: "waypoint", waypoint: me, pod: config.podName } });
const identity: SpiffeId = { trustDomain: config.trustDomain, namespace: config.waypoint.namespace, serviceAccount: config.serviceAccount };
// Request metrics, process metrics and the config stream's, on one registry served at :15020/metrics.
const metrics = new WaypointMetrics();
const registry = metrics.registry;

// Made once the first config arrives; certificate renewals before then have nothing to update.
let proxy: WaypointProxy | undefined = undefined;
// The Gateway's identity: its roots from the ConfigMap the controller makes, its certificate with its pod's token.
const pod = await PodIdentity.start({
  identity,
  trustRootsFile: config.trustRootsFile,
  controllerAddress: config.controllerAddress,
  caPort: config.caPort,
  caTokenFile: config.caTokenFile,
  log,
  onChange: () => proxy?.updateCredentials(pod.credentials(), pod.trustBundlePem),
});
const { certificates } = pod;

const index = new WorkloadIndex();
const policies = new L7PolicyStore();
let routes = new RoutingTable([]);
// One instance for the program's life: update() keeps breaker counts and ejections of policies that stay.
const resilience = new ResiliencePolicies([]);
let configApplied = false;
let firstConfigApplied: () => void = () => {};
const firstConfig = new Promise<void>((resolve) => (firstConfigApplied = resolve));
const configClient = new ConfigStreamClient({
  url: `https://${config.controllerAddress}:${config.configStreamPort}`,
  ca: () => pod.trustBundlePem,
  credentials: () => pod.credentials(),
  token: async () => (await fs.readFile(config.caTokenFile, "utf8")).trim(),
  // The controller answers a waypoint's hello with that waypoint's view.
  node: me,
  log,
  registry,
  // Whole or not at all: everything is built and checked before anything is replaced, so a nack leaves the previous version.
  onUpdate: (view) => {
    const parsed = waypointConfigFromView(view);
    const table = new RoutingTable(parsed.routes);
    policies.replace(parsed.l7Authorizations);
    index.replace(parsed.workloads, parsed.services);
    index.setPodNetwork(parsed.network.podCidrs);
    resilience.update(parsed.trafficPolicies);
    routes = table;
    proxy?.setRoutes(table);
    pod.setTrustBundle(parsed.trustBundle.rootsPem.join(""));
    configApplied = true;
    firstConfigApplied();
  },
});
configClient.start();
log.info("waiting for the first configuration from the controller");
await firstConfig;

const upstream = new HboneConnectionPool({
  getClientCredentials: () => pod.credentials(),
  trustBundlePem: () => pod.trustBundlePem,
});
proxy = new WaypointProxy({
  credentials: pod.credentials(),
  trustBundlePem: pod.trustBundlePem,
  waypoint: config.waypoint,
  identity,
  index,
  routes,
  policies,
  hbone: upstream,
  metrics,
  resilience,
  log,
});
const hboneProxy = proxy;
const listener = net.createServer((socket) => hboneProxy.acceptConnection(socket));
await new Promise<void>((resolve, reject) => {
  listener.once("error", reject);
  listener.listen(config.ports.hbone, () => resolve());
});
let stopping = false;

const admin = await startAdminServers(
  {
    metrics: { text: () => registry.metrics(), contentType: registry.contentType },
    readiness: () => {
      if (stopping) return { ready: false, reason: "stopping" };
      if (!configApplied) return { ready: false, reason: "no configuration from the controller yet" };
      return { ready: true };
    },
    configDump: () => ({
      waypoint: me,
      identity: formatSpiffeId(identity),
      controller: configClient.staleness(),
      services: index.services.filter((s) => s.waypoint && waypointKey(s.waypoint) === me).map((s) => `${s.namespace}/${s.name}`),
      l7Policies: policies.dump(),
      certificates: certificates.summary(),
      connections: hboneProxy.connections,
    }),
    tunnels: () => ({ waypoint: me, connections: hboneProxy.connections }),
    log,
  },
  // Metrics and readiness on every address of the pod (Prometheus and the kubelet), the admin API on localhost only.
  { admin: config.ports.admin, metrics: config.ports.metrics, readiness: config.ports.readiness, host: "0.0.0.0" },
);
log.info({ identity: formatSpiffeId(identity), hbonePort: config.ports.hbone }, "waypoint started");

const shutdown = async (signal: string) => {
  if (stopping) return;
  // Unready first: the Service's endpoints drop this pod, so agents send new connections to the other replicas.
  stopping = true;
  log.info({ signal, connections: hboneProxy.connections }, "waypoint stopping; draining client connections");
  listener.close();
  const cut = await hboneProxy.drain(config.drainDeadlineMs);
  log.info({ cutAtDeadline: cut, deadlineMs: config.drainDeadlineMs }, "connections drained");
  await configClient.close();
  upstream.close();
  await admin.close();
  certificates.stop();
  process.exit(0);
};
stopOnSignals(log, shutdown);
