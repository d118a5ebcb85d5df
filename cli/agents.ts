// How the CLI reaches node agents: the agent pod of a node found through the Kubernetes API, its admin port (15000) through a port-forward.
import http from "node:http";
import net from "node:net";
import { type KubeConfig, PortForward } from "@kubernetes/client-node";
import { AGENT_ADMIN_PORT } from "../contract/agent-admin.ts";
import { AGENT_POD_LABELS, DEFAULT_SYSTEM_NAMESPACE } from "../contract/install.ts";
import { type KubeClient, type KubeObject, pathFor } from "../kube/client.ts";
import { CliError, fromKubeError } from "./errors.ts";

/** The namespace the chart installs the mesh into, and its agent pods' selector (contract/install.ts). */
export const MESH_NAMESPACE = DEFAULT_SYSTEM_NAMESPACE;
export const AGENT_SELECTOR = Object.entries(AGENT_POD_LABELS)
  .map(([k, v]) => `${k}=${v}`)
  .join(",");
export const CONTROLLER_SELECTOR = "app=ambit-controller";

export interface AgentPod {
  node: string;
  pod: string;
  ready: boolean;
  phase: string;
  image?: string;
  /**
   * Whether the pod's install-cni container is ready, which it is once the Ambit plugin is chained in the node's
   * CNI config (its readiness probe checks the marker the installer writes then); undefined without that container.
   */
  cniChained?: boolean;
}

/** What the commands need of the agents: which ones exist, and a GET on one's admin API. */
export interface AgentTransport {
  /** Agent pods, one per node (the newest when a rollout overlaps two), sorted by node. */
  agents(): Promise<AgentPod[]>;
  /** GET `path` (e.g. /config_dump) on `node`'s agent admin API, parsed as JSON. */
  get<T>(node: string, path: string): Promise<T>;
  close(): void;
}

const podReady = (p: KubeObject) =>
  ((p.status?.conditions ?? []) as Array<{ type: string; status: string }>).some((c) => c.type === "Ready" && c.status === "True");

const cniState = (p: KubeObject): { cniChained?: boolean } => {
  const installer = ((p.status?.containerStatuses ?? []) as Array<{ name: string; ready: boolean }>).find((c) => c.name === "install-cni");
  return installer ? { cniChained: installer.ready } : {};
};

/** Agent pods of the mesh namespace, one per node: what both transports list. */
export async function listAgentPods(kube: KubeClient, node?: string): Promise<AgentPod[]> {
  const query = new URLSearchParams({ labelSelector: AGENT_SELECTOR, ...(node ? { fieldSelector: `spec.nodeName=${node}` } : {}) });
  let pods: KubeObject[];
  try {
    pods = await kube.list(`${pathFor("v1", "pods", MESH_NAMESPACE)}?${query.toString()}`);
  } catch (err) {
    throw fromKubeError(err, `listing agent pods (${AGENT_SELECTOR}) in ${MESH_NAMESPACE}`);
  }
  const byNode = new Map<string, KubeObject>();
  for (const p of pods) {
    const n = String(p.spec?.nodeName ?? "");
    if (!n || p.metadata.deletionTimestamp) continue;
    const seen = byNode.get(n);
    // During a surge rollout a node briefly has two: the ready one, else the newest.
    const better =
      !seen ||
      (podReady(p) && !podReady(seen)) ||
      (podReady(p) === podReady(seen) && String(p.metadata.creationTimestamp) > String(seen.metadata.creationTimestamp));
    if (better) byNode.set(n, p);
  }
  return [...byNode.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([n, p]) => ({
      node: n,
      pod: p.metadata.name,
      ready: podReady(p),
      phase: String(p.status?.phase ?? "Unknown"),
      ...(p.spec?.containers?.[0]?.image ? { image: String(p.spec.containers[0].image) } : {}),
      ...cniState(p),
    }));
}

/** The agent pod of one node, or an error that says whether the node or its agent is missing. */
async function agentPodOn(kube: KubeClient, node: string): Promise<AgentPod> {
  const [agent] = await listAgentPods(kube, node);
  if (agent) return agent;
  try {
    await kube.get(pathFor("v1", "nodes", undefined, node));
  } catch (err) {
    if ((err as { status?: number }).status === 404)
      throw new CliError("AMBIT_E_UNKNOWN_NODE", `no node named "${node}"; \`kubectl get nodes\` lists them`, { cause: err });
    throw fromKubeError(err, `reading node ${node}`);
  }
  throw new CliError(
    "AMBIT_E_NO_MESH",
    `no Ambit agent pod on node ${node} (pods -l ${AGENT_SELECTOR} in ${MESH_NAMESPACE}); is the mesh installed and its DaemonSet scheduled there? (kubectl -n ${MESH_NAMESPACE} get ds,pods -o wide)`,
  );
}

/** GET on a local port, parsed as JSON: what both transports end with. */
function getJson<T>(port: number, path: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) return reject(new Error(`GET ${path} answered ${res.statusCode}: ${text.slice(0, 200)}`));
        try {
          resolve(JSON.parse(text) as T);
        } catch (err) {
          reject(new Error(`GET ${path} did not answer JSON: ${(err as Error).message}`));
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

/**
 * The transport istioctl uses: a port-forward through the API server (WebSocket, @kubernetes/client-node's
 * PortForward) to the agent pod's admin port, which listens on the pod's (the node's) loopback only. Each GET
 * opens a local listener on an ephemeral port whose one connection is forwarded, then closes it.
 */
export class PortForwardTransport implements AgentTransport {
  readonly #kube: KubeClient<KubeConfig>;
  readonly #forward: PortForward;
  readonly #timeoutMs: number;

  constructor(kube: KubeClient<KubeConfig>, timeoutMs = 10_000) {
    this.#kube = kube;
    this.#forward = new PortForward(kube.kubeConfig);
    this.#timeoutMs = timeoutMs;
  }

  agents(): Promise<AgentPod[]> {
    return listAgentPods(this.#kube);
  }

  async get<T>(node: string, path: string): Promise<T> {
    const agent = await agentPodOn(this.#kube, node);
    const forwardErrors: string[] = [];
    const server = net.createServer((socket) => {
      socket.on("error", () => {});
      this.#forward.portForward(MESH_NAMESPACE, agent.pod, [AGENT_ADMIN_PORT], socket, null, socket).catch((err: unknown) => {
        forwardErrors.push(String((err as Error).message ?? err));
        socket.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
    try {
      return await getJson<T>((server.address() as net.AddressInfo).port, path, this.#timeoutMs);
    } catch (err) {
      throw new CliError(
        "AMBIT_E_AGENT_UNREACHABLE",
        `cannot read ${path} from agent ${MESH_NAMESPACE}/${agent.pod} on node ${node} through a port-forward to :${AGENT_ADMIN_PORT} (${forwardErrors[0] ?? (err as Error).message}); check the pod is Running (kubectl -n ${MESH_NAMESPACE} get pod ${agent.pod}) and that you may create pods/portforward`,
        { cause: err },
      );
    } finally {
      server.close();
    }
  }

  close(): void {}
}
