// Public surface of the waypoint's data path: the proxy that serves HBONE CONNECT streams at L7, its errors, metrics, flags and tracing.
export { WaypointProxy, type WaypointProxyOptions } from "./proxy.ts";
export { WaypointError, WaypointErrorCode } from "./errors.ts";
export { type Endpoint, HBONE_PORT, UpstreamPool, asSocket } from "./upstream.ts";
export { type DetectedProtocol, classify, detectProtocol } from "./sniff.ts";
export { DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_BACKOFF_MS, backoffMs } from "./forward.ts";
export { DURATION_BUCKETS_MS, REQUEST_LABELS, type RequestLabels, SIZE_BUCKETS_BYTES, WaypointMetrics } from "./metrics.ts";
export { RESPONSE_FLAGS, type ResponseFlag, ResponseFlags } from "./flags.ts";
export {
  type B3Context,
  NEW_TRACE_SAMPLED,
  type TraceHop,
  type TraceParent,
  type TraceRandom,
  formatTraceparent,
  parseB3Multi,
  parseB3Single,
  parseTraceparent,
  traceHop,
  withTrace,
} from "./tracing.ts";
