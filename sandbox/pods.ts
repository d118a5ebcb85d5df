// `ambit dev exec` and `ambit dev logs`: find a sandbox pod and run a command in it. Kept light (no client-node, no kubelet) because the CLI starts once per exec.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { parse as parseYaml } from "yaml";
import { type KubeAccess, KubeClient, type KubeObject } from "../kube/client.ts";
import { type SandboxConfig, loadSandboxConfig, sandboxPaths } from "./config.ts";
import { SandboxError } from "./errors.ts";
import { NETNS_ANNOTATION, podCommand, readLaunchSpec } from "./kubelet/launcher.ts";
import { isSupervisorAlive, readState } from "./state.ts";

/**
 * The sandbox's admin kubeconfig, which the sandbox itself writes (one cluster with its CA, one user with a token),
 * read without client-node: loading client-node cost each `ambit dev exec` half a second.
 */
async function adminAccess(kubeconfig: string): Promise<KubeAccess> {
  const doc = parseYaml(await fs.readFile(kubeconfig, "utf8")) as {
    clusters?: Array<{ cluster?: { server?: string; "certificate-authority-data"?: string } }>;
    users?: Array<{ user?: { token?: string } }>;
  };
  const cluster = doc.clusters?.[0]?.cluster;
  const token = doc.users?.[0]?.user?.token;
  if (!cluster?.server || !cluster["certificate-authority-data"] || !token)
    throw new SandboxError("AMBIT_E_SANDBOX_NOT_RUNNING", `${kubeconfig} is not the sandbox's admin kubeconfig; run \`ambit dev down\` and \`ambit dev up\``);
  const ca = Buffer.from(cluster["certificate-authority-data"], "base64");
  return {
    getCurrentCluster: () => ({ server: cluster.server! }),
    applyToHTTPSOptions: async (opts) => {
      opts.ca = ca;
      opts.headers = { ...(opts.headers ?? {}), authorization: `Bearer ${token}` };
    },
  };
}

/** A client of the running sandbox's API server as its admin; fails when no sandbox runs. */
export async function sandboxClient(cfg: SandboxConfig): Promise<KubeClient> {
  const state = await readState(cfg.stateDir);
  if (!state || !(await isSupervisorAlive(state))) {
    throw new SandboxError("AMBIT_E_SANDBOX_NOT_RUNNING", "the sandbox is not running; start it with `npx ambit dev up`");
  }
  return new KubeClient(await adminAccess(state.kubeconfig));
}

/**
 * Finds the pod meant by `<ns>/<name>`: the pod of that name, or else a running pod of the Deployment
 * (or `app` label) of that name, so `demo/client` works without knowing the generated pod name.
 */
export async function resolvePod(cfg: SandboxConfig, ref: string): Promise<KubeObject> {
  const match = /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(ref);
  if (!match) throw new SandboxError("AMBIT_E_SANDBOX_POD_REF", `"${ref}" is not a pod reference; use <namespace>/<pod>, e.g. demo/client`);
  const [, namespace, name] = match as unknown as [string, string, string];
  const kube = await sandboxClient(cfg);
  try {
    const pods = await kube.list(`/api/v1/namespaces/${namespace}/pods`);
    const live = pods.filter((p) => !p.metadata.deletionTimestamp && p.metadata.annotations?.[NETNS_ANNOTATION]);
    const found =
      live.find((p) => p.metadata.name === name) ??
      live.find((p) => p.metadata.ownerReferences?.some((o) => o.kind === "Deployment" && o.name === name) && p.status?.phase === "Running") ??
      live.find((p) => p.metadata.labels?.app === name && p.status?.phase === "Running");
    if (!found)
      throw new SandboxError(
        "AMBIT_E_SANDBOX_POD_NOT_FOUND",
        `no running pod "${name}" in namespace "${namespace}" (see \`kubectl get pods -n ${namespace}\`)`,
      );
    return found;
  } finally {
    kube.close();
  }
}

async function launchFor(cfg: SandboxConfig, ref: string) {
  const pod = await resolvePod(cfg, ref);
  try {
    return await readLaunchSpec(path.join(sandboxPaths(cfg.stateDir).pods, pod.metadata.uid as string));
  } catch {
    throw new SandboxError("AMBIT_E_SANDBOX_POD_NOT_READY", `pod ${ref} has not started yet; try again in a moment`);
  }
}

/** Runs a command inside a pod's netns and environment with the terminal attached; resolves to its exit code. */
export async function exec(ref: string, command: string[]): Promise<number> {
  const cfg = loadSandboxConfig();
  const spec = await launchFor(cfg, ref);
  const [program, ...args] = podCommand(spec, command);
  const result = await execa(program!, args, { env: spec.env, extendEnv: false, stdio: "inherit", reject: false });
  return result.exitCode ?? 1;
}

/** The same with its output captured (the demo check of `ambit dev up`). */
export async function execCapture(cfg: SandboxConfig, ref: string, command: string[]) {
  const spec = await launchFor(cfg, ref);
  const [program, ...args] = podCommand(spec, command);
  return execa(program!, args, { env: spec.env, extendEnv: false, reject: false, timeout: 15_000 });
}

export async function logs(ref: string, opts: { container?: string; follow?: boolean } = {}): Promise<void> {
  const cfg = loadSandboxConfig();
  const spec = await launchFor(cfg, ref);
  const files = (await fs.readdir(spec.logDir)).filter((f) => f.endsWith(".log"));
  const file = opts.container ? `${opts.container}.log` : files[0];
  if (!file || !files.includes(file)) {
    throw new SandboxError(
      "AMBIT_E_SANDBOX_NO_LOGS",
      `no logs for container "${opts.container ?? ""}" of ${ref}; containers: ${files.map((f) => f.replace(/\.log$/, "")).join(", ")}`,
    );
  }
  await execa("tail", [opts.follow ? "-f" : "-n+1", path.join(spec.logDir, file)], { stdio: "inherit", reject: false });
}
