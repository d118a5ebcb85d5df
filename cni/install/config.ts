// Every knob of the CNI installer, read from the environment once, every problem reported together.
import path from "node:path";
import { type InClusterCredentials, PLUGIN_KUBECONFIG_FILE, inClusterCredentials } from "./plugin-kubeconfig.ts";
import { AmbitError } from "../../contract/errors.ts";
import { CONFIG_ERRORS } from "../../contract/error-codes.ts";

export interface InstallerConfig {
  /**
   * CNI_CONF_DIR: the node's CNI config dir, mounted in the installer's container at its host path, since the chain
   * entry names files in it (the plugin's kubeconfig) as the plugin sees them on the host.
   */
  confDir: string;
  /** CNI_BIN_DIR: the node's CNI plugin dir, mounted at its host path as well. */
  binDir: string;
  /** AMBIT_CNI_PLUGIN_SOURCE: the plugin executable shipped in the image (the single executable). */
  pluginSource: string;
  /** AMBIT_CNI_AGENT_SOCKET: the agent's socket as the plugin sees it on the host. */
  agentSocket: string;
  /**
   * AMBIT_CNI_KUBECONFIG: a kubeconfig on the host for the plugin's lookups while no agent runs. Unset, in a cluster,
   * the installer writes one from its own service-account token into the conf dir; outside one, there is none.
   */
  kubeconfig: string | undefined;
  /** In-cluster credentials the installer writes the plugin's kubeconfig from (KUBERNETES_SERVICE_HOST and the token). */
  pluginCredentials: InClusterCredentials | undefined;
  /** AMBIT_CNI_READY_FILE: exists exactly while Ambit is chained (the container's readiness probe). */
  readyFile: string | undefined;
  /** AMBIT_CNI_TIMEOUT_MS: how long the plugin waits for the agent per pod. */
  timeoutMs: number;
  /** AMBIT_CNI_EXCLUDE_NAMESPACES: comma-separated namespaces the plugin passes through; unset keeps its default. */
  excludeNamespaces: string[] | undefined;
  /** AMBIT_CNI_RESCAN_MS: a rescan of the config dir this often besides its watch. */
  rescanMs: number;
  /** POD_NAME, POD_NAMESPACE (downward API): to tell, when stopping, whether the DaemonSet will start another. */
  podName: string | undefined;
  podNamespace: string;
  /** AMBIT_LOG_LEVEL: pino level. */
  logLevel: string;
}

export class InstallerConfigError extends AmbitError<typeof CONFIG_ERRORS.code.invalid> {
  constructor(message: string) {
    super(CONFIG_ERRORS.code.invalid, message);
    this.name = "InstallerConfigError";
  }
}

export function loadInstallerConfig(env: NodeJS.ProcessEnv = process.env): InstallerConfig {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) problems.push(`${name}="${raw}" must be an integer from ${min} to ${max}`);
    return Number.isInteger(value) ? value : fallback;
  };
  const absolute = (name: string, fallback: string): string => {
    const value = env[name] || fallback;
    if (!value.startsWith("/")) problems.push(`${name}="${value}" must be an absolute path`);
    return value;
  };
  const config: InstallerConfig = {
    confDir: absolute("CNI_CONF_DIR", "/etc/cni/net.d"),
    binDir: absolute("CNI_BIN_DIR", "/opt/cni/bin"),
    pluginSource: absolute("AMBIT_CNI_PLUGIN_SOURCE", "/opt/ambit/ambit-cni"),
    agentSocket: absolute("AMBIT_CNI_AGENT_SOCKET", "/var/run/ambit/cni.sock"),
    kubeconfig: env.AMBIT_CNI_KUBECONFIG ? absolute("AMBIT_CNI_KUBECONFIG", "") : undefined,
    pluginCredentials: undefined,
    readyFile: env.AMBIT_CNI_READY_FILE ? absolute("AMBIT_CNI_READY_FILE", "") : undefined,
    timeoutMs: int("AMBIT_CNI_TIMEOUT_MS", 10_000, 100, 120_000),
    excludeNamespaces: env.AMBIT_CNI_EXCLUDE_NAMESPACES
      ? env.AMBIT_CNI_EXCLUDE_NAMESPACES.split(",")
          .map((n) => n.trim())
          .filter(Boolean)
      : undefined,
    rescanMs: int("AMBIT_CNI_RESCAN_MS", 5_000, 100, 600_000),
    podName: env.POD_NAME || undefined,
    podNamespace: env.POD_NAMESPACE || "ambit-system",
    logLevel: env.AMBIT_LOG_LEVEL ?? "info",
  };
  if (!config.kubeconfig) {
    config.pluginCredentials = inClusterCredentials(env);
    if (config.pluginCredentials) config.kubeconfig = path.join(config.confDir, PLUGIN_KUBECONFIG_FILE);
  }
  if (problems.length > 0) throw new InstallerConfigError(`invalid CNI installer configuration:\n  - ${problems.join("\n  - ")}`);
  return config;
}

/** Ambit's entry in the node's chain, as the plugin reads it (cni/plugin.ts NetConf). */
export function ambitChainEntry(c: InstallerConfig): Record<string, unknown> {
  return {
    agentSocket: c.agentSocket,
    timeoutMs: c.timeoutMs,
    ...(c.kubeconfig ? { kubeconfig: c.kubeconfig } : {}),
    ...(c.excludeNamespaces ? { excludeNamespaces: c.excludeNamespaces } : {}),
  };
}
