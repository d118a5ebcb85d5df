// Every configuration knob of the controller, read from the environment once, with defaults and validation.
import { AmbitError } from "../contract/errors.ts";
import { CONFIG_ERRORS } from "../contract/error-codes.ts";

/** Ports (Istio's istiod numbers where one exists). */
export const CONTROLLER_PORTS = {
  /** Config stream to agents: HTTP/2 over mutual TLS (istiod serves xDS on 15010/15012). */
  configStream: 15010,
  /** CSR endpoint: TLS, callers authenticate with a projected service-account token (istiod's CA port). */
  ca: 15012,
  /** Prometheus metrics and readiness (`/metrics`, `/ready`), istiod's monitoring port. */
  monitoring: 15014,
} as const;

export interface ControllerConfig {
  /** POD_NAME: this replica's name; with a random suffix it is the leader-election identity. */
  podName: string;
  /** POD_NAMESPACE: where the controller's Lease, CA Secret and trust-bundle ConfigMap live. */
  namespace: string;
  /** TRUST_DOMAIN: SPIFFE trust domain. */
  trustDomain: string;
  /** AMBIT_ROOT_NAMESPACE: policies here without a selector apply mesh-wide (Istio's root namespace). */
  rootNamespace: string;
  /** AMBIT_AGENT_SERVICE_ACCOUNTS: comma-separated ns/name of the service accounts agents run as. */
  agentServiceAccounts: string[];
  /** AMBIT_WORKLOAD_CERT_TTL_SECONDS: lifetime of workload certificates (24 h). */
  workloadCertTtlSeconds: number;
  /** AMBIT_CONFIG_DEBOUNCE_MS: longest a change waits before it is pushed to agents. */
  debounceMs: number;
  /** AMBIT_SERVING_NAMES: extra DNS names of the controller's serving certificate (the Service's are always there). */
  servingNames: string[];
  /** AMBIT_LEASE_DURATION_MS, AMBIT_RENEW_DEADLINE_MS, AMBIT_RETRY_PERIOD_MS: leader election (client-go's defaults). */
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** AMBIT_LOG_LEVEL: pino level. */
  logLevel: string;
  /** What a waypoint Gateway is deployed as (the chart's `waypoint.*`); waypoints reach the controller at controllerAddress. */
  waypoint: {
    /** AMBIT_WAYPOINT_IMAGE: image of the waypoint program. */
    image: string;
    /** AMBIT_WAYPOINT_PULL_POLICY: Always, IfNotPresent or Never. */
    pullPolicy: string;
    /** AMBIT_WAYPOINT_RESOURCES: its container's resources as JSON (`{"requests": {...}, "limits": {...}}`). */
    resources: WaypointResources;
    /** AMBIT_CONTROLLER_ADDRESS: this controller's Service as pods reach it (default ambit-controller.<namespace>.svc). */
    controllerAddress: string;
  };
  ports: { configStream: number; ca: number; monitoring: number };
}

