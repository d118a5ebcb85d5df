// Sidecar mode's contract: the namespace label, the injected containers' names, ports, user and annotation, shared by `ambit inject`, the controller and the sidecar.
/** `ambit.dev/dataplane-mode=sidecar` on a Namespace: its new pods get a sidecar (the sandbox injects; elsewhere `ambit inject`). */
export const DATAPLANE_MODE_SIDECAR = "sidecar";

/**
 * Set on every injected pod (as Istio's `sidecar.istio.io/status`): JSON naming what was added. The controller reads it
 * to know the pod terminates HBONE itself on 15008, and `ambit inject` to leave an injected workload as it is.
 */
export const SIDECAR_STATUS_ANNOTATION = "ambit.dev/sidecar-status";

export interface SidecarStatus {
  /** Version of the injection template. */
  version: 1;
  initContainers: string[];
  containers: string[];
  volumes: string[];
}

/** The container names injection adds. */
export const SIDECAR_CONTAINER = "ambit-proxy";
export const SIDECAR_INIT_CONTAINER = "ambit-init";

/** The user the proxy runs as; the capture rules let this user's own connections out uncaptured (Istio's 1337). */
export const SIDECAR_UID = 1337;

/** Ports the sidecar listens on inside its pod: the agent's numbers, so ambient and sidecar pods look the same to peers. */
export const SIDECAR_PORTS = {
  /** Outbound capture (REDIRECT of the app's connections). */
  outbound: 15001,
  /** Inbound plaintext capture (peers outside the mesh, kubelet probes). */
  inboundPlaintext: 15006,
  /** HBONE: mTLS HTTP/2 CONNECT from ambient agents, waypoints and other sidecars. */
  hbone: 15008,
  /** Localhost admin API (config dump, memory). */
  admin: 15000,
  /** Prometheus metrics. */
  metrics: 15020,
  /** `/healthz/ready`. */
  readiness: 15021,
} as const;

/** Where the injected volumes are mounted in the proxy container. */
export const SIDECAR_MOUNTS = {
  /** Projected service-account token with audience ambit-ca (the CA and config stream check it). */
  caToken: "/var/run/secrets/tokens/ambit-ca",
  /** ConfigMap `ambit-ca-root` of the pod's namespace: the roots the controller's certificate chains to. */
  caRoot: "/var/run/secrets/ambit/ca-root",
} as const;

/** The ConfigMap of trust roots the controller publishes in every namespace (key `root-cert.pem`), as Istio's istio-ca-root-cert. */
export const CA_ROOT_CONFIGMAP = "ambit-ca-root";
export const CA_ROOT_KEY = "root-cert.pem";

/** Whether a pod carries an Ambit sidecar (what injection recorded on it). */
export function hasSidecar(pod: { metadata: { annotations?: Record<string, string> | undefined } }): boolean {
  return pod.metadata.annotations?.[SIDECAR_STATUS_ANNOTATION] !== undefined;
}
