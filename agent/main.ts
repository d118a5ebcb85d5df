// The node agent program: wires enrollment, in-pod capture, HBONE, certificates, metrics and the admin API.
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { run } from "../host/exec.ts";
import { KubeClient, pathFor } from "../kube/client.ts";
import { ownerDaemonSetStays } from "../kube/owner.ts";
import { inClusterConfig } from "../kube/credentials.ts";
import { startCniEventServer } from "../cni/index.ts";
import { releaseUnusedMemory, startAdminServers } from "./admin/index.ts";
import { PORTS, loadAgentConfig } from "./config.ts";
import { Dataplane } from "./dataplane/index.ts";
import { EnrollmentController, type CaptureDriver, type PodRef } from "./enrollment/index.ts";
import { CertificateManager, ControllerCaClient, describeChain } from "./identity/index.ts";
import { PolicyStore } from "./authorization/index.ts";
import { ConfigStreamClient, meshConfigFromView } from "./config-client/index.ts";
import { InPodCaptureDriver, PodNetnsFinder } from "./inpod/index.ts";
import { IdleMemoryReleaser, awaitSuccessor, retryUntil, stopOnSignals } from "./lifecycle/index.ts";
import { captureState } from "./capture/index.ts";
import { createLogger } from "./logging/index.ts";
import { AgentMetrics } from "./metrics/index.ts";
import { WorkloadIndex } from "./state/index.ts";

const config = loadAgentConfig();
/** Instance id in STATUS answers on the CNI socket: how an agent told to stop recognises its successor. */
const instanceId = randomUUID();

// Two descriptors per proxied connection: use the whole hard limit the runtime grants (ztunnel does the same).
await raiseOpenFileLimit();
const log = createLogger({ level: config.logLevel, base: { component: "agent", node: config.nodeName } });
const kc = inClusterConfig();
const client = new KubeClient(kc);
const metrics = new AgentMetrics();

const node = await client.get(pathFor("v1", "nodes", undefined, config.nodeName));
const nodeIp = (node.status?.addresses ?? []).find((a: { type: string }) => a.type === "InternalIP")?.address as string;
// Kubelet probes reach pods from the node's address, or from the pod-facing gateway (first IP of the pod CIDR).
const podCidr = String(node.spec?.podCIDR ?? "");
const gateway = podCidr ? podCidr.replace(/\.0\/\d+$/, ".1") : undefined;
const probeSourceIps = [nodeIp, ...(gateway ? [gateway] : [])].filter(Boolean);

// Trust: the roots the controller publishes, then whatever bundle the config stream carries (root rotation).
let trustBundlePem = await waitForTrustBundle();
const caClient = new ControllerCaClient({
  host: config.controllerAddress,
  port: config.caPort,
  serverName: config.controllerAddress,
  trustBundlePem: () => trustBundlePem,
  tokenFile: config.caTokenFile,
});
const certificates = new CertificateManager(caClient, log, (certs) => {
  // Whole set each time, so a dropped identity's expiry series goes too.
  metrics.certificateExpiry.reset();
  for (const c of certs) metrics.certificateExpiry.set({ identity: c.identity }, c.notAfter.getTime() / 1000);
});
// The agent's own identity authenticates it to the config stream (with its node-bound token).
const agentIdentity = { trustDomain: config.trustDomain, namespace: config.systemNamespace, serviceAccount: config.serviceAccount };
await retryUntil(log, "the agent's own certificate from the controller's CA", () => certificates.ensure(agentIdentity));

const index = new WorkloadIndex();
const policy = new PolicyStore({ rootNamespace: config.systemNamespace });
let configApplied = false;
let firstConfigApplied: () => void = () => {};
const firstConfig = new Promise<void>((resolve) => (firstConfigApplied = resolve));
const configClient = new ConfigStreamClient({
  url: `https://${config.controllerAddress}:${config.configStreamPort}`,
  ca: () => trustBundlePem,
  credentials: () => certificates.credentialsFor(agentIdentity),
  token: async () => (await fs.readFile(config.caTokenFile, "utf8")).trim(),
  node: config.nodeName,
  log,
  registry: metrics.registry,
  // A version applies whole or not at all: any malformed record rejects it (nack) and the previous one stays.
  onUpdate: (view) => {
    const mesh = meshConfigFromView(view);
    policy.replace(mesh.authorizations, mesh.peerAuthentications);
    index.replace(mesh.workloads, mesh.services);
    index.setPodNetwork(mesh.network.podCidrs);
    trustBundlePem = mesh.trustBundle.rootsPem.join("");
    configApplied = true;
    firstConfigApplied();
    // Live connections the new policy denies are closed now, not when they end.
    dataplane.revalidate();
  },
});

