// Every configuration knob of the node agent, read from the environment once, with defaults and validation.
import { AGENT_SERVICE_ACCOUNT, AGENT_PORTS, DEFAULT_SYSTEM_NAMESPACE } from "../contract/install.ts";
import { AmbitError } from "../contract/errors.ts";
import { CONFIG_ERRORS } from "../contract/error-codes.ts";

/** Ports fixed by the design; defined in contract/ because the CLI and tests reach the agent on them too. */
export const PORTS = AGENT_PORTS;

/** SO_MARK on the agent's own sockets, so the pod's capture rules let them through (0x539 = 1337). */
export const AGENT_SOCKET_MARK = 0x539;

export interface AgentConfig {
  /** NODE_NAME (required, from the downward API): the node whose pods this agent serves. */
  nodeName: string;
  /** TRUST_DOMAIN: SPIFFE trust domain. */
  trustDomain: string;
  /** AMBIT_CNI_SOCKET: unix socket the chained CNI plugin talks to. */
  cniSocket: string;
  /** AMBIT_NETNS_DIR: where the container runtime keeps pods' network namespaces on the node (a hostPath mount). */
  netnsDir: string;
  /**
   * AMBIT_PROC_DIR: /proc to search for pods' namespaces when the runtime keeps no netns files; it sees the node's
   * processes only with hostPID, which the chart does not set (containerd and CRI-O use the netns directory).
   */
  procDir: string;
  /** AMBIT_HBONE_MAX_STREAMS: concurrent streams per pooled HBONE connection (ztunnel: 100). */
  hboneMaxStreamsPerConnection: number;
  /** AMBIT_HBONE_IDLE_TIMEOUT_MS: pooled HBONE connections with no stream close after this (ztunnel: 5 min). */
  hboneIdleTimeoutMs: number;
  /** AMBIT_DRAIN_DEADLINE_MS: on shutdown, in-flight connections get this long to finish. */
  drainDeadlineMs: number;
  /**
   * AMBIT_HANDOVER_WAIT_MS: on shutdown, how long the agent keeps serving while it waits for a successor on the node
   * (a deleted agent pod is replaced only after it was told to stop); then it stops anyway.
   */
  handoverWaitMs: number;
  /** AMBIT_VERIFY_INTERVAL_MS: how often every captured pod's rules and listeners are verified and repaired. */
  verifyIntervalMs: number;
  /** POD_NAME (downward API metadata.name): the agent's own pod, to tell whether its DaemonSet will replace it. */
  podName: string | undefined;
  /** AMBIT_CNI_TIMEOUT_MS: how long the agent may take to set up a pod for CNI ADD. */
  cniTimeoutMs: number;
  /** AMBIT_LOG_LEVEL: pino level. */
  logLevel: string;
  /**
   * AMBIT_READY_FILE: a file in this agent's own (per-pod) directory that exists exactly while it is ready. The
   * readiness probe checks it: on the host network two agents share :15021 during a surge rollout, so an HTTP
   * probe could be answered by the old one.
   */
  readyFile: string | undefined;
  /** AMBIT_CONTROLLER_ADDRESS: DNS name of the controller Service; also the name its certificate must carry. */
  controllerAddress: string;
  /** AMBIT_CONFIG_STREAM_PORT: the controller's config stream (mutual TLS). */
  configStreamPort: number;
  /** AMBIT_CA_PORT: the controller's CSR endpoint. */
  caPort: number;
  /** AMBIT_CA_TOKEN_FILE: projected service-account token with audience `ambit-ca`, re-read for every request. */
  caTokenFile: string;
  /** AMBIT_SYSTEM_NAMESPACE: the agent's own namespace, where the controller publishes the trust bundle (ConfigMap ambit-ca-root); also the policy root namespace. */
  systemNamespace: string;
  /** SERVICE_ACCOUNT (downward API spec.serviceAccountName): the agent's own identity towards the controller. */
  serviceAccount: string;
}

export class ConfigError extends AmbitError<typeof CONFIG_ERRORS.code.invalid> {
  constructor(message: string) {
    super(CONFIG_ERRORS.code.invalid, message);
    this.name = "ConfigError";
  }
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name}="${raw}" must be an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };
  const nodeName = env.NODE_NAME ?? "";
  if (!nodeName) problems.push("NODE_NAME is required (set it from the downward API: fieldRef spec.nodeName)");
  const trustDomain = env.TRUST_DOMAIN ?? "cluster.local";
  if (!/^[a-z0-9._-]+$/.test(trustDomain))
    problems.push(`TRUST_DOMAIN="${trustDomain}" is not a valid SPIFFE trust domain (lowercase letters, digits, '.', '-', '_')`);
  const logLevel = env.AMBIT_LOG_LEVEL ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`AMBIT_LOG_LEVEL="${logLevel}" must be one of ${LOG_LEVELS.join(", ")}`);
  const config: AgentConfig = {
    nodeName,
    trustDomain,
    cniSocket: env.AMBIT_CNI_SOCKET ?? "/var/run/ambit/cni.sock",
    netnsDir: env.AMBIT_NETNS_DIR ?? "/var/run/netns",
    procDir: env.AMBIT_PROC_DIR ?? "/proc",
    hboneMaxStreamsPerConnection: int("AMBIT_HBONE_MAX_STREAMS", 100, 1, 10_000),
    hboneIdleTimeoutMs: int("AMBIT_HBONE_IDLE_TIMEOUT_MS", 5 * 60_000, 1_000, 24 * 3600_000),
    drainDeadlineMs: int("AMBIT_DRAIN_DEADLINE_MS", 30_000, 0, 3600_000),
    handoverWaitMs: int("AMBIT_HANDOVER_WAIT_MS", 20_000, 0, 600_000),
    podName: env.POD_NAME || undefined,
    verifyIntervalMs: int("AMBIT_VERIFY_INTERVAL_MS", 30_000, 1_000, 3600_000),
    cniTimeoutMs: int("AMBIT_CNI_TIMEOUT_MS", 10_000, 100, 120_000),
    logLevel,
    readyFile: env.AMBIT_READY_FILE || undefined,
    controllerAddress: env.AMBIT_CONTROLLER_ADDRESS ?? "ambit-controller.ambit-system.svc",
    configStreamPort: int("AMBIT_CONFIG_STREAM_PORT", 15010, 1, 65535),
    caPort: int("AMBIT_CA_PORT", 15012, 1, 65535),
    caTokenFile: env.AMBIT_CA_TOKEN_FILE ?? "/var/run/secrets/tokens/ambit-ca/token",
    systemNamespace: env.AMBIT_SYSTEM_NAMESPACE ?? DEFAULT_SYSTEM_NAMESPACE,
    serviceAccount: env.SERVICE_ACCOUNT ?? AGENT_SERVICE_ACCOUNT,
  };
  if (problems.length > 0) throw new ConfigError(`invalid agent configuration:\n  - ${problems.join("\n  - ")}`);
  return config;
}
