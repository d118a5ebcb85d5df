// The sidecar program's typed configuration, read once from its environment (set by `ambit inject` or the sandbox's injection).
import net from "node:net";
import { AmbitError } from "../contract/errors.ts";
import { CONFIG_ERRORS } from "../contract/error-codes.ts";
import { CA_ROOT_KEY, SIDECAR_MOUNTS, SIDECAR_PORTS, SIDECAR_UID } from "../contract/sidecar.ts";

export interface SidecarConfig {
  /** POD_NAMESPACE and POD_NAME: the pod this sidecar serves (its config stream names it). */
  pod: { namespace: string; name: string };
  /** POD_IP: the pod's address; inbound streams must be addressed to it. */
  podIp: string;
  /** SERVICE_ACCOUNT: the identity the sidecar holds (the pod's). */
  serviceAccount: string;
  /** TRUST_DOMAIN. */
  trustDomain: string;
  /** AMBIT_CONTROLLER_ADDRESS: DNS name of the controller Service; also the name its certificate must carry. */
  controllerAddress: string;
  configStreamPort: number;
  caPort: number;
  /** AMBIT_CA_TOKEN_FILE: the pod's projected token (audience ambit-ca), re-read for every request. */
  caTokenFile: string;
  /** AMBIT_TRUST_ROOTS_FILE: the namespace's ConfigMap ambit-ca-root, mounted; the config stream's bundle replaces it. */
  trustRootsFile: string;
  logLevel: string;
  /** AMBIT_ROOT_NAMESPACE: where mesh-wide policies live (the mesh's system namespace), as the agents' and controller's. */
  rootNamespace: string;
  ports: typeof SIDECAR_PORTS;
  /** AMBIT_DRAIN_DEADLINE_MS: how long in-flight requests may finish after SIGTERM. */
  drainDeadlineMs: number;
}

/** What the init step needs to install the capture rules. */
export interface SidecarInitConfig {
  /** AMBIT_PROXY_UID: the proxy's user, whose own connections leave uncaptured. */
  proxyUid: number;
  /** AMBIT_EXCLUDE_INBOUND_PORTS: comma-separated ports delivered straight to the app. */
  excludeInboundPorts: number[];
  /** AMBIT_EXCLUDE_OUTBOUND_CIDRS: comma-separated IPv4 CIDRs the app reaches directly. */
  excludeOutboundCidrs: string[];
  /** HOST_IP: the node's address; kubelet probes come from it and reach the app directly, as on an ambient pod. */
  hostIp: string | undefined;
}

export class SidecarConfigError extends AmbitError<typeof CONFIG_ERRORS.code.invalid> {
  constructor(message: string) {
    super(CONFIG_ERRORS.code.invalid, message);
    this.name = "SidecarConfigError";
  }
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Every problem at once, so a broken injection is fixed in one go. */
export function loadSidecarConfig(env: NodeJS.ProcessEnv = process.env): SidecarConfig {
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
  const name = (key: string, hint: string): string => {
    const value = env[key] ?? "";
    if (!DNS_NAME.test(value)) problems.push(`${key}="${value}" must be a Kubernetes object name (${hint})`);
    return value;
  };
  const namespace = name("POD_NAMESPACE", "set it from the downward API: fieldRef metadata.namespace");
  const podName = name("POD_NAME", "set it from the downward API: fieldRef metadata.name");
  const serviceAccount = name("SERVICE_ACCOUNT", "set it from the downward API: fieldRef spec.serviceAccountName");
  const podIp = env.POD_IP ?? "";
  if (net.isIPv4(podIp) === false) problems.push(`POD_IP="${podIp}" must be the pod's IPv4 address (downward API: fieldRef status.podIP)`);
  const trustDomain = env.TRUST_DOMAIN ?? "cluster.local";
  if (!/^[a-z0-9._-]+$/.test(trustDomain))
    problems.push(`TRUST_DOMAIN="${trustDomain}" is not a valid SPIFFE trust domain (lowercase letters, digits, '.', '-', '_')`);
  const logLevel = env.AMBIT_LOG_LEVEL ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`AMBIT_LOG_LEVEL="${logLevel}" must be one of ${LOG_LEVELS.join(", ")}`);
  const config: SidecarConfig = {
    pod: { namespace, name: podName },
    podIp,
    serviceAccount,
    trustDomain,
    controllerAddress: env.AMBIT_CONTROLLER_ADDRESS ?? "ambit-controller.ambit-system.svc",
    configStreamPort: int("AMBIT_CONFIG_STREAM_PORT", 15010, 1, 65535),
    caPort: int("AMBIT_CA_PORT", 15012, 1, 65535),
    caTokenFile: env.AMBIT_CA_TOKEN_FILE ?? `${SIDECAR_MOUNTS.caToken}/token`,
    trustRootsFile: env.AMBIT_TRUST_ROOTS_FILE ?? `${SIDECAR_MOUNTS.caRoot}/${CA_ROOT_KEY}`,
    logLevel,
    rootNamespace: env.AMBIT_ROOT_NAMESPACE || "ambit-system",
    ports: SIDECAR_PORTS,
    drainDeadlineMs: int("AMBIT_DRAIN_DEADLINE_MS", 5_000, 0, 3600_000),
  };
  if (problems.length > 0) throw new SidecarConfigError(`invalid sidecar configuration:\n  - ${problems.join("\n  - ")}`);
  return config;
}

const CIDR = /^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$/;

export function loadSidecarInitConfig(env: NodeJS.ProcessEnv = process.env): SidecarInitConfig {
  const problems: string[] = [];
  const list = (key: string) =>
    (env[key] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  const uidRaw = env.AMBIT_PROXY_UID ?? String(SIDECAR_UID);
  const proxyUid = Number(uidRaw);
  if (!Number.isInteger(proxyUid) || proxyUid <= 0) problems.push(`AMBIT_PROXY_UID="${uidRaw}" must be a positive integer (the proxy's runAsUser)`);
  const excludeInboundPorts = list("AMBIT_EXCLUDE_INBOUND_PORTS").map((p) => {
    const port = Number(p);
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`AMBIT_EXCLUDE_INBOUND_PORTS: "${p}" is not a port`);
    return port;
  });
  // IPv6 blocks are accepted and left out: only IPv4 is captured (no ip6tables rules), so there is nothing to exclude them from.
  const excludeOutboundCidrs = list("AMBIT_EXCLUDE_OUTBOUND_CIDRS").filter((c) => !(c.includes(":") && net.isIPv6(c.split("/")[0]!)));
  for (const c of excludeOutboundCidrs)
    if (!CIDR.test(c) || !net.isIPv4(c.split("/")[0]!)) problems.push(`AMBIT_EXCLUDE_OUTBOUND_CIDRS: "${c}" is not an IPv4 CIDR`);
  const hostIp = env.HOST_IP || undefined;
  if (hostIp !== undefined && !net.isIPv4(hostIp)) problems.push(`HOST_IP="${hostIp}" must be the node's IPv4 address (downward API: status.hostIP)`);
  if (problems.length > 0) throw new SidecarConfigError(`invalid sidecar init configuration:\n  - ${problems.join("\n  - ")}`);
  return { proxyUid, excludeInboundPorts, excludeOutboundCidrs, hostIp };
}
