// The sidecar program: `init` installs its pod's capture rules; `proxy` (the default) is the pod's own proxy at both ends (identity, config stream, L7, HBONE).
import fs from "node:fs/promises";
import net from "node:net";
import { startAdminServers } from "../agent/admin/index.ts";
import { L7PolicyStore, PolicyStore } from "../agent/authorization/index.ts";
import { ConfigStreamClient } from "../agent/config-client/index.ts";
import { HboneConnectionPool } from "../agent/hbone/index.ts";
import { PodIdentity, type SpiffeId, formatSpiffeId } from "../agent/identity/index.ts";
import { stopOnSignals } from "../agent/lifecycle/index.ts";
import { createLogger } from "../agent/logging/index.ts";
import { originalDst, socketFd } from "../agent/native/index.ts";
import { relay } from "../agent/relay/index.ts";
import { type Workload, WorkloadIndex, resolveDestination } from "../agent/state/index.ts";
import { decideInbound } from "../agent/dataplane/index.ts";
import { WAYPOINT_LISTENER, waypointIdentity, waypointKey } from "../contract/waypoint.ts";
import { waypointConfigFromView } from "../waypoint/config-view.ts";
import { HBONE_PORT, WaypointMetrics, WaypointProxy } from "../waypoint/proxy/index.ts";
import { ResiliencePolicies } from "../waypoint/resilience/index.ts";
import { RoutingTable } from "../waypoint/routing/index.ts";
import { installSidecarCapture } from "./capture.ts";
import { loadSidecarConfig, loadSidecarInitConfig } from "./config.ts";
import { clientRole, connectPlain, isSidecarPort, serverRole } from "./roles.ts";

if (process.argv[2] === "init") {
  // The init container: install the rules and exit; a failure fails the pod's start (the runtime retries it).
  const rules = await installSidecarCapture(loadSidecarInitConfig());
  process.stdout.write(`ambit-init: capture rules installed\n${rules}`);
  process.exit(0);
}

const config = loadSidecarConfig();
const podKey = `${config.pod.namespace}/${config.pod.name}`;
const log = createLogger({ level: config.logLevel, base: { component: "sidecar", pod: podKey } });
const identity: SpiffeId = { trustDomain: config.trustDomain, namespace: config.pod.namespace, serviceAccount: config.serviceAccount };
const metrics = new WaypointMetrics("ambit_sidecar_");
const registry = metrics.registry;

const proxies: WaypointProxy[] = [];
/** The server end, once the first config has arrived (policy changes before then have no stream to re-check). */
let server: WaypointProxy | undefined = undefined;
// The pod's identity: the roots its namespace's ambit-ca-root holds, its certificate with its pod-bound token.
const pod = await PodIdentity.start({
  identity,
  trustRootsFile: config.trustRootsFile,
  controllerAddress: config.controllerAddress,
  caPort: config.caPort,
  caTokenFile: config.caTokenFile,
  log,
  onChange: () => {
    for (const p of proxies) p.updateCredentials(pod.credentials(), pod.trustBundlePem);
  },
});
const { certificates } = pod;

const index = new WorkloadIndex();
const policy = new PolicyStore({ rootNamespace: config.rootNamespace });
// No L7 policy is enforced per request by a sidecar (selector policies are L4, checked per connection); the engine asks for a store.
const noL7Policies = new L7PolicyStore();
let routes = new RoutingTable([]);
const resilience = new ResiliencePolicies([]);
let configApplied = false;
let firstConfigApplied: () => void = () => {};
const firstConfig = new Promise<void>((resolve) => (firstConfigApplied = resolve));
const configClient = new ConfigStreamClient({
  url: `https://${config.controllerAddress}:${config.configStreamPort}`,
  ca: () => pod.trustBundlePem,
  credentials: () => pod.credentials(),
  token: async () => (await fs.readFile(config.caTokenFile, "utf8")).trim(),
  // The controller answers a sidecar's hello with its pod's view.
  node: podKey,
  log,
  registry,
  // Whole or not at all: everything is built and checked before anything is replaced, so a nack leaves the previous version.
  onUpdate: (view) => {
    const parsed = waypointConfigFromView(view);
    const table = new RoutingTable(parsed.routes);
    policy.replace(parsed.authorizations, parsed.peerAuthentications);
    index.replace(parsed.workloads, parsed.services);
    // Streams open before this version are admitted again: one its policies now refuse is closed, as the agent does.
    const closed = server?.recheckStreams() ?? 0;
    if (closed > 0) log.info({ closed }, "closed connections the new policy denies");
    index.setPodNetwork(parsed.network.podCidrs);
    resilience.update(parsed.trafficPolicies);
    routes = table;
    for (const p of proxies) p.setRoutes(table);
    pod.setTrustBundle(parsed.trustBundle.rootsPem.join(""));
    configApplied = true;
    firstConfigApplied();
  },
});
configClient.start();
log.info("waiting for the first configuration from the controller");
await firstConfig;

