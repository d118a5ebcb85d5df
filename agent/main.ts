// The node agent program: wires enrollment, in-pod capture, HBONE, certificates, metrics and the admin API.
import fs from "node:fs/promises";
import path from "node:path";
import pino from "pino";
import { execa } from "execa";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient, pathFor } from "../kube/client.ts";
import { SharedInformers } from "../kube/informers.ts";
import { startCniEventServer } from "../cni/index.ts";
import { startAdminServers } from "./admin/index.ts";
import { PORTS, loadAgentConfig } from "./config.ts";
import { Dataplane } from "./dataplane/index.ts";
import { EnrollmentController, type CaptureDriver, type PodRef } from "./enrollment/index.ts";
import { CertificateManager } from "./identity/certificates.ts";
import { LocalCa } from "./identity/local-ca.ts";
import { InPodCaptureDriver } from "./inpod/index.ts";
import { captureState } from "./capture/index.ts";
import { AgentMetrics } from "./metrics/index.ts";
import { WorkloadIndex } from "./state/index.ts";

const config = loadAgentConfig();

// Two descriptors per proxied connection: use the whole hard limit the runtime grants (ztunnel does the same).
await raiseOpenFileLimit();
const log = pino({ level: config.logLevel, base: { component: "agent", node: config.nodeName } });
const kc = new KubeConfig();
kc.loadFromCluster();
const client = new KubeClient(kc);
const metrics = new AgentMetrics();

const node = await client.get(pathFor("v1", "nodes", undefined, config.nodeName));
const nodeIp = (node.status?.addresses ?? []).find((a: { type: string }) => a.type === "InternalIP")?.address as string;
// Kubelet probes reach pods from the node's address, or from the pod-facing gateway (first IP of the pod CIDR).
const podCidr = String(node.spec?.podCIDR ?? "");
const gateway = podCidr ? podCidr.replace(/\.0\/\d+$/, ".1") : undefined;
const probeSourceIps = [nodeIp, ...(gateway ? [gateway] : [])].filter(Boolean);

const ca = await LocalCa.loadOrCreate(client);
const certificates = new CertificateManager(ca, log, (certs) => {
  for (const c of certs) metrics.certificateExpiry.set({ identity: c.identity }, c.notAfter.getTime() / 1000);
});

const index = new WorkloadIndex();
const cluster = new SharedInformers(client, ["pods", "services", "endpointslices"], (resource, err) => log.warn({ resource, err: String(err) }, "watch failed; restarting"));
let rebuildTimer: NodeJS.Timeout | undefined;
const rebuild = () => {
  clearTimeout(rebuildTimer);
  rebuildTimer = setTimeout(() => index.rebuild(cluster.list("pods"), cluster.list("services"), cluster.list("endpointslices")), 20);
};
for (const r of ["pods", "services", "endpointslices"] as const) cluster.on(r, rebuild);
await cluster.start();
index.rebuild(cluster.list("pods"), cluster.list("services"), cluster.list("endpointslices"));

const dataplane = new Dataplane({
  nodeName: config.nodeName,
  index,
  trustDomain: config.trustDomain,
  trustBundlePem: ca.rootPem,
  credentialsFor: (id) => certificates.credentialsFor(id),
  localPodNetns: (ip) => enrollment.snapshot().find((p) => p.ips.includes(ip))?.netnsPath,
  metrics,
  log,
  hboneMaxStreamsPerConnection: config.hboneMaxStreamsPerConnection,
  hboneIdleTimeoutMs: config.hboneIdleTimeoutMs,
});
const inpod = new InPodCaptureDriver({ handlers: dataplane, probeSourceIps, log });
// A pod is captured only once this agent holds its identity's certificate.
const driver: CaptureDriver = {
  capture: async (pod: PodRef) => {
    const p = cluster.get("pods", pod.name, pod.namespace);
    await certificates.ensure({ trustDomain: config.trustDomain, namespace: pod.namespace, serviceAccount: p?.spec?.serviceAccountName ?? "default" });
    await inpod.capture(pod);
    metrics.podsCaptured.set(inpod.capturedPods);
  },
  release: async (pod: PodRef) => {
    await inpod.release(pod);
    metrics.podsCaptured.set(inpod.capturedPods);
  },
};
const enrollment = new EnrollmentController({
  client,
  nodeName: config.nodeName,
  driver,
  // Pods that ran before the agent: the sandbox kubelet records the netns name; a real node relies on CNI events.
  resolveNetns: async (pod) => {
    const name = pod.metadata.annotations?.["sandbox.ambit.dev/netns"];
    return name ? `${config.netnsDir}/${name}` : undefined;
  },
  log,
});
await enrollment.start();

