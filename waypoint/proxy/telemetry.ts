// Istio's request labels for one waypoint request: who sent the stream, the endpoint chosen, the protocol and the outcome.
import { type SpiffeId, formatSpiffeId, sameIdentity } from "../../agent/identity/index.ts";
import type { Workload, WorkloadIndex } from "../../agent/state/index.ts";
import type { RequestLabels } from "./metrics.ts";

/**
 * The DNS suffix of Service names in `destination_service` (`reviews.demo.svc.cluster.local`): Kubernetes'
 * default cluster domain. Istio's dashboards select on the full name.
 */
export const CLUSTER_DOMAIN = "cluster.local";

/** Who sent a CONNECT stream: the certificate's identity, and the pod at its address when that pod holds the identity. */
export interface StreamSource {
  identity: SpiffeId;
  workload: Workload | undefined;
}

/**
 * As the agent's `hboneSourceAddress` does: the peer address is the source pod's (the source agent dials from it),
 * and a pod found there counts only if it holds the peer's identity, so no certificate holder borrows another pod's
 * labels.
 */
export function streamSource(index: WorkloadIndex, identity: SpiffeId, address: string | undefined): StreamSource {
  const workload = address === undefined ? undefined : index.workloadByIp(address);
  const owns =
    workload && sameIdentity({ trustDomain: identity.trustDomain, namespace: workload.namespace, serviceAccount: workload.serviceAccount }, identity);
  return { identity, workload: owns ? workload : undefined };
}

/** Istio's `app` and `version` labels: the pod's `app`/`version` labels, or their app.kubernetes.io forms. */
const appOf = (w: Workload) => w.labels.app ?? w.labels["app.kubernetes.io/name"];
const versionOf = (w: Workload) => w.labels.version ?? w.labels["app.kubernetes.io/version"];

export function sourceLabels(source: StreamSource): RequestLabels {
  const { identity, workload } = source;
  return {
    source_workload: workload?.workloadName,
    source_workload_namespace: workload?.namespace ?? identity.namespace,
    source_principal: formatSpiffeId(identity),
    source_app: workload && appOf(workload),
    source_version: workload && versionOf(workload),
  };
}

/** The request's destination: the Service it went to (after routing) and the endpoint of its last attempt. */
export interface RequestDestination {
  service: { namespace: string; name: string } | undefined;
  endpoint: { identity: SpiffeId; workload?: Workload } | undefined;
}

export function destinationLabels({ service, endpoint }: RequestDestination): RequestLabels {
  const workload = endpoint?.workload;
  return {
    destination_workload: workload?.workloadName,
    destination_workload_namespace: workload?.namespace ?? endpoint?.identity.namespace,
    destination_principal: endpoint && formatSpiffeId(endpoint.identity),
    destination_app: workload && appOf(workload),
    destination_version: workload && versionOf(workload),
    destination_service: service && `${service.name}.${service.namespace}.svc.${CLUSTER_DOMAIN}`,
    destination_service_name: service?.name,
    destination_service_namespace: service?.namespace,
  };
}

/** Istio's `request_protocol`: gRPC by its content type, else HTTP (whichever version carried it). */
export const requestProtocol = (contentType: string | string[] | undefined): "grpc" | "http" =>
  typeof contentType === "string" && contentType.startsWith("application/grpc") ? "grpc" : "http";

/**
 * A gRPC request's status: the backend's `grpc-status`, else the one gRPC derives from the HTTP status the client
 * got (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md), as Envoy does for its own replies.
 */
export function grpcStatus(httpStatus: number, sent: string | undefined): string | undefined {
  if (sent !== undefined) return sent;
  if (httpStatus === 200 || httpStatus === 0) return undefined;
  const mapped: Record<number, number> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };
  return String(mapped[httpStatus] ?? 2);
}