/** This pod as the controller describes it; before its record arrives, as the sidecar knows it (no labels: no selector matches). */
const me = (): Workload =>
  index.workloadByIp(config.podIp) ?? {
    uid: "",
    namespace: config.pod.namespace,
    name: config.pod.name,
    workloadName: config.pod.name,
    serviceAccount: config.serviceAccount,
    node: "",
    ip: config.podIp,
    captured: true,
    labels: {},
  };

const hbone = new HboneConnectionPool({
  getClientCredentials: () => pod.credentials(),
  trustBundlePem: () => pod.trustBundlePem,
});
const common = {
  credentials: pod.credentials(),
  trustBundlePem: pod.trustBundlePem,
  identity,
  index,
  routes,
  policies: noL7Policies,
  hbone,
  metrics,
  resilience,
  log,
};
// `waypoint` names the engine's owner in its logs; a sidecar is bound to no waypoint.
const owner = { namespace: config.pod.namespace, name: `sidecar:${config.pod.name}` };
const client = new WaypointProxy({ ...common, waypoint: owner, role: clientRole({ index, me: identity, hbone }) });
const serverProxy = new WaypointProxy({ ...common, waypoint: owner, role: serverRole({ me, podIp: config.podIp, identity, policy }) });
server = serverProxy;
proxies.push(client, serverProxy);

/** What the app dialled, before REDIRECT sent it here; undefined (and the socket reset) when the kernel has no record. */
function dialled(socket: net.Socket): { ip: string; port: number } | undefined {
  try {
    const dst = originalDst(socketFd(socket));
    return { ip: dst.address, port: dst.port };
  } catch (err) {
    log.warn({ err: (err as Error).message }, "connection without an original destination: reset");
    socket.resetAndDestroy();
    return undefined;
  }
}

/** The sidecar's own listeners, which the pod reaches on loopback or its own address, never through the mesh. */
const isOwnListener = (t: { ip: string; port: number }) => isSidecarPort(t.port) && (t.ip.startsWith("127.") || t.ip === config.podIp);

const plainRelay = (from: net.Socket, to: net.Socket, line: Record<string, unknown>) =>
  relay(from, to, (counts) => log.info({ ...line, bytesSent: counts.aToB, bytesReceived: counts.bToA }, "connection"));

