// Agent metrics: Istio's TCP metric names and labels, so existing Istio dashboards and alerts work, plus the agent's own.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/** The labels Istio puts on its TCP metrics, in Istio's order. */
export const TCP_LABELS = [
  "reporter",
  "source_workload",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_service",
  "destination_service_namespace",
  "destination_service_name",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_cluster",
  "request_protocol",
  "response_flags",
  "connection_security_policy",
] as const;

export type TcpLabelName = (typeof TCP_LABELS)[number];
export type TcpLabels = Partial<Record<TcpLabelName, string>>;

/** Istio fills labels it cannot know with "unknown" (and response_flags with "-"); dashboards rely on it. */
function complete(labels: TcpLabels): Record<TcpLabelName, string> {
  const out = {} as Record<TcpLabelName, string>;
  for (const name of TCP_LABELS) out[name] = labels[name] || (name === "response_flags" ? "-" : "unknown");
  return out;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly #opened: Counter<TcpLabelName>;
  readonly #closed: Counter<TcpLabelName>;
  readonly #sent: Counter<TcpLabelName>;
  readonly #received: Counter<TcpLabelName>;
  readonly podsCaptured: Gauge;
  readonly hboneConnections: Gauge<"direction">;
  readonly hboneStreams: Gauge<"direction">;
  readonly certificateExpiry: Gauge<"identity">;
  readonly connectionsRevoked: Counter;

  constructor() {
    const registers = [this.registry];
    const tcp = (name: string, help: string) => new Counter({ name, help, labelNames: TCP_LABELS, registers });
    this.#opened = tcp("istio_tcp_connections_opened_total", "Total TCP connections opened");
    this.#closed = tcp("istio_tcp_connections_closed_total", "Total TCP connections closed");
    this.#sent = tcp("istio_tcp_sent_bytes_total", "Total bytes sent during response in case of a TCP connection");
    this.#received = tcp("istio_tcp_received_bytes_total", "Total bytes received during request in case of a TCP connection");
    this.podsCaptured = new Gauge({ name: "ambit_pods_captured", help: "Pods on this node whose traffic the agent captures", registers });
    this.hboneConnections = new Gauge({ name: "ambit_hbone_connections", help: "Open HBONE (mTLS HTTP/2) connections", labelNames: ["direction"], registers });
    this.hboneStreams = new Gauge({ name: "ambit_hbone_streams", help: "Open HBONE streams (one per proxied TCP connection)", labelNames: ["direction"], registers });
    this.certificateExpiry = new Gauge({ name: "ambit_certificate_expiration_timestamp_seconds", help: "Expiry of the workload certificate the agent holds for an identity", labelNames: ["identity"], registers });
    this.connectionsRevoked = new Counter({ name: "ambit_policy_revoked_connections_total", help: "Live connections closed because a policy change denies them", registers });
    collectDefaultMetrics({ register: this.registry, prefix: "ambit_agent_" });
    // prom-client names these gauges *_total, which Prometheus' own lint (promtool) rejects.
    for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
      this.registry.removeSingleMetric(`ambit_agent_${name}`);
    }
  }

  connectionOpened(labels: TcpLabels): void {
    this.#opened.inc(complete(labels));
  }

  /** Counts the close and the bytes of the whole connection (sent = towards the client, as Istio reports it). */
  connectionClosed(labels: TcpLabels, bytes: { sent: number; received: number }): void {
    const full = complete(labels);
    this.#closed.inc(full);
    if (bytes.sent > 0) this.#sent.inc(full, bytes.sent);
    if (bytes.received > 0) this.#received.inc(full, bytes.received);
  }

  /** Prometheus text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
