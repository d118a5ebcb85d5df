// What the chart installs that programs outside the agent (CLI, sandbox, tests) find the mesh by: namespace, agent pods, ports, policy API group.

/** The release namespace the chart is installed into by default; also the policy root namespace (mesh-wide policies). */
export const DEFAULT_SYSTEM_NAMESPACE = "ambit-system";

/** The agent DaemonSet, its pods' selector label and service account (daemonset/templates/agent.yaml). */
export const AGENT_DAEMONSET = "ambit-agent";
export const AGENT_POD_LABELS: Readonly<Record<string, string>> = { app: "ambit-agent" };
export const AGENT_SERVICE_ACCOUNT = "ambit-agent";

/** Ports fixed by the design (the numbers Istio users know). */
export const AGENT_PORTS = {
  /** In each captured pod's netns: outbound capture. */
  outbound: 15001,
  /** In each captured pod's netns: inbound plaintext capture. */
  inboundPlaintext: 15006,
  /** In each captured pod's netns: HBONE (mTLS HTTP/2 CONNECT). */
  hbone: 15008,
  /** In the agent's netns, localhost only: the admin API (`/config_dump`), reached by port-forward. */
  admin: 15000,
  metrics: 15020,
  readiness: 15021,
} as const;

/** The policy CRDs' group and version, as written in `apiVersion`. */
export const POLICY_API_VERSION = "security.ambit.dev/v1";
export const POLICY_PLURALS = { authorization: "authorizationpolicies", peerAuthentication: "peerauthentications" } as const;