// Both listeners keep a socket half open (allowHalfOpen): a client that ends its side (a request written whole) still
// gets the answer, which an auto-closed socket would cut off; the relay and HBONE carry the half-close through.
/** The app's outbound connections (15001): the mesh at L7 through the client role, a waypoint at L4, the rest straight out. */
const outbound = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
  socket.on("error", () => {});
  const target = dialled(socket);
  if (!target) return;
  const line = { direction: "outbound", destination: `${target.ip}:${target.port}` };
  // The pod dialling the sidecar's own listeners (loopback or its own address is not redirected): passing that on
  // would reach this very listener again, without end.
  if (isOwnListener(target)) {
    log.info({ ...line, code: "AMBIT_E_SELF_CONNECT" }, "connection refused: it was made to the sidecar's own listener");
    return socket.resetAndDestroy();
  }
  const dst = resolveDestination(index, target.ip, target.port);
  if (dst.kind === "waypoint") {
    // The destination asked for its waypoint's L7 policy: carried there unread, as an ambient agent does; no ready pod fails closed.
    const ready = (index.serviceByName(dst.waypoint.namespace, dst.waypoint.name)?.ports.get(WAYPOINT_LISTENER.port) ?? []).filter((e) => e.ready);
    const pick = ready[Math.floor(Math.random() * ready.length)];
    if (!pick) {
      log.info({ ...line, waypoint: waypointKey(dst.waypoint), code: "AMBIT_E_NO_WAYPOINT" }, "connection refused: its waypoint has no ready pod");
      return socket.resetAndDestroy();
    }
    hbone
      .openStream({
        source: identity,
        destination: target,
        dial: { host: pick.ip, port: pick.port },
        expectedIdentity: waypointIdentity(dst.waypoint, config.trustDomain),
      })
      .then(
        (stream) =>
          relay(socket, stream, (c) => log.info({ ...line, waypoint: waypointKey(dst.waypoint), bytesSent: c.aToB, bytesReceived: c.bToA }, "connection")),
        (err: unknown) => {
          log.info({ ...line, waypoint: waypointKey(dst.waypoint), error: (err as Error).message }, "connection failed");
          socket.resetAndDestroy();
        },
      );
    return;
  }
  if (dst.kind === "passthrough" || dst.kind === "no-endpoint") {
    if (dst.kind === "no-endpoint") return socket.resetAndDestroy();
    connectPlain(dst.ip, dst.port).then(
      (upstream) => plainRelay(socket, upstream, { ...line, security: "none" }),
      () => socket.resetAndDestroy(),
    );
    return;
  }
  client.serveStream({ stream: socket, source: identity, sourceAddress: config.podIp, target });
});

/** Plaintext from outside the mesh (15006): the pod's policies decide (STRICT refuses it), then straight to the app at L4. */
const inboundPlain = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
  socket.on("error", () => {});
  const target = dialled(socket);
  if (!target) return;
  const sourceIp = socket.remoteAddress?.replace(/^::ffff:/, "");
  const line = { direction: "inbound", source: sourceIp, destination: `${target.ip}:${target.port}`, security: "none" };
  // A peer dialling the sidecar's capture ports: delivering it would come straight back here (the proxy's own
  // connections are not captured), a loop that ends only when descriptors run out.
  if (isSidecarPort(target.port)) {
    log.info({ ...line, code: "AMBIT_E_SELF_CONNECT" }, "connection refused: it was made to the sidecar's own port");
    return socket.resetAndDestroy();
  }
  const decision = decideInbound(policy, me(), { ...(sourceIp ? { sourceIp } : {}), destinationIp: target.ip, destinationPort: target.port });
  if (!decision.allowed || target.ip !== config.podIp) {
    log.info({ ...line, reason: decision.allowed ? "not addressed to this pod" : decision.reason }, "connection denied");
    return socket.resetAndDestroy();
  }
  connectPlain(config.podIp, target.port).then(
    (app) => plainRelay(socket, app, line),
    () => socket.resetAndDestroy(),
  );
});

/** HBONE from ambient agents, waypoints and other sidecars (15008), served by the server role. */
const hboneListener = net.createServer((socket) => serverProxy.acceptConnection(socket));

const listen = (srv: net.Server, port: number, host = "0.0.0.0") =>
  new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, host, () => resolve());
  });
await listen(outbound, config.ports.outbound);
await listen(inboundPlain, config.ports.inboundPlaintext);
await listen(hboneListener, HBONE_PORT);
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
      sidecar: podKey,
      identity: formatSpiffeId(identity),
      controller: configClient.staleness(),
      workloads: index.workloads.length,
      services: index.services.length,
      policies: policy.dump(),
      certificates: certificates.summary(),
      connections: serverProxy.connections,
    }),
    tunnels: () => ({ sidecar: podKey, connections: serverProxy.connections }),
    log,
  },
  // Metrics and readiness on every address of the pod (Prometheus and the kubelet), the admin API on localhost only.
  { admin: config.ports.admin, metrics: config.ports.metrics, readiness: config.ports.readiness, host: "0.0.0.0" },
);
log.info({ identity: formatSpiffeId(identity), podIp: config.podIp }, "sidecar started");

const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "sidecar stopping; draining connections");
  outbound.close();
  inboundPlain.close();
  hboneListener.close();
  await serverProxy.drain(config.drainDeadlineMs);
  client.close();
  await configClient.close();
  hbone.close();
  await admin.close();
  certificates.stop();
  process.exit(0);
};
stopOnSignals(log, shutdown);