export class ControllerConfigError extends AmbitError<typeof CONFIG_ERRORS.code.invalid> {
  constructor(message: string) {
    super(CONFIG_ERRORS.code.invalid, message);
    this.name = "ControllerConfigError";
  }
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export interface WaypointResources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

const DEFAULT_WAYPOINT_RESOURCES: WaypointResources = { requests: { cpu: "100m", memory: "64Mi" }, limits: { memory: "512Mi" } };

/** The waypoint container's resources from JSON; a problem is recorded (and the default kept) when it is not a ResourceRequirements. */
function waypointResources(raw: string | undefined, problems: string[]): WaypointResources {
  if (!raw) return DEFAULT_WAYPOINT_RESOURCES;
  const fail = (why: string) => {
    problems.push(`AMBIT_WAYPOINT_RESOURCES=${JSON.stringify(raw)} ${why}`);
    return DEFAULT_WAYPOINT_RESOURCES;
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail("is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return fail('must be an object like {"requests": {"cpu": "100m"}}');
  const out: WaypointResources = {};
  for (const [key, list] of Object.entries(parsed)) {
    if (key !== "requests" && key !== "limits") return fail(`has "${key}"; only requests and limits are allowed`);
    if (typeof list !== "object" || list === null || Object.values(list).some((v) => typeof v !== "string"))
      return fail(`${key} must map resource names to quantities as strings`);
    out[key] = list as Record<string, string>;
  }
  return out;
}

export function loadControllerConfig(env: NodeJS.ProcessEnv = process.env): ControllerConfig {
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
  const list = (name: string, fallback: string[]): string[] =>
    env[name]
      ? env[name]!.split(",")
          .map((s) => s.trim())
          .filter(Boolean)
      : fallback;
  const trustDomain = env.TRUST_DOMAIN ?? "cluster.local";
  if (!/^[a-z0-9._-]+$/.test(trustDomain))
    problems.push(`TRUST_DOMAIN="${trustDomain}" is not a valid SPIFFE trust domain (lowercase letters, digits, '.', '-', '_')`);
  const logLevel = env.AMBIT_LOG_LEVEL ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`AMBIT_LOG_LEVEL="${logLevel}" must be one of ${LOG_LEVELS.join(", ")}`);
  const namespace = env.POD_NAMESPACE ?? "ambit-system";
  const agentServiceAccounts = list("AMBIT_AGENT_SERVICE_ACCOUNTS", [`${namespace}/ambit-agent`]);
  for (const sa of agentServiceAccounts)
    if (!/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(sa)) problems.push(`AMBIT_AGENT_SERVICE_ACCOUNTS entry "${sa}" must be namespace/name`);
  const config: ControllerConfig = {
    podName: env.POD_NAME ?? "ambit-controller",
    namespace,
    trustDomain,
    rootNamespace: env.AMBIT_ROOT_NAMESPACE ?? namespace,
    agentServiceAccounts,
    workloadCertTtlSeconds: int("AMBIT_WORKLOAD_CERT_TTL_SECONDS", 24 * 3600, 60, 90 * 24 * 3600),
    debounceMs: int("AMBIT_CONFIG_DEBOUNCE_MS", 100, 0, 10_000),
    servingNames: list("AMBIT_SERVING_NAMES", []),
    leaseDurationMs: int("AMBIT_LEASE_DURATION_MS", 15_000, 1_000, 600_000),
    renewDeadlineMs: int("AMBIT_RENEW_DEADLINE_MS", 10_000, 500, 600_000),
    retryPeriodMs: int("AMBIT_RETRY_PERIOD_MS", 2_000, 100, 60_000),
    logLevel,
    waypoint: {
      image: env.AMBIT_WAYPOINT_IMAGE ?? "ambit/waypoint:0.1.0",
      pullPolicy: env.AMBIT_WAYPOINT_PULL_POLICY ?? "IfNotPresent",
      resources: waypointResources(env.AMBIT_WAYPOINT_RESOURCES, problems),
      controllerAddress: env.AMBIT_CONTROLLER_ADDRESS ?? `ambit-controller.${namespace}.svc`,
    },
    ports: {
      configStream: int("AMBIT_CONFIG_STREAM_PORT", CONTROLLER_PORTS.configStream, 0, 65535),
      ca: int("AMBIT_CA_PORT", CONTROLLER_PORTS.ca, 0, 65535),
      monitoring: int("AMBIT_MONITORING_PORT", CONTROLLER_PORTS.monitoring, 0, 65535),
    },
  };
  if (!["Always", "IfNotPresent", "Never"].includes(config.waypoint.pullPolicy))
    problems.push(`AMBIT_WAYPOINT_PULL_POLICY="${config.waypoint.pullPolicy}" must be Always, IfNotPresent or Never`);
  if (!config.waypoint.image.trim()) problems.push("AMBIT_WAYPOINT_IMAGE must name an image");
  if (config.renewDeadlineMs >= config.leaseDurationMs) problems.push("AMBIT_RENEW_DEADLINE_MS must be shorter than AMBIT_LEASE_DURATION_MS");
  if (problems.length > 0) throw new ControllerConfigError(`invalid controller configuration:\n  - ${problems.join("\n  - ")}`);
  return config;
}
