// Waypoint request metrics under Istio's names, labels and buckets (reporter="waypoint"), so Istio's HTTP dashboards read them.
import { Counter, Histogram, Registry } from "prom-client";
import { TCP_LABELS, collectProcessMetrics } from "../../agent/metrics/index.ts";

/** The labels of Istio's standard request metrics: its TCP labels (as the agent reports them) and the response's codes. */
export const REQUEST_LABELS = [...TCP_LABELS, "response_code", "grpc_response_status"] as const;

export type RequestLabelName = (typeof REQUEST_LABELS)[number];
export type RequestLabels = Partial<Record<RequestLabelName, string>>;

/** Envoy's default histogram buckets (milliseconds), which Istio keeps for `istio_request_duration_milliseconds`. */
export const DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Sizes from 1 B to 1 GB in powers of ten: a body size's order of magnitude is what a size panel shows. */
export const SIZE_BUCKETS_BYTES = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

/**
 * What Istio reports for a label it cannot know: "unknown", except `response_flags` ("-", none) and
 * `grpc_response_status` (empty for a request that is not gRPC); dashboards and alerts match those values.
 */
function complete(labels: RequestLabels): Record<RequestLabelName, string> {
  const out = {} as Record<RequestLabelName, string>;
  for (const name of REQUEST_LABELS) out[name] = labels[name] || (name === "response_flags" ? "-" : name === "grpc_response_status" ? "" : "unknown");
  return out;
}

/** Sizes and duration of one request, as Istio measures them: bodies only, duration until the response ended. */
export interface RequestMeasures {
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

export class WaypointMetrics {
  /** This waypoint's own registry (request metrics and process metrics), served on its metrics port. */
  readonly registry = new Registry();
  readonly #requests: Counter<RequestLabelName>;
  readonly #duration: Histogram<RequestLabelName>;
  readonly #requestBytes: Histogram<RequestLabelName>;
  readonly #responseBytes: Histogram<RequestLabelName>;
  readonly #series = new Map<
    string,
    {
      requests: Counter.Internal;
      duration: Histogram.Internal<RequestLabelName>;
      requestBytes: Histogram.Internal<RequestLabelName>;
      responseBytes: Histogram.Internal<RequestLabelName>;
    }
  >();

  /** `processPrefix`: of the process metrics (CPU, memory) this program adds, e.g. `ambit_sidecar_` for the sidecar. */
  constructor(processPrefix = "ambit_waypoint_") {
    const registers = [this.registry];
    const labelNames = REQUEST_LABELS;
    this.#requests = new Counter({ name: "istio_requests_total", help: "Total requests", labelNames, registers });
    this.#duration = new Histogram({
      name: "istio_request_duration_milliseconds",
      help: "Request duration in milliseconds",
      labelNames,
      buckets: DURATION_BUCKETS_MS,
      registers,
    });
    this.#requestBytes = new Histogram({ name: "istio_request_bytes", help: "Request body sizes", labelNames, buckets: SIZE_BUCKETS_BYTES, registers });
    this.#responseBytes = new Histogram({ name: "istio_response_bytes", help: "Response body sizes", labelNames, buckets: SIZE_BUCKETS_BYTES, registers });
    collectProcessMetrics(this.registry, processPrefix);
  }

  /** One client request, however many attempts it took: counted once, when its response ended. */
  request(labels: RequestLabels, measures: RequestMeasures): void {
    const series = this.#seriesOf(complete(labels));
    series.requests.inc();
    series.duration.observe(measures.durationMs);
    series.requestBytes.observe(measures.requestBytes);
    series.responseBytes.observe(measures.responseBytes);
  }

  /**
   * The four metrics' children for one label set, made once: prom-client checks and hashes 21 labels on every call
   * otherwise, four times per request (a visible share of the waypoint's CPU). There are as many entries as series.
   */
  #seriesOf(all: Record<RequestLabelName, string>) {
    const key = REQUEST_LABELS.map((l) => all[l]).join("\u0000");
    let series = this.#series.get(key);
    if (!series) {
      series = {
        requests: this.#requests.labels(all),
        duration: this.#duration.labels(all),
        requestBytes: this.#requestBytes.labels(all),
        responseBytes: this.#responseBytes.labels(all),
      };
      this.#series.set(key, series);
    }
    return series;
  }
}
