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
const labelValue = (labels: TcpLabels, name: TcpLabelName): string => labels[name] || (name === "response_flags" ? "-" : "unknown");

function complete(labels: TcpLabels): Record<TcpLabelName, string> {
  const out = {} as Record<TcpLabelName, string>;
  for (const name of TCP_LABELS) out[name] = labelValue(labels, name);
  return out;
}

/** prom-client's process and Node.js metrics under a program's prefix (`ambit_agent_`, `ambit_waypoint_`). */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  // Event loop delay sampled every 100 ms rather than prom-client's 10 ms: its timer would wake an idle process
  // 100 times a second. Stalls that matter (tens of milliseconds) still show in the histogram.
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: 100 });
  // prom-client names these gauges *_total, which Prometheus' own lint (promtool) rejects.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(`${prefix}${name}`);
  }
}

type TcpCount = "opened" | "closed" | "sent" | "received";

/** One TCP series: Istio's full label set, what the data path counted, and what was handed to the counters. */
interface TcpSeries {
  labels: Record<TcpLabelName, string>;
  counted: Record<TcpCount, number>;
  reported: Record<TcpCount, number>;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly #series = new Map<string, TcpSeries>();
  readonly podsCaptured: Gauge;
  readonly hboneConnections: Gauge<"direction">;
  readonly hboneStreams: Gauge<"direction">;
  readonly certificateExpiry: Gauge<"identity">;
  readonly connectionsRevoked: Counter;
  readonly connectionsRefused: Counter<"direction" | "reason">;
  readonly cniDeletes: Counter<"outcome">;
  readonly captureRepairs: Counter;

  constructor() {
    const registers = [this.registry];
    const series = this.#series;
    // Counted on the data path into plain numbers, handed to prom-client when scraped: its inc() validates and
    // hashes all 19 labels on every call, up to four calls per connection and reporter.
    const tcp = (name: string, help: string, count: TcpCount) =>
      new Counter({
        name,
        help,
        labelNames: TCP_LABELS,
        registers,
        collect() {
          for (const s of series.values()) {
            const delta = s.counted[count] - s.reported[count];
            if (delta <= 0) continue;
            this.inc(s.labels, delta);
            s.reported[count] = s.counted[count];
          }
        },
      });
    tcp("istio_tcp_connections_opened_total", "Total TCP connections opened", "opened");
    tcp("istio_tcp_connections_closed_total", "Total TCP connections closed", "closed");
    tcp("istio_tcp_sent_bytes_total", "Total bytes sent during response in case of a TCP connection", "sent");
    tcp("istio_tcp_received_bytes_total", "Total bytes received during request in case of a TCP connection", "received");
    this.podsCaptured = new Gauge({ name: "ambit_pods_captured", help: "Pods on this node whose traffic the agent captures", registers });
    this.hboneConnections = new Gauge({ name: "ambit_hbone_connections", help: "Open HBONE (mTLS HTTP/2) connections", labelNames: ["direction"], registers });
    this.hboneStreams = new Gauge({
      name: "ambit_hbone_streams",
      help: "Open HBONE streams (one per proxied TCP connection)",
      labelNames: ["direction"],
      registers,
    });
    this.certificateExpiry = new Gauge({
      name: "ambit_certificate_expiration_timestamp_seconds",
      help: "Expiry of the workload certificate the agent holds for an identity",
      labelNames: ["identity"],
      registers,
    });
    this.connectionsRevoked = new Counter({
      name: "ambit_policy_revoked_connections_total",
      help: "Live connections closed because a policy change denies them",
      registers,
    });
    this.cniDeletes = new Counter({
      name: "ambit_cni_deletes_total",
      help: "CNI DEL requests by outcome: released, or kept because the pod still runs or the API could not confirm",
      labelNames: ["outcome"],
      registers,
    });
    this.captureRepairs = new Counter({
      name: "ambit_capture_repairs_total",
      help: "Captured pods whose rules or listeners had gone missing and were installed again",
      registers,
    });
    this.connectionsRefused = new Counter({
      name: "ambit_connections_refused_total",
      help: "Connections and HBONE streams refused before policy: to the agent's own ports (agent_port, self_connect), a claimed source address that is not the peer's (source_address), a service without endpoints (no_endpoint)",
      labelNames: ["direction", "reason"],
      registers,
    });
    collectProcessMetrics(this.registry, "ambit_agent_");
  }

  connectionOpened(labels: TcpLabels): void {
    this.#seriesOf(labels).counted.opened++;
  }

  /** Counts the close and the bytes of the whole connection (sent = towards the client, as Istio reports it). */
  connectionClosed(labels: TcpLabels, bytes: { sent: number; received: number }): void {
    const counted = this.#seriesOf(labels).counted;
    counted.closed++;
    counted.sent += bytes.sent;
    counted.received += bytes.received;
  }

  #seriesOf(labels: TcpLabels): TcpSeries {
    let key = "";
    for (const name of TCP_LABELS) key += `${labelValue(labels, name)}\u0000`;
    let s = this.#series.get(key);
    if (!s) {
      // The full label object only for a new series: the data path looks series up on every open and close.
      s = { labels: complete(labels), counted: { opened: 0, closed: 0, sent: 0, received: 0 }, reported: { opened: 0, closed: 0, sent: 0, received: 0 } };
      this.#series.set(key, s);
    }
    return s;
  }

  /** Prometheus text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
