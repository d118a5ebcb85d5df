// What the controller creates for a waypoint Gateway: its ServiceAccount (the waypoint's identity), trust roots, Deployment and Service, owned by the Gateway.
import { GATEWAY_API_VERSION, GATEWAY_NAME_LABEL, WAYPOINT_LISTENER } from "../../contract/waypoint.ts";
import { DATAPLANE_MODE_LABEL, DATAPLANE_MODE_NONE } from "../../contract/capture-intent.ts";
import { CA_TOKEN_AUDIENCE } from "../../contract/certificates.ts";
import { AGENT_PORTS } from "../../contract/install.ts";
import { proxyNodeOptions } from "../../contract/proxy-heap.ts";
import type { KubeObject } from "../../kube/client.ts";

/** Ports of a waypoint pod besides HBONE: Istio's numbers, as on the agent. */
export const WAYPOINT_PORTS = { hbone: WAYPOINT_LISTENER.port, metrics: AGENT_PORTS.metrics, readiness: AGENT_PORTS.readiness } as const;

/** Marks what the controller made for a Gateway, so it only ever updates or deletes its own objects. */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "ambit-controller";

export interface WaypointDeploymentSettings {
  /** Image of the waypoint program (the chart's `waypoint.image`). */
  image: string;
  pullPolicy: string;
  trustDomain: string;
  /** How the waypoint reaches the controller (CA and config stream), e.g. ambit-controller.ambit-system.svc. */
  controllerAddress: string;
  logLevel: string;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
}

/** Deleted with its Gateway: Kubernetes' garbage collector follows this reference. */
function ownedBy(gateway: KubeObject): KubeObject["metadata"] {
  return {
    name: gateway.metadata.name,
    namespace: gateway.metadata.namespace,
    labels: { [GATEWAY_NAME_LABEL]: gateway.metadata.name, [MANAGED_BY_LABEL]: MANAGED_BY },
    ownerReferences: [
      {
        apiVersion: GATEWAY_API_VERSION,
        kind: "Gateway",
        name: gateway.metadata.name,
        uid: gateway.metadata.uid ?? "",
        controller: true,
        blockOwnerDeletion: true,
      },
    ],
  };
}

/** The key of the trust roots in a waypoint's ConfigMap, as in the agents' ambit-ca-root. */
export const TRUST_ROOTS_KEY = "root-cert.pem";

/**
 * The four objects of one waypoint, in the order they must exist (the pods need the ServiceAccount and the roots).
 * `trustRootsPem`: the CA's roots, copied into the Gateway's namespace (a waypoint may not read the controller's).
 */
export function waypointObjects(gateway: KubeObject, s: WaypointDeploymentSettings, trustRootsPem: string): KubeObject[] {
  const name = gateway.metadata.name;
  const meta = ownedBy(gateway);
  const podLabels = { [GATEWAY_NAME_LABEL]: name };
  const serviceAccount: KubeObject = { apiVersion: "v1", kind: "ServiceAccount", metadata: meta };
  const roots: KubeObject = { apiVersion: "v1", kind: "ConfigMap", metadata: meta, data: { [TRUST_ROOTS_KEY]: trustRootsPem } };
  const deployment: KubeObject = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta,
    spec: {
      replicas: 1,
      selector: { matchLabels: podLabels },
      template: {
        metadata: {
          // Not captured: a waypoint terminates and originates HBONE itself, as the agent does for captured pods.
          labels: { ...podLabels, [DATAPLANE_MODE_LABEL]: DATAPLANE_MODE_NONE },
          annotations: { "prometheus.io/scrape": "true", "prometheus.io/port": String(WAYPOINT_PORTS.metrics), "prometheus.io/path": "/metrics" },
        },
        spec: {
          serviceAccountName: name,
          // Its identity comes from the CA with the bound token below; the default API token is not needed.
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: "waypoint",
              image: s.image,
              imagePullPolicy: s.pullPolicy,
              env: [
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
                { name: "SERVICE_ACCOUNT", valueFrom: { fieldRef: { fieldPath: "spec.serviceAccountName" } } },
                { name: "AMBIT_GATEWAY_NAME", value: name },
                { name: "TRUST_DOMAIN", value: s.trustDomain },
                { name: "AMBIT_CONTROLLER_ADDRESS", value: s.controllerAddress },
                { name: "AMBIT_LOG_LEVEL", value: s.logLevel },
                // Old and young generation capped (contract/proxy-heap.ts says why each).
                { name: "NODE_OPTIONS", value: proxyNodeOptions() },
              ],
              ports: [
                { name: "hbone", containerPort: WAYPOINT_PORTS.hbone, protocol: "TCP" },
                { name: "metrics", containerPort: WAYPOINT_PORTS.metrics, protocol: "TCP" },
                { name: "readiness", containerPort: WAYPOINT_PORTS.readiness, protocol: "TCP" },
              ],
              readinessProbe: { httpGet: { path: "/healthz/ready", port: WAYPOINT_PORTS.readiness }, periodSeconds: 2, failureThreshold: 3 },
              resources: s.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                runAsUser: 1337,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [
                { name: "ca-token", mountPath: "/var/run/secrets/tokens/ambit-ca", readOnly: true },
                { name: "ca-root", mountPath: "/var/run/secrets/ambit/ca-root", readOnly: true },
              ],
            },
          ],
          volumes: [
            {
              name: "ca-token",
              projected: { sources: [{ serviceAccountToken: { audience: CA_TOKEN_AUDIENCE, expirationSeconds: 3600, path: "token" } }] },
            },
            // The roots the controller's certificate chains to, for the waypoint's first connection to it.
            { name: "ca-root", configMap: { name, items: [{ key: TRUST_ROOTS_KEY, path: TRUST_ROOTS_KEY }] } },
          ],
        },
      },
    },
  };
  const service: KubeObject = {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta,
    spec: {
      selector: podLabels,
      ports: [{ name: "mesh", port: WAYPOINT_LISTENER.port, targetPort: WAYPOINT_PORTS.hbone, protocol: "TCP", appProtocol: "all" }],
    },
  };
  return [serviceAccount, roots, deployment, service];
}
