// Typed configuration of the local sandbox: every path, address range and port it uses, in one place.
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Root of the checkout (this file lives in <root>/sandbox). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Everything the sandbox names starts with this, so `down` can find leftovers after a crash.
 * Tests set AMBIT_DEV_NAME_PREFIX (with their own state dir and port) to run beside a developer's sandbox.
 */
export const NAME_PREFIX = process.env.AMBIT_DEV_NAME_PREFIX ?? "ambit-dev";

export interface SandboxConfig {
  /** Runtime state: kubeconfig, state.json, logs, CNI config and IPAM data, per-pod files. */
  stateDir: string;
  /** Number of nodes (network namespaces joined by the underlay). */
  nodes: number;
  /** API server listener in the root namespace: loopback only. */
  apiHost: string;
  apiPort: number;
  /** Underlay joining the nodes; node i (1-based) gets `${underlayPrefix}.${10 + i}`. */
  underlayPrefix: string;
  underlayPrefixLength: number;
  /** Pod CIDR of node i is `${podCidrPrefix}.${i}.0/24`. */
  podCidrPrefix: string;
  /** Service ClusterIP range. */
  serviceCidr: string;
  /** Port on which every node exposes the API server (forwarded to the unix socket), for in-cluster clients. */
  nodeApiPort: number;
  /**
   * AMBIT_DEV_MAX_TOKEN_SECONDS: the longest service-account token the API server issues, whatever was asked
   * (kube-apiserver's --service-account-max-token-expiration). Short values make every projected token rotate
   * within a test; the kubelet refreshes each at 80% of the lifetime it was issued with.
   */
  maxTokenSeconds: number | undefined;
  /** Directory holding the reference CNI plugins (Debian: /usr/lib/cni). */
  cniBinDir: string;
  clusterDomain: string;
}

/** Reads overrides from AMBIT_DEV_* environment variables; defaults suit one Debian machine. */
export function loadSandboxConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<SandboxConfig> = {}): SandboxConfig {
  const num = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
    return value;
  };
  return {
    stateDir: env.AMBIT_DEV_STATE_DIR ?? "/run/ambit-dev",
    nodes: num("AMBIT_DEV_NODES", 2),
    apiHost: "127.0.0.1",
    apiPort: num("AMBIT_DEV_API_PORT", 16443),
    underlayPrefix: "172.31.250",
    underlayPrefixLength: 24,
    podCidrPrefix: "10.244",
    serviceCidr: "10.96.0.0/16",
    nodeApiPort: 6443,
    maxTokenSeconds: env.AMBIT_DEV_MAX_TOKEN_SECONDS ? num("AMBIT_DEV_MAX_TOKEN_SECONDS", 0) : undefined,
    cniBinDir: env.AMBIT_DEV_CNI_BIN_DIR ?? "/usr/lib/cni",
    clusterDomain: "cluster.local",
    ...overrides,
  };
}

/** File and directory layout under the state directory. */
export function sandboxPaths(stateDir: string) {
  return {
    stateDir,
    stateFile: path.join(stateDir, "state.json"),
    kubeconfig: path.join(stateDir, "kubeconfig"),
    apiSocket: path.join(stateDir, "apiserver.sock"),
    apiTls: path.join(stateDir, "pki"),
    logs: path.join(stateDir, "logs"),
    supervisorLog: path.join(stateDir, "logs", "supervisor.log"),
    cniIpamDir: path.join(stateDir, "cni", "ipam"),
    pods: path.join(stateDir, "pods"),
    nodeRoots: path.join(stateDir, "nodes"),
  };
}

/**
 * A node's own filesystem root: nodes share the machine's filesystem, so hostPath volumes and node-local files
 * (the agent's CNI socket, the CNI plugin's kubeconfig) live under it to keep nodes apart, as separate machines are.
 */
export const nodeRootDir = (stateDir: string, node: string): string => path.join(sandboxPaths(stateDir).nodeRoots, node);

/**
 * The sandbox runtime's CNI dirs on every node, as containerd's conf_dir and bin_dir (sandbox/chart-values.yaml gives
 * the chart the same). Under /var/run, where the kubelet may create the installer's mount points on this machine.
 */
export const NODE_CNI_CONF_DIR = "/var/run/ambit-node/cni/net.d";
export const NODE_CNI_BIN_DIR = "/var/run/ambit-node/cni/bin";
/**
 * Node paths a CNI plugin may be configured with (the agent's socket dir, the CNI dirs, where the plugin's
 * kubeconfig is): the runtime runs plugins with these bound from the node's root, as they are on a node's host.
 */
export const NODE_HOST_DIRS = ["/var/run/ambit", "/var/run/ambit-node"];

/** Network namespace names. Kept short: they appear in `ip netns list` and error messages. */
export const netnsNames = {
  underlay: `${NAME_PREFIX}-underlay`,
  node: (nodeName: string) => `${NAME_PREFIX}-${nodeName}`,
  pod: (podUid: string) => `${NAME_PREFIX}-pod-${podUid.slice(0, 8)}`,
};

export const nodeName = (index: number) => `node-${index}`;
