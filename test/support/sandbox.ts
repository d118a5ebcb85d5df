// Helpers for sandbox end-to-end tests: run the real `ambit` CLI and kubectl against a sandbox of the test's own.
import path from "node:path";
import { execa, type Options } from "execa";
import { stringify as stringifyYaml } from "yaml";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { GATEWAY_API_DIR, MESH_NAMESPACE, renderMeshChart } from "../../sandbox/index.ts";

export const isRoot = process.getuid?.() === 0;
export const ROOT_REQUIRED = "sandbox tests need root (network namespaces, iptables); run the suite as root, as CI does";

/** A sandbox separate from a developer's own: its own name prefix, state directory and API port. */
export const TEST_SANDBOX_ENV = {
  AMBIT_DEV_NAME_PREFIX: "ambit-e2e",
  AMBIT_DEV_STATE_DIR: "/run/ambit-e2e",
  AMBIT_DEV_API_PORT: "16445",
};

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function run(program: string, args: string[], opts: Options): Promise<CommandResult> {
  const r = await execa(program, args, { reject: false, ...opts });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
}

/** Runs the real `ambit` CLI (bin/ambit.ts) against the test's own sandbox. */
export function ambit(args: string[], opts: Options = {}): Promise<CommandResult> {
  return run(process.execPath, [path.join(REPO_ROOT, "bin", "ambit.ts"), ...args], {
    timeout: 180_000,
    ...opts,
    env: { ...TEST_SANDBOX_ENV, ...(opts.env ?? {}) },
  });
}

export const kubeconfig = `${TEST_SANDBOX_ENV.AMBIT_DEV_STATE_DIR}/kubeconfig`;

export function kubectl(args: string[], opts: Options = {}): Promise<CommandResult> {
  return run("kubectl", args, { timeout: 60_000, ...opts, env: { KUBECONFIG: kubeconfig, ...(opts.env ?? {}) } });
}

/**
 * A fresh test sandbox (the previous one removed first) with the mesh deployed; `env` adds AMBIT_DEV_* settings.
 * `gatewayApi` installs the Gateway API CRDs first, as a cluster with waypoints has them before the mesh starts.
 */
export async function freshSandboxWithMesh(env: Record<string, string> = {}, opts: { gatewayApi?: boolean } = {}): Promise<void> {
  await ambit(["dev", "down"]);
  const up = await ambit(["dev", "up"], { env });
  if (up.exitCode !== 0) throw new Error(`ambit dev up failed:\n${up.stdout}\n${up.stderr}`);
  if (opts.gatewayApi) {
    const crds = await kubectl(["apply", "-f", path.join(GATEWAY_API_DIR, "crds.yaml")]);
    if (crds.exitCode !== 0) throw new Error(`kubectl apply of the Gateway API CRDs: ${crds.stderr}`);
  }
  await deployMesh();
}

/** Labels the demo namespace for the mesh and waits (bounded, for hooks) until its five pods are captured. */
export async function enrollDemo(): Promise<void> {
  const labelled = await kubectl(["label", "ns", "demo", "ambit.dev/dataplane-mode=ambient"]);
  if (labelled.exitCode !== 0) throw new Error(`kubectl label ns demo: ${labelled.stderr}`);
  for (let i = 0; ; i++) {
    const marks = (await kubectl(["get", "pods", "-n", "demo", "-o", "jsonpath={.items[*].metadata.annotations.ambit\\.dev/redirection}"])).stdout;
    if (marks === Array(5).fill("enabled").join(" ")) return;
    if (i > 150) throw new Error(`demo pods not captured within 30 s: ${marks}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The chart rendered for the sandbox and applied with kubectl: CRDs, then its namespace and objects. */
export async function applyMeshChart(): Promise<void> {
  const chart = await renderMeshChart();
  const namespace = { apiVersion: "v1", kind: "Namespace", metadata: { name: MESH_NAMESPACE } };
  for (const objects of [chart.crds, [namespace, ...chart.objects]]) {
    const applied = await kubectl(["apply", "-f", "-"], { input: objects.map((o) => stringifyYaml(o)).join("---\n") });
    if (applied.exitCode !== 0) throw new Error(`kubectl apply of the rendered chart: ${applied.stderr}`);
  }
}

/**
 * Installs the mesh as a user without the helm binary would: the chart rendered (`helm template`), its CRDs, then
 * its namespace and objects through `kubectl apply -f -`; then waits until every part is ready.
 */
export async function deployMesh(): Promise<void> {
  await applyMeshChart();
  for (const app of ["ambit-controller", "ambit-agent"]) {
    const ready = await kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", `app=${app}`, "--timeout=90s"]);
    if (ready.exitCode !== 0) throw new Error(`${app} not ready: ${ready.stderr}`);
  }
}

/** What the sandbox must never change: links, routes and iptables rules of the root network namespace. */
export async function rootNamespaceSnapshot(): Promise<string> {
  const parts = await Promise.all([
    execa("ip", ["-o", "link", "show"]).then((r) => r.stdout.replace(/ +link\/.*$/gm, "")),
    execa("ip", ["route", "show", "table", "all"]).then((r) => r.stdout),
    execa("iptables-save", [], { reject: false }).then((r) => r.stdout.replace(/^#.*$/gm, "").replace(/\[\d+:\d+\]/g, "")),
  ]);
  return parts.join("\n---\n");
}

export async function sandboxNetns(prefix = TEST_SANDBOX_ENV.AMBIT_DEV_NAME_PREFIX): Promise<string[]> {
  const { stdout } = await execa("ip", ["netns", "list"], { reject: false });
  return stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(`${prefix}-`));
}

export const sandboxNodes = async () =>
  JSON.parse((await ambit(["dev", "status", "-o", "json"])).stdout).nodes as Array<{ name: string; netns: string; ip: string }>;

/**
 * A fetcher running inside `node`'s network, where an agent's endpoints are (admin on its loopback); the node
 * is looked up once, so polling with it costs one curl per check.
 */
export async function agentOn(node: string): Promise<(url: (ip: string) => string) => Promise<string>> {
  const n = (await sandboxNodes()).find((x) => x.name === node)!;
  return async (url) => (await execa("nsenter", [`--net=/run/netns/${n.netns}`, "--", "curl", "-s", "--max-time", "4", url(n.ip)])).stdout;
}

/** Fetches `url(nodeIp)` from inside a node's network, once. */
export const fromAgent = async (node: string, url: (ip: string) => string): Promise<string> => (await agentOn(node))(url);

/** The parts of an agent's `/config_dump` the tests read (JSON: dates are strings). */
interface ConfigDump {
  controller: { connected: boolean; disconnectedSince?: string };
  enrollment: Array<{ namespace: string; name: string; captured: boolean; netnsPath?: string }>;
  policies: { authorizations: Array<{ name: string }> };
  certificates: Array<{ identity: string; notAfter: string }>;
}

/** Like `configDump`, with the node looked up once: for polling. */
export async function configDumpOf(node: string): Promise<() => Promise<ConfigDump>> {
  const fetchFromAgent = await agentOn(node);
  return async () => JSON.parse(await fetchFromAgent(() => "http://127.0.0.1:15000/config_dump")) as ConfigDump;
}

/** The agent's admin config dump on `node` (no private keys in it). */
export const configDump = async (node: string) => (await configDumpOf(node))();
