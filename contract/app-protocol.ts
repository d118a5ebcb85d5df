// What a Service port declares it speaks (Kubernetes appProtocol, or Istio's port-name convention), as waypoints read it.

/** How a waypoint serves a port: as HTTP, at L4 without inspection, or by detecting the protocol from the first bytes. */
export type PortProtocol = "http" | "opaque" | "detect";

/** appProtocol values (and port-name prefixes) that mean HTTP of some version: Istio's list plus Kubernetes' standard names. */
const HTTP = new Set(["http", "http2", "grpc", "grpc-web", "kubernetes.io/h2c", "kubernetes.io/ws", "h2c", "ws"]);
/** Values that mean a protocol the waypoint must not parse: TLS it cannot see into, and known TCP protocols. */
const OPAQUE = new Set(["tcp", "tls", "https", "kubernetes.io/wss", "mysql", "mongo", "redis", "postgresql", "kafka", "amqp", "zookeeper"]);

/** The protocol a port declares: its appProtocol, else the part of its name before the first '-' (Istio's convention). */
export function declaredAppProtocol(port: { name?: string; appProtocol?: string }): string | undefined {
  const declared = port.appProtocol?.trim().toLowerCase();
  if (declared) return declared;
  const prefix = port.name?.toLowerCase().split("-")[0];
  return prefix && (HTTP.has(prefix) || OPAQUE.has(prefix)) ? prefix : undefined;
}

/** Unknown or absent declarations are detected, as Istio does for undeclared ports. */
export function portProtocol(appProtocol: string | undefined): PortProtocol {
  if (appProtocol === undefined) return "detect";
  if (HTTP.has(appProtocol)) return "http";
  if (OPAQUE.has(appProtocol)) return "opaque";
  return "detect";
}