const cni = await startCniEventServer(config.cniSocket, async (req) => {
  if (req.command === "STATUS") return { ok: true };
  if (req.command === "GC") {
    await enrollment.garbageCollect(req.validAttachments);
    return { ok: true };
  }
  if (req.command === "DEL") {
    await enrollment.podDeleted({ namespace: req.podNamespace, name: req.podName });
    return { ok: true };
  }
  if (req.command === "CHECK") return enrollment.podCheck({ namespace: req.podNamespace, name: req.podName }, async (netns) => (await captureState(netns)) === "captured");
  const intent = await enrollment.podAdded({ namespace: req.podNamespace, name: req.podName, uid: req.podUid, netnsPath: req.netns, ips: req.ips, containerId: req.containerId });
  return { ok: true, captured: intent.capture };
});

const admin = await startAdminServers(
  {
    metrics,
    // Ready only once every pod present at start-up is captured or released: a DaemonSet rollout with maxSurge
    // replaces the previous agent only then, so its pods never lack a listener.
    readiness: () => (enrollment.synced ? { ready: true } : { ready: false, reason: "start-up reconciliation of this node's pods is not finished" }),
    configDump: () => ({ node: config.nodeName, workloads: index.workloads, services: index.services.map((s) => ({ ...s, ports: Object.fromEntries(s.ports) })), enrollment: enrollment.snapshot(), certificates: certificates.summary(), tunnels: dataplane.stats() }),
    log,
  },
  { admin: PORTS.admin, metrics: PORTS.metrics, readiness: PORTS.readiness, host: nodeIp },
);
log.info({ nodeIp, probeSourceIps }, "agent started");
const readyFile = config.readyFile;
const readyMarker = readyFile ? setInterval(() => void markReady(readyFile), 250) : undefined;
async function markReady(file: string): Promise<void> {
  if (!enrollment.synced) return;
  clearInterval(readyMarker);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `${process.pid}\n`);
  log.info({ capturedPods: inpod.capturedPods }, "agent ready");
}

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "agent stopping; capture rules stay so traffic waits for the next agent");
  clearInterval(readyMarker);
  if (readyFile) await fs.rm(readyFile, { force: true });
  // Closing the pod listeners first hands new connections (and those queued in accept backlogs) to the next
  // agent's listeners in the same SO_REUSEPORT groups; then in-flight connections drain up to the deadline.
  inpod.closeListeners();
  await cni.close();
  await enrollment.stop();
  await cluster.stop();
  const active = dataplane.activeConnections;
  const left = await dataplane.drain(config.drainDeadlineMs);
  log.info({ drained: active - left, cutAtDeadline: left, deadlineMs: config.drainDeadlineMs }, "connections drained");
  await admin.close();
  dataplane.close();
  certificates.stop();
  client.close();
  process.exit(0);
};
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

async function raiseOpenFileLimit(): Promise<void> {
  const limits = await fs.readFile("/proc/self/limits", "utf8");
  const [, soft, hard] = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(limits) ?? [];
  if (!soft || !hard || soft === hard) return;
  await execa("prlimit", ["--pid", String(process.pid), `--nofile=${hard}:${hard}`]).catch((err: Error) =>
    console.error(JSON.stringify({ level: 40, msg: "could not raise the open-file limit", soft, hard, err: err.message })),
  );
}
