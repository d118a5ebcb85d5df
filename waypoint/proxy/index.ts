// Public surface of the L7 data path the waypoint and the sidecar share: the proxy that serves streams at L7 (roles), its errors, metrics, flags and tracing.
export { type Addressed, type ProxyRole, WaypointProxy, type WaypointProxyOptions } from "./proxy.ts";
export { type AcceptTarget, type ConnectStream } from "./hbone-listener.ts";
export { WaypointError, WaypointErrorCode } from "./errors.ts";
export { type Endpoint, HBONE_PORT, type OpenUpstream, UpstreamPool, asSocket, hboneOpener } from "./upstream.ts";
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
