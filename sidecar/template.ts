// What injection adds to a pod: the capture init container, the proxy container, their volumes and the pod's annotations and label.
import { CA_TOKEN_AUDIENCE } from "../contract/certificates.ts";
import { PROXY_OLD_SPACE_MIB, proxyNodeOptions } from "../contract/proxy-heap.ts";
import {
  CA_ROOT_CONFIGMAP,
  CA_ROOT_KEY,
  SIDECAR_CONTAINER,
  SIDECAR_INIT_CONTAINER,
  SIDECAR_MOUNTS,
  SIDECAR_PORTS,
  SIDECAR_UID,
  type SidecarStatus,
} from "../contract/sidecar.ts";

/** How the injected containers are configured: the image, and what the proxy needs to reach the controller. */
export interface SidecarInjectionSettings {
  /** Image of the sidecar program; it runs `init` (capture rules) and `proxy`. */
  image: string;
  /** Kubernetes' imagePullPolicy for it (default IfNotPresent). */
  pullPolicy?: string;
  trustDomain: string;
  /** How the proxy reaches the controller (CA and config stream), e.g. ambit-controller.ambit-system.svc. */
  controllerAddress: string;
  /** pino level of the proxy: fatal, error, warn, info, debug, trace or silent. */
  logLevel: string;
  /** Resources of both injected containers (default: requests cpu 10m, memory 40Mi). */
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  /** The proxy's V8 old-generation cap in MiB (default 96; the young generation is sized from it). */
  oldSpaceMiB?: number;
}

export function defaultInjectionSettings(): SidecarInjectionSettings {
  return {
    // The product's image (daemonset/images/Dockerfile.sidecar), named as the chart names its others, at its version.
    image: "ambit/sidecar:0.1.0",
    pullPolicy: "IfNotPresent",
    trustDomain: "cluster.local",
    controllerAddress: "ambit-controller.ambit-system.svc",
    logLevel: "info",
  };
}

export const DEFAULT_SIDECAR_RESOURCES = { requests: { cpu: "10m", memory: "40Mi" } } as const;
/** As the waypoint's (same engine, same measured budget). */
export const DEFAULT_SIDECAR_OLD_SPACE_MIB = PROXY_OLD_SPACE_MIB;

/** The volumes injection adds, by what they hold. */
export const SIDECAR_VOLUMES = { caToken: "ambit-ca-token", caRoot: "ambit-ca-root" } as const;

/** Pod annotation: `"false"` leaves the pod (or the workload's pods) without a sidecar. */
export const INJECT_ANNOTATION = "ambit.dev/inject";
/** Pod annotation: comma-separated ports whose inbound connections the init container leaves uncaptured. */
export const EXCLUDE_INBOUND_PORTS_ANNOTATION = "ambit.dev/exclude-inbound-ports";
/** Pod annotation: comma-separated CIDRs whose outbound connections the init container leaves uncaptured. */
export const EXCLUDE_OUTBOUND_CIDRS_ANNOTATION = "ambit.dev/exclude-outbound-cidrs";

/** The init container's environment: what its capture rules are built from (the sidecar's `init` reads these). */
export const INIT_ENV = {
  /** The proxy's uid: its own connections leave uncaptured. */
  proxyUid: "AMBIT_PROXY_UID",
  /** Copied from EXCLUDE_INBOUND_PORTS_ANNOTATION, normalised ("8080,9090"); absent when the pod has none. */
  excludeInboundPorts: "AMBIT_EXCLUDE_INBOUND_PORTS",
  /** Copied from EXCLUDE_OUTBOUND_CIDRS_ANNOTATION, normalised ("10.0.0.0/8,fd00::/8"); absent when the pod has none. */
  excludeOutboundCidrs: "AMBIT_EXCLUDE_OUTBOUND_CIDRS",
  /** The node's address (downward API status.hostIP). */
  hostIp: "HOST_IP",
} as const;

/** The sidecar's scrape annotations, added only when the pod sets none of the three itself. */
export const PROMETHEUS_ANNOTATIONS = {
  "prometheus.io/scrape": "true",
  "prometheus.io/port": String(SIDECAR_PORTS.metrics),
  "prometheus.io/path": "/metrics",
} as const;

/** What kubectl logs/exec pick without `-c`; set to the first application container, since the proxy now comes first. */
export const DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container";

/** What the status annotation records (SIDECAR_STATUS_ANNOTATION). */
export const SIDECAR_STATUS: SidecarStatus = {
  version: 1,
  initContainers: [SIDECAR_INIT_CONTAINER],
  containers: [SIDECAR_CONTAINER],
  volumes: [SIDECAR_VOLUMES.caToken, SIDECAR_VOLUMES.caRoot],
};