const dataplane = new Dataplane({
  nodeName: config.nodeName,
  index,
  trustDomain: config.trustDomain,
  trustBundlePem: () => trustBundlePem,
  policy,
  credentialsFor: (id) => certificates.credentialsFor(id),
  localPodNetns: (ip) => enrollment.netnsOf(ip),
  localWorkload: (ip) => enrollment.localWorkload(ip),
  metrics,
  log,
  hboneMaxStreamsPerConnection: config.hboneMaxStreamsPerConnection,
  hboneIdleTimeoutMs: config.hboneIdleTimeoutMs,
});
const inpod = new InPodCaptureDriver({ handlers: dataplane, probeSourceIps, log });
// A pod is captured only once this agent holds its identity's certificate.
const driver: CaptureDriver = {
  capture: async (pod: PodRef) => {
    await certificates.acquire({ trustDomain: config.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccount }, pod.uid);
    try {
      await inpod.capture(pod);
    } catch (err) {
      if (!inpod.has(pod.uid)) certificates.release(pod.uid);
      throw err;
    }
    metrics.podsCaptured.set(inpod.capturedPods);
  },
  release: async (pod: PodRef) => {
    await inpod.release(pod);
    certificates.release(pod.uid);
    metrics.podsCaptured.set(inpod.capturedPods);
  },
  inspect: (pod: PodRef) => inpod.inspect(pod),
};
const netnsFinder = new PodNetnsFinder({ netnsDir: config.netnsDir, procDir: config.procDir, log });
const enrollment = new EnrollmentController({
  client,
  nodeName: config.nodeName,
  driver,
  // Pods that ran before the agent (no CNI ADD reaches it for them): found by IP among the node's namespaces.
  resolveNetns: (_pod, ips) => netnsFinder.find(ips),
  verifyIntervalMs: config.verifyIntervalMs,
  onVerified: ({ repaired }) => metrics.captureRepairs.inc(repaired),
  log,
});
configClient.start();
// No pod is captured before the first config is applied: a captured connection would otherwise meet an empty
// workload index and policy store (destinations unknown, so refused). During a surge restart the old agent keeps
// serving meanwhile; at a cold start enrolled pods wait, as their CNI ADD cannot reach this agent yet.
log.info("waiting for the first configuration from the controller");
await firstConfig;
await enrollment.start();

const cni = await startCniEventServer(config.cniSocket, async (req) => {
  if (req.command === "STATUS") return { ok: true, agent: { instance: instanceId, ready: readiness().ready } };
  if (req.command === "GC") {
    await enrollment.garbageCollect(req.validAttachments);
    enrollment.scheduleVerify();
    return { ok: true };
  }
  if (req.command === "DEL") {
    // Always ok: a runtime retries a failed DEL forever. Whether anything was released is the agent's decision.
    const outcome = await enrollment.cniDeleted({ namespace: req.podNamespace, name: req.podName, uid: req.podUid, containerId: req.containerId });
    metrics.cniDeletes.inc({ outcome });
    enrollment.scheduleVerify();
    return { ok: true };
  }
  if (req.command === "CHECK")
    return enrollment.podCheck({ namespace: req.podNamespace, name: req.podName }, async (netns) => (await captureState(netns)) === "captured");
  const intent = await enrollment.podAdded({
    namespace: req.podNamespace,
    name: req.podName,
    uid: req.podUid,
    netnsPath: req.netns,
    ips: req.ips,
    containerId: req.containerId,
  });
  enrollment.scheduleVerify();
  return { ok: true, captured: intent.capture };
});

const admin = await startAdminServers(
  {
    metrics,
    // Ready only once every pod present at start-up is captured or released: a DaemonSet rollout with maxSurge
    // replaces the previous agent only then, so its pods never lack a listener.
    readiness: () => readiness(),
    configDump: () => ({
      node: config.nodeName,
      // What `ambit explain` needs to evaluate this dump as the agent does: identities' trust domain, policies' root namespace.
      trustDomain: config.trustDomain,
      rootNamespace: config.systemNamespace,
      controller: configClient.staleness(),
      workloads: index.workloads,
      services: index.services.map((s) => ({ ...s, ports: Object.fromEntries(s.ports), appProtocols: Object.fromEntries(s.appProtocols) })),
      policies: policy.dump(),
      trustBundle: { roots: trustBundlePem.match(/BEGIN CERTIFICATE/g)?.length ?? 0, certificates: describeChain(trustBundlePem) },
      enrollment: enrollment.snapshot(),
      certificates: certificates.summary(),
      tunnels: { ...dataplane.stats(), connections: dataplane.tunnels() },
    }),
    tunnels: () => ({ node: config.nodeName, connections: dataplane.tunnels() }),
    log,
  },
  { admin: PORTS.admin, metrics: PORTS.metrics, readiness: PORTS.readiness, host: nodeIp },
);
log.info({ nodeIp, probeSourceIps }, "agent started");
const readyFile = config.readyFile;
const readyMarker = readyFile
  ? setInterval(
      () =>
        void markReady(readyFile).catch((err: unknown) =>
          log.error({ err: String(err), readyFile }, "cannot write the ready file; the previous agent will not see this one ready"),
        ),
      250,
    )
  : undefined;
