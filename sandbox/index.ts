// Public surface of the local sandbox: `ambit dev up/down/status/exec/logs/kubeconfig`.
import fs from "node:fs/promises";
import { fork } from "node:child_process";
import path from "node:path";
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { renderChartDir } from "../helm/chart.ts";
import { type SandboxConfig, REPO_ROOT, loadSandboxConfig, sandboxPaths } from "./config.ts";
import { findMissingPrerequisites, PrerequisiteError } from "./prerequisites.ts";
import { isSupervisorAlive, readState } from "./state.ts";
import { listSandboxNetns, teardownAllNetworks } from "./network/index.ts";
import type { KubeClient } from "../kube/client.ts";
import { DATAPLANE_MODE_AMBIENT, DATAPLANE_MODE_LABEL, REDIRECTION_ANNOTATION } from "../contract/capture-intent.ts";
import { AGENT_DAEMONSET, DEFAULT_SYSTEM_NAMESPACE } from "../contract/install.ts";
import { applyObjects, readManifestDir } from "./manifests.ts";
import { releaseSharedMounts } from "./shared-mounts.ts";
import { unmountAllUnder } from "./kubelet/netns-dir.ts";
import type { ProgressMessage } from "./supervisor/progress.ts";
import { SandboxError } from "./errors.ts";
import { execCapture, sandboxClient } from "./pods.ts";
import { NETNS_ANNOTATION } from "./kubelet/launcher.ts";
import type { AmbitErrorCode } from "../contract/error-codes.ts";

export { loadSandboxConfig, PrerequisiteError };
export type { SandboxConfig };

export const DEMO_MANIFESTS = path.join(REPO_ROOT, "demo", "manifests");

export { SandboxError } from "./errors.ts";
export { exec, logs, resolvePod } from "./pods.ts";

export type Output = (line: string) => void;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

async function timed<T>(out: Output, label: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await fn();
  out(`  ✓ ${label} (${seconds(performance.now() - started)})`);
  return result;
}

export interface UpOptions {
  nodes?: number;
  demo?: boolean;
  /** Deploy the Ambit agent and enroll the demo namespace. */
  mesh?: boolean;
  out?: Output;
}

/** The Helm chart, installed as `helm install ambit ./daemonset -n ambit-system --create-namespace` would. */
export const CHART_DIR = path.join(REPO_ROOT, "daemonset");
export const MESH_NAMESPACE = DEFAULT_SYSTEM_NAMESPACE;
/** Gateway API's kinds as the sandbox serves them: installed before the mesh, as on a cluster with waypoints. */
export const GATEWAY_API_DIR = path.join(REPO_ROOT, "sandbox", "gateway-api");
/** The chart's values for the sandbox: image names its kubelet maps to the bundles. */
export const SANDBOX_CHART_VALUES = path.join(REPO_ROOT, "sandbox", "chart-values.yaml");

/** The chart rendered for the sandbox (crds/ first, then the templates' objects). */
export async function renderMeshChart(): Promise<{ crds: KubernetesObject[]; objects: KubernetesObject[] }> {
  const values = (parseYaml(await fs.readFile(SANDBOX_CHART_VALUES, "utf8")) ?? {}) as Record<string, unknown>;
  return renderChartDir(CHART_DIR, { values, release: { name: "ambit", namespace: MESH_NAMESPACE } }) as Promise<{
    crds: KubernetesObject[];
    objects: KubernetesObject[];
  }>;
}

export async function up(opts: UpOptions = {}): Promise<void> {
  const out = opts.out ?? console.log;
  const cfg = loadSandboxConfig(process.env, opts.nodes ? { nodes: opts.nodes } : {});
  const total = performance.now();
  const state = await readState(cfg.stateDir);
  if (state && (await isSupervisorAlive(state))) {
    throw new SandboxError("AMBIT_E_SANDBOX_RUNNING", `the sandbox is already running (supervisor pid ${state.supervisorPid}); run \`ambit dev down\` first`);
  }
  const problems = await findMissingPrerequisites(cfg);
  if (problems.length > 0) throw new PrerequisiteError(`cannot start the sandbox:\n  - ${problems.join("\n  - ")}`);
  if (state || (await listSandboxNetns().catch(() => [])).length > 0) {
    await timed(out, "clean up a sandbox that did not shut down", () => down({ out: () => {} }));
  }
  out(`Starting the Ambit sandbox with ${cfg.nodes} nodes`);
  await startSupervisor(cfg, out);
  if (opts.demo !== false) {
    // client-node only here (half a second to load): `ambit dev exec` and `status`, run far more often, go without it.
    const { KubeConfig } = await import("@kubernetes/client-node");
    const kc = new KubeConfig();
    kc.loadFromFile(sandboxPaths(cfg.stateDir).kubeconfig);
    await timed(out, "apply demo manifests (demo/manifests)", async () => applyObjects(kc, await readManifestDir(DEMO_MANIFESTS)));
    await timed(out, "wait for demo deployments to be available", () => waitForDeployments(cfg, ["demo", "legacy"], 90_000));
    if (opts.mesh) await meshDemo(cfg, kc, out);
    const trace = await timed(out, "check the demo chain (client -> orders -> payments -> fraud)", () => checkDemoChain(cfg));
    out(`    ${trace}`);
  }
  const paths = sandboxPaths(cfg.stateDir);
  out(`Sandbox ready in ${seconds(performance.now() - total)}.`);
  out(`  export KUBECONFIG=${paths.kubeconfig}`);
  out("  kubectl get pods -A -o wide");
  if (opts.demo !== false) out("  npx ambit dev exec demo/client -- curl -s http://orders.demo/");
  out("  npx ambit dev down    # removes everything");
}