/** What the init container is told to leave uncaptured, already checked and normalised. */
export interface CaptureExclusions {
  inboundPorts?: string;
  outboundCidrs?: string;
}

const resourcesOf = (s: SidecarInjectionSettings) => structuredClone(s.resources ?? DEFAULT_SIDECAR_RESOURCES);

/** Sets the pod's capture rules, then exits; the app containers start after it. */
export function initContainer(s: SidecarInjectionSettings, exclusions: CaptureExclusions): Record<string, unknown> {
  const env: Array<Record<string, unknown>> = [
    { name: INIT_ENV.proxyUid, value: String(SIDECAR_UID) },
    // The node's address: kubelet probes come from it and reach the app directly, as on an ambient pod.
    { name: INIT_ENV.hostIp, valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
  ];
  if (exclusions.inboundPorts) env.push({ name: INIT_ENV.excludeInboundPorts, value: exclusions.inboundPorts });
  if (exclusions.outboundCidrs) env.push({ name: INIT_ENV.excludeOutboundCidrs, value: exclusions.outboundCidrs });
  return {
    name: SIDECAR_INIT_CONTAINER,
    image: s.image,
    imagePullPolicy: s.pullPolicy ?? "IfNotPresent",
    args: ["init"],
    env,
    resources: resourcesOf(s),
    securityContext: {
      // iptables-restore runs as root inside the pod's network namespace; the capabilities below are all it keeps.
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      // iptables takes its lock (/run/xtables.lock) on the container's own filesystem.
      readOnlyRootFilesystem: false,
      capabilities: {
        add: [
          // Writing the pod's nat table (the REDIRECT rules to 15001 and 15006) needs CAP_NET_ADMIN.
          "NET_ADMIN",
          // iptables-legacy reads and replaces its tables through a raw socket, which needs CAP_NET_RAW.
          "NET_RAW",
        ],
        drop: ["ALL"],
      },
    },
  };
}

const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/** The proxy: HBONE on 15008, the capture listeners, metrics and readiness, with the pod's identity from the CA. */
export function proxyContainer(s: SidecarInjectionSettings): Record<string, unknown> {
  return {
    name: SIDECAR_CONTAINER,
    image: s.image,
    imagePullPolicy: s.pullPolicy ?? "IfNotPresent",
    args: ["proxy"],
    env: [
      fieldEnv("POD_NAME", "metadata.name"),
      fieldEnv("POD_NAMESPACE", "metadata.namespace"),
      fieldEnv("POD_IP", "status.podIP"),
      fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
      fieldEnv("NODE_NAME", "spec.nodeName"),
      { name: "TRUST_DOMAIN", value: s.trustDomain },
      { name: "AMBIT_CONTROLLER_ADDRESS", value: s.controllerAddress },
      { name: "AMBIT_LOG_LEVEL", value: s.logLevel },
      // One proxy per pod: caps well above what it holds live keep its garbage from growing to V8's default limits.
      { name: "NODE_OPTIONS", value: proxyNodeOptions(s.oldSpaceMiB ?? DEFAULT_SIDECAR_OLD_SPACE_MIB) },
    ],
    ports: [
      { name: "ambit-hbone", containerPort: SIDECAR_PORTS.hbone, protocol: "TCP" },
      { name: "ambit-metrics", containerPort: SIDECAR_PORTS.metrics, protocol: "TCP" },
      { name: "ambit-ready", containerPort: SIDECAR_PORTS.readiness, protocol: "TCP" },
    ],
    readinessProbe: { httpGet: { path: "/healthz/ready", port: SIDECAR_PORTS.readiness }, periodSeconds: 2, failureThreshold: 3 },
    resources: resourcesOf(s),
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      // The capture rules let this uid's connections out uncaptured: the proxy's own must not loop back to it.
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      capabilities: { drop: ["ALL"] },
    },
    volumeMounts: [
      { name: SIDECAR_VOLUMES.caToken, mountPath: SIDECAR_MOUNTS.caToken, readOnly: true },
      { name: SIDECAR_VOLUMES.caRoot, mountPath: SIDECAR_MOUNTS.caRoot, readOnly: true },
    ],
  };
}

export function sidecarVolumes(): Array<Record<string, unknown>> {
  return [
    // The token the proxy presents to the CA and the config stream (audience ambit-ca), refreshed by the kubelet.
    {
      name: SIDECAR_VOLUMES.caToken,
      projected: { sources: [{ serviceAccountToken: { audience: CA_TOKEN_AUDIENCE, expirationSeconds: 3600, path: "token" } }] },
    },
    // The roots the controller's certificate chains to, published in every namespace.
    { name: SIDECAR_VOLUMES.caRoot, configMap: { name: CA_ROOT_CONFIGMAP, items: [{ key: CA_ROOT_KEY, path: CA_ROOT_KEY }] } },
  ];
}