/** Ready once the controller's config is applied and every pod present at start-up is captured or released. */
function readiness(): { ready: true } | { ready: false; reason: string } {
  if (!configApplied) return { ready: false, reason: "no configuration from the controller yet" };
  if (!enrollment.synced) return { ready: false, reason: "start-up reconciliation of this node's pods is not finished" };
  return { ready: true };
}
async function markReady(file: string): Promise<void> {
  if (!readiness().ready) return;
  clearInterval(readyMarker);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `${process.pid}\n`);
  // From process start, module loading included: what a node with many pods waits after an agent restart.
  log.info({ capturedPods: inpod.capturedPods, startupMs: Math.round(process.uptime() * 1000) }, "agent ready");
  setTimeout(releaseStartupMemory, RELEASE_AFTER_READY_MS).unref();
}
/**
 * Start-up (compiling the bundle, the first lists and config snapshot, certificates, capturing the node's pods)
 * leaves garbage in V8's heap and freed C heap that the process keeps mapped, and an idle agent allocates too
 * little for either to be collected: one full collection and C heap trim once ready took the idle agent from
 * about 78 to 67 MiB of RSS (sandbox, two nodes). One pause of tens of milliseconds, once.
 */
const RELEASE_AFTER_READY_MS = 5_000;
function releaseStartupMemory(): void {
  const memory = new IdleMemoryReleaser({
    release: releaseUnusedMemory,
    onRelease: (beforeBytes, afterBytes, reason) =>
      log.info(
        { rssKiB: Math.round(afterBytes / 1024), releasedKiB: Math.round((beforeBytes - afterBytes) / 1024) },
        reason === "idle" ? "released memory after a burst" : "released start-up memory",
      ),
  });
  memory.releaseNow();
  // From here on, the same after each burst, once the agent is idle again.
  memory.start();
}

/** False when this agent's DaemonSet is gone or being deleted: then no successor will come to hand over to. */
const ownDaemonSetStays = async (): Promise<boolean> => (config.podName ? ownerDaemonSetStays(client, config.systemNamespace, config.podName) : true);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "agent stopping; capture rules stay so traffic waits for the next agent");
  clearInterval(readyMarker);
  if (readyFile) await fs.rm(readyFile, { force: true });
  // Still serving (listeners, capture, CNI) until the next agent on this node has opened its own listeners.
  const handover = await awaitSuccessor({
    socketPath: config.cniSocket,
    self: instanceId,
    timeoutMs: config.handoverWaitMs,
    successorExpected: ownDaemonSetStays,
    log,
  });
  log.info(
    { handover },
    handover === "successor-ready"
      ? "the next agent is ready; handing the node over"
      : handover === "no-successor"
        ? "no agent will follow (its DaemonSet is gone); stopping"
        : "no successor became ready in time; stopping anyway",
  );
  // Closing the pod listeners first hands new connections (and those queued in accept backlogs) to the next
  // agent's listeners in the same SO_REUSEPORT groups; then in-flight connections drain up to the deadline.
  inpod.closeListeners();
  await cni.close();
  await enrollment.stop();
  await configClient.close();
  const active = dataplane.activeConnections;
  const left = await dataplane.drain(config.drainDeadlineMs);
  log.info({ drained: active - left, cutAtDeadline: left, deadlineMs: config.drainDeadlineMs }, "connections drained");
  await admin.close();
  dataplane.close();
  certificates.stop();
  client.close();
  process.exit(0);
};
stopOnSignals(log, shutdown);

/** Reads the trust bundle the controller publishes; waits for it (the controller may start after the agents). */
async function waitForTrustBundle(): Promise<string> {
  let pem = "";
  await retryUntil(log, "the trust bundle (configmap ambit-ca-root)", async () => {
    const cm = await client.get(pathFor("v1", "configmaps", config.systemNamespace, "ambit-ca-root"));
    pem = (cm.data as Record<string, string> | undefined)?.["root-cert.pem"] ?? "";
    if (!pem.includes("BEGIN CERTIFICATE")) throw new Error("configmap ambit-ca-root has no root-cert.pem yet");
  });
  return pem;
}

async function raiseOpenFileLimit(): Promise<void> {
  const limits = await fs.readFile("/proc/self/limits", "utf8");
  const [, soft, hard] = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(limits) ?? [];
  if (!soft || !hard || soft === hard) return;
  await run("prlimit", ["--pid", String(process.pid), `--nofile=${hard}:${hard}`]).catch((err: Error) =>
    console.error(JSON.stringify({ level: 40, msg: "could not raise the open-file limit", soft, hard, err: err.message })),
  );
}
