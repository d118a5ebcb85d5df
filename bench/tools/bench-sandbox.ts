// What the data-plane benches on a sandbox of their own share: the CLI and kubectl against it, the mesh from its chart, bench pods, agent PIDs, the load tool run in the client pod.
import path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../../sandbox/config.ts";

/** The Node of this checkout (the `node` package): the CLI, the load tool and the bench server run with it. */
export const NODE = path.join(REPO_ROOT, "node_modules", "node", "bin", "node");
export const LOAD = path.join(REPO_ROOT, "bench", "tools", "http-load.ts");
export const SERVER = path.join(REPO_ROOT, "bench", "tools", "http-server.ts");

/** A sandbox apart from a developer's own: its name prefix (no other sandbox's prefix may start with it plus "-"), state directory and API port. */
export interface BenchSandboxEnv {
  AMBIT_DEV_NAME_PREFIX: string;
  AMBIT_DEV_STATE_DIR: string;
  AMBIT_DEV_API_PORT: string;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(300);
  }
}

/** A bare pod in namespace `bench`, on a node chosen here (not by the scheduler). */
export const benchPod = (name: string, node: string, container: Record<string, unknown>, labels: Record<string, string> = {}) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "bench", labels: { app: name, ...labels } },
  spec: { nodeName: node, containers: [{ name: "c", ...container }] },
});

/** The sandbox's kubelet runs a container as one process and reports its PID as the container ID (`sandbox://<pid>`). */
export interface PodWithPid {
  metadata: { name: string };
  spec: { nodeName: string };
  status: { containerStatuses?: Array<{ containerID?: string }> };
}
export const containerPid = (pod: PodWithPid): number => Number(pod.status.containerStatuses?.[0]?.containerID?.replace("sandbox://", ""));

export function benchSandbox(env: BenchSandboxEnv) {
  const kubeconfig = `${env.AMBIT_DEV_STATE_DIR}/kubeconfig`;
  const ambit = (args: string[]) => execa(NODE, [path.join(REPO_ROOT, "bin", "ambit.ts"), ...args], { env: { ...env }, timeout: 300_000 });
  const kubectl = (args: string[], input?: string) =>
    execa("kubectl", args, { env: { KUBECONFIG: kubeconfig }, timeout: 120_000, ...(input ? { input } : {}) });

  /** The mesh from its chart, rendered for the sandbox and applied with kubectl (as `helm template | kubectl apply`). */
  async function deployMesh(): Promise<void> {
    const { MESH_NAMESPACE, renderMeshChart } = await import("../../sandbox/index.ts");
    const { stringify } = await import("yaml");
    const chart = await renderMeshChart();
    await kubectl(["apply", "-f", "-"], chart.crds.map((o) => stringify(o)).join("---\n"));
    await kubectl(
      ["apply", "-f", "-"],
      [{ apiVersion: "v1", kind: "Namespace", metadata: { name: MESH_NAMESPACE } }, ...chart.objects].map((o) => stringify(o)).join("---\n"),
    );
  }

  /** Pods matching `selector` in `namespace`, as the API server returns them. */
  async function podsOf(namespace: string, selector: string): Promise<PodWithPid[]> {
    return JSON.parse((await kubectl(["get", "pods", "-n", namespace, "-l", selector, "-o", "json"])).stdout).items as PodWithPid[];
  }

  /** Each node's agent process, by node name. */
  async function agentPids(): Promise<Record<string, number>> {
    const pods = await podsOf("ambit-system", "app=ambit-agent");
    return Object.fromEntries(pods.map((p) => [p.spec.nodeName, containerPid(p)]));
  }

  /** One run of `tools/http-load.ts` in pod bench/client against `server.bench:8080`: its JSON report. */
  async function load(mode: string, extra: string[]): Promise<Record<string, number>> {
    const { stdout } = await ambit(["dev", "exec", "bench/client", "--", NODE, LOAD, "--mode", mode, "--target", "server.bench:8080", ...extra]);
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, number>;
  }

  return { env, kubeconfig, ambit, kubectl, deployMesh, podsOf, agentPids, load };
}
