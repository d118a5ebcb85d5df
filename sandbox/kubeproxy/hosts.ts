// A pod's /etc/hosts that resolves Service names the way cluster DNS would (the sandbox runs no DNS server).
import type { KubeService } from "./types.ts";

export interface HostsEntry {
  ip: string;
  names: string[];
}

/**
 * localhost first, then `extra` (e.g. the pod's own hostname), then one line per Service with a
 * ClusterIP, sorted by namespace and name: `<ip> <name>.<ns>.svc.<domain> <name>.<ns>.svc <name>.<ns>`,
 * plus the bare `<name>` for Services in the pod's own namespace. Headless and ExternalName Services
 * have no ClusterIP and are left out.
 */
export function renderHostsFile(services: readonly KubeService[], podNamespace: string, clusterDomain: string, extra: readonly HostsEntry[] = []): string {
  const lines = ["127.0.0.1 localhost", "::1 localhost"];
  for (const entry of extra) lines.push(`${entry.ip} ${entry.names.join(" ")}`);
  const withIp = services
    .filter((svc) => svc.spec?.type !== "ExternalName")
    .map((svc) => ({ name: svc.metadata.name, namespace: svc.metadata.namespace ?? "default", ip: svc.spec?.clusterIP ?? "" }))
    .filter((svc) => svc.ip !== "" && svc.ip !== "None")
    .sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
  for (const { name, namespace, ip } of withIp) {
    const names = [`${name}.${namespace}.svc.${clusterDomain}`, `${name}.${namespace}.svc`, `${name}.${namespace}`];
    if (namespace === podNamespace) names.push(name);
    lines.push(`${ip} ${names.join(" ")}`);
  }
  return lines.join("\n") + "\n";
}
