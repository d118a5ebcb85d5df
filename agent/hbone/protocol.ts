// HBONE wire details shared by client and server: flow-control sizes and the CONNECT authority format.
import net from "node:net";

/** Windows sized for throughput, as ztunnel: 4 MiB per stream, 16 MiB per connection. */
export const HBONE_SETTINGS = {
  settings: { initialWindowSize: 4 * 1024 * 1024, maxConcurrentStreams: 1000 },
  connectionWindow: 16 * 1024 * 1024,
} as const;

/** `10.244.1.2:8080` -> target; anything else (names, IPv6, bad ports) -> undefined. */
export function parseAuthority(authority: string | undefined): { ip: string; port: number } | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(authority ?? "");
  if (!m || !net.isIPv4(m[1]!)) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { ip: m[1]!, port };
}