/** Deploys the mesh (CRDs, controller, agent DaemonSet), waits for it, and enrolls the demo namespace (its pods are captured in place). */
async function meshDemo(cfg: SandboxConfig, kc: KubeConfig, out: Output): Promise<void> {
  const chart = await renderMeshChart();
  await timed(out, "install the Gateway API CRDs (sandbox/gateway-api; a cluster installs a Gateway API release)", async () =>
    applyObjects(kc, await readManifestDir(GATEWAY_API_DIR)),
  );
  await timed(out, "install the policy CRDs (daemonset/crds)", async () => applyObjects(kc, chart.crds));
  await timed(out, "install the Ambit chart (daemonset/, namespace ambit-system): controller and agent DaemonSet", async () =>
    applyObjects(kc, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: MESH_NAMESPACE } }, ...chart.objects]),
  );
  const kube = await client(cfg);
  try {
    await timed(out, "wait for the controller", () => waitForDeployments(cfg, [MESH_NAMESPACE], 90_000));
    await timed(out, "wait for an agent on every node", () =>
      waitFor(
        async () => {
          const ds = await kube.get(`/apis/apps/v1/namespaces/${MESH_NAMESPACE}/daemonsets/${AGENT_DAEMONSET}`);
          return ds.status?.desiredNumberScheduled > 0 && ds.status?.numberReady === ds.status?.desiredNumberScheduled;
        },
        60_000,
        "the ambit agents did not become ready; see `npx ambit dev logs ambit-system/ambit-agent`",
      ),
    );
    await timed(out, "enroll namespace demo (ambit.dev/dataplane-mode=ambient)", async () => {
      await kube.mergePatch("/api/v1/namespaces/demo", { metadata: { labels: { [DATAPLANE_MODE_LABEL]: DATAPLANE_MODE_AMBIENT } } });
      await waitFor(
        async () => (await kube.list("/api/v1/namespaces/demo/pods")).every((p) => p.metadata.annotations?.[REDIRECTION_ANNOTATION] === "enabled"),
        30_000,
        "demo pods were not captured in time; see the agent logs",
      );
    });
  } finally {
    kube.close();
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new SandboxError("AMBIT_E_SANDBOX_TIMEOUT", message);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function startSupervisor(cfg: SandboxConfig, out: Output): Promise<void> {
  const paths = sandboxPaths(cfg.stateDir);
  return new Promise((resolve, reject) => {
    const child = fork(path.join(REPO_ROOT, "sandbox", "supervisor", "main.ts"), [], {
      detached: true,
      stdio: ["ignore", "ignore", "ignore", "ipc"],
      env: { ...process.env, AMBIT_DEV_NODES: String(cfg.nodes), AMBIT_DEV_STATE_DIR: cfg.stateDir, AMBIT_DEV_API_PORT: String(cfg.apiPort) },
    });
    let settled = false;
    child.on("message", (msg: ProgressMessage) => {
      if (msg.type === "step") out(`  ✓ ${msg.step} (${seconds(msg.ms)})`);
      if (msg.type === "ready") {
        settled = true;
        child.unref();
        child.disconnect();
        resolve();
      }
      if (msg.type === "failed") {
        settled = true;
        reject(
          new SandboxError(
            // The supervisor forwards its failure's code as it was (usually an AMBIT_E_* one; a Node errno code passes too).
            (msg.code as AmbitErrorCode | undefined) ?? "AMBIT_E_SANDBOX_START",
            `sandbox failed to start: ${msg.error} (details in ${paths.supervisorLog}; it has cleaned up after itself)`,
          ),
        );
      }
    });
    child.on("exit", (code) => {
      if (!settled) reject(new SandboxError("AMBIT_E_SANDBOX_START", `sandbox supervisor exited with code ${code} while starting; see ${paths.supervisorLog}`));
    });
  });
}

async function client(cfg: SandboxConfig): Promise<KubeClient> {
  return sandboxClient(cfg);
}

async function waitForDeployments(cfg: SandboxConfig, namespaces: string[], timeoutMs: number): Promise<void> {
  const kube = await client(cfg);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const pending: string[] = [];
      for (const ns of namespaces) {
        for (const d of await kube.list(`/apis/apps/v1/namespaces/${ns}/deployments`)) {
          if ((d.status?.availableReplicas ?? 0) < (d.spec?.replicas ?? 1)) pending.push(`${ns}/${d.metadata.name}`);
        }
      }
      if (pending.length === 0) return;
      if (Date.now() > deadline) {
        throw new SandboxError(
          "AMBIT_E_SANDBOX_TIMEOUT",
          `deployments not available after ${timeoutMs / 1000}s: ${pending.join(", ")}; see \`npx ambit dev logs <ns>/<pod>\``,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    kube.close();
  }
}

interface Hop {
  service: string;
  pod: string;
  node: string;
  next?: Hop | { error: string };
}

async function checkDemoChain(cfg: SandboxConfig): Promise<string> {
  let last = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    const { exitCode, stdout, stderr } = await execCapture(cfg, "demo/client", ["curl", "-s", "--max-time", "5", "http://orders.demo/"]);
    last = `${stdout}${stderr}`.trim();
    if (exitCode === 0) {
      try {
        const hops: string[] = [];
        for (let hop: Hop | { error: string } | undefined = JSON.parse(stdout) as Hop; hop; hop = "next" in hop ? hop.next : undefined) {
          if ("error" in hop) break;
          hops.push(`${hop.service}@${hop.node}`);
        }
        if (hops.join(" ").startsWith("orders@") && hops.length === 3) return hops.join(" -> ");
      } catch {
        // not JSON yet: a hop is still starting
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new SandboxError("AMBIT_E_SANDBOX_DEMO", `the demo chain does not answer correctly: ${last.slice(0, 500)}`);
}

export interface SandboxStatus {
  running: boolean;
  apiUrl?: string;
  kubeconfig?: string;
  nodes: Array<{ name: string; netns: string; ip: string; interface: string; podCidr: string }>;
  pods: Array<{ namespace: string; name: string; node: string; ip: string; netns: string; phase: string; ready: boolean }>;
}

export async function status(): Promise<SandboxStatus> {
  const cfg = loadSandboxConfig();
  const state = await readState(cfg.stateDir);
  if (!state || !(await isSupervisorAlive(state))) return { running: false, nodes: [], pods: [] };
  const kube = await sandboxClient(cfg);
  try {
    const pods = await kube.list("/api/v1/pods");
    return {
      running: true,
      apiUrl: state.apiUrl,
      kubeconfig: state.kubeconfig,
      nodes: state.nodes.map(({ name, netns, ip, interface: iface, podCidr }) => ({ name, netns, ip, interface: iface, podCidr })),
      pods: pods.map((p) => ({
        namespace: p.metadata.namespace ?? "",
        name: p.metadata.name,
        node: p.spec?.nodeName ?? "",
        ip: p.status?.podIP ?? "",
        netns: p.metadata.annotations?.[NETNS_ANNOTATION] ?? "",
        phase: p.status?.phase ?? "Unknown",
        ready: (p.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === "Ready" && c.status === "True"),
      })),
    };
  } finally {
    kube.close();
  }
}

export function kubeconfigPath(): string {
  return sandboxPaths(loadSandboxConfig().stateDir).kubeconfig;
}

/** Stops the supervisor and removes every netns, process and file of the sandbox; safe to run twice and after a crash. */
export async function down(opts: { out?: Output } = {}): Promise<void> {
  const out = opts.out ?? console.log;
  const cfg = loadSandboxConfig();
  const started = performance.now();
  const state = await readState(cfg.stateDir);
  if (state && (await isSupervisorAlive(state))) {
    process.kill(state.supervisorPid, "SIGTERM");
    const deadline = Date.now() + 15_000;
    while ((await isSupervisorAlive(state)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (await isSupervisorAlive(state)) process.kill(state.supervisorPid, "SIGKILL");
    out("  ✓ stopped the sandbox supervisor and its pods");
  }
  // Whatever a crashed supervisor left: processes inside sandbox netns, the netns themselves, files.
  await teardownAllNetworks(cfg);
  // Pod netns bound into the nodes' netns directories, and the directories' own shared mounts.
  await unmountAllUnder(cfg.stateDir);
  await fs.rm(cfg.stateDir, { recursive: true, force: true });
  // Mount points under /run are shared with every other sandbox on the machine: the last one down removes them.
  const others = await releaseSharedMounts(cfg.stateDir);
  if (others.length > 0) out(`  ✓ kept the shared mount points under /run: ${others.length} other sandbox(es) still use them (${others.join(", ")})`);
  out(`Sandbox removed (${seconds(performance.now() - started)}).`);
}
