// The waypoint program's typed configuration, read once from its environment (set by the Deployment the controller makes).
import { AGENT_PORTS } from "../contract/install.ts";
import { AmbitError } from "../contract/errors.ts";
import { CONFIG_ERRORS } from "../contract/error-codes.ts";
import { WAYPOINT_LISTENER, type WaypointRef } from "../contract/waypoint.ts";

export interface WaypointConfig {
  /** AMBIT_GATEWAY_NAME and POD_NAMESPACE: the Gateway this pod serves. */
  waypoint: WaypointRef;
  /** POD_NAME: for logs. */
  podName: string;
  /** SERVICE_ACCOUNT: the identity the waypoint holds (the Gateway's name: the controller makes it so). */
  serviceAccount: string;
  /** TRUST_DOMAIN. */
  trustDomain: string;
  /** AMBIT_CONTROLLER_ADDRESS: DNS name of the controller Service; also the name its certificate must carry. */
  controllerAddress: string;
  /** AMBIT_CONFIG_STREAM_PORT. */
  configStreamPort: number;
  /** AMBIT_CA_PORT. */
  caPort: number;
  /** AMBIT_CA_TOKEN_FILE: this pod's projected token (audience ambit-ca), re-read for every request. */
  caTokenFile: string;
  /**
   * AMBIT_TRUST_ROOTS_FILE: the roots the controller's certificate chains to at start-up (its ConfigMap, mounted);
   * afterwards the config stream's trust bundle replaces them, so a root rotation needs no restart.
   */
  trustRootsFile: string;
  /** AMBIT_LOG_LEVEL: pino level. */
  logLevel: string;
  ports: { hbone: number; metrics: number; readiness: number; admin: number };
  /** AMBIT_DRAIN_DEADLINE_MS: how long in-flight requests may finish after SIGTERM. */
  drainDeadlineMs: number;
}

export class WaypointConfigError extends AmbitError<typeof CONFIG_ERRORS.code.invalid> {
  constructor(message: string) {
    super(CONFIG_ERRORS.code.invalid, message);
    this.name = "WaypointConfigError";
  }
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
/** A Kubernetes object name (DNS subdomain); the Gateway's and namespace's names must be one. */
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Every problem at once, so a broken Deployment is fixed in one go. */
export function loadWaypointConfig(env: NodeJS.ProcessEnv = process.env): WaypointConfig {
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
  const gateway = name("AMBIT_GATEWAY_NAME", "the waypoint Gateway's name");
  const namespace = name("POD_NAMESPACE", "set it from the downward API: fieldRef metadata.namespace");
  const trustDomain = env.TRUST_DOMAIN ?? "cluster.local";
  if (!/^[a-z0-9._-]+$/.test(trustDomain))
    problems.push(`TRUST_DOMAIN="${trustDomain}" is not a valid SPIFFE trust domain (lowercase letters, digits, '.', '-', '_')`);
  const logLevel = env.AMBIT_LOG_LEVEL ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`AMBIT_LOG_LEVEL="${logLevel}" must be one of ${LOG_LEVELS.join(", ")}`);
  const config: WaypointConfig = {
    waypoint: { namespace, name: gateway },
    podName: env.POD_NAME ?? "",
    serviceAccount: env.SERVICE_ACCOUNT || gateway,
    trustDomain,
    controllerAddress: env.AMBIT_CONTROLLER_ADDRESS ?? "ambit-controller.ambit-system.svc",
    configStreamPort: int("AMBIT_CONFIG_STREAM_PORT", 15010, 1, 65535),
    caPort: int("AMBIT_CA_PORT", 15012, 1, 65535),
    caTokenFile: env.AMBIT_CA_TOKEN_FILE ?? "/var/run/secrets/tokens/ambit-ca/token",
    trustRootsFile: env.AMBIT_TRUST_ROOTS_FILE ?? "/var/run/secrets/ambit/ca-root/root-cert.pem",
    logLevel,
    ports: { hbone: WAYPOINT_LISTENER.port, metrics: AGENT_PORTS.metrics, readiness: AGENT_PORTS.readiness, admin: AGENT_PORTS.admin },
    drainDeadlineMs: int("AMBIT_DRAIN_DEADLINE_MS", 20_000, 0, 3600_000),
  };
  if (config.serviceAccount !== gateway)
    problems.push(`SERVICE_ACCOUNT="${config.serviceAccount}" must be the Gateway's name "${gateway}": a waypoint's identity is its Gateway's ServiceAccount`);
  if (problems.length > 0) throw new WaypointConfigError(`invalid waypoint configuration:\n  - ${problems.join("\n  - ")}`);
  return config;
}
