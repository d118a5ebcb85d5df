// Renders Services and EndpointSlices into the iptables-restore input of a node (nat for DNAT, filter for rejects), like kube-proxy's iptables mode.
import { createHash } from "node:crypto";
import { type KubeEndpointSlice, type KubeService, SERVICE_NAME_LABEL } from "./types.ts";

export interface ServiceEndpoint {
  ip: string;
  port: number;
}

/** One ClusterIP:port of a Service and the ready endpoints behind it. */
export interface ServicePortRule {
  /** `namespace/name`. */
  service: string;
  /** The Service port's name, "" when unnamed. */
  portName: string;
  protocol: "tcp" | "udp";
  clusterIP: string;
  port: number;
  /** Sorted by address, then port. Empty: the port is rejected. */
  endpoints: ServiceEndpoint[];
}

export interface ProxyRuleOptions {
  /** The node the rules are for: `internalTrafficPolicy: Local` keeps only this node's endpoints. */
  nodeName: string;
}

/** kube-proxy's masquerade bit: packets that must leave with the node's address (hairpin). */
export const MASQUERADE_MARK = "0x4000/0x4000";

const PROTOCOLS: Record<string, ServicePortRule["protocol"]> = { TCP: "tcp", UDP: "udp" };

const ipv4Key = (ip: string): number => ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
const isIpv4 = (ip: string): boolean => /^\d{1,3}(\.\d{1,3}){3}$/.test(ip);

/**
 * Derives the rules for every IPv4 ClusterIP port. The endpoint port comes from the EndpointSlice port
 * with the same name and protocol as the Service port: the EndpointSlice controller has already resolved
 * numeric and named targetPorts per pod, which is how kube-proxy reads them too. Endpoints whose
 * `conditions.ready` is false are left out; an unset condition counts as ready, as the API documents.
 */
export function servicePortRules(services: readonly KubeService[], slices: readonly KubeEndpointSlice[], opts: ProxyRuleOptions): ServicePortRule[] {
  const rules: ServicePortRule[] = [];
  for (const svc of services) {
    const clusterIP = svc.spec?.clusterIP ?? "";
    if (svc.spec?.type === "ExternalName" || !isIpv4(clusterIP)) continue;
    const namespace = svc.metadata.namespace ?? "default";
    const own = slices.filter(
      (s) => (s.metadata.namespace ?? "default") === namespace && s.metadata.labels?.[SERVICE_NAME_LABEL] === svc.metadata.name && s.addressType === "IPv4",
    );
    const localOnly = svc.spec?.internalTrafficPolicy === "Local";
    for (const sp of svc.spec?.ports ?? []) {
      const protocol = PROTOCOLS[sp.protocol ?? "TCP"];
      if (!protocol) continue;
      const portName = sp.name ?? "";
      const endpoints = new Map<string, ServiceEndpoint>();
      for (const slice of own) {
        const slicePort = (slice.ports ?? []).find((p) => (p.name ?? "") === portName && PROTOCOLS[p.protocol ?? "TCP"] === protocol);
        if (typeof slicePort?.port !== "number") continue;
        for (const ep of slice.endpoints ?? []) {
          const ip = ep.addresses[0];
          if (ip === undefined || !isIpv4(ip) || ep.conditions?.ready === false) continue;
          if (localOnly && ep.nodeName !== opts.nodeName) continue;
          endpoints.set(`${ip}:${slicePort.port}`, { ip, port: slicePort.port });
        }
      }
      rules.push({
        service: `${namespace}/${svc.metadata.name}`,
        portName,
        protocol,
        clusterIP,
        port: sp.port,
        endpoints: [...endpoints.values()].sort((a, b) => ipv4Key(a.ip) - ipv4Key(b.ip) || a.port - b.port),
      });
    }
  }
  return rules.sort((a, b) => compare(a.service, b.service) || compare(a.portName, b.portName) || compare(a.protocol, b.protocol));
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const chainHash = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 16).toUpperCase();
const label = (rule: ServicePortRule): string => (rule.portName ? `${rule.service}:${rule.portName}` : rule.service);
const serviceChain = (rule: ServicePortRule): string => `AMBIT-SVC-${chainHash(`${label(rule)}/${rule.protocol}`)}`;
const endpointChain = (rule: ServicePortRule, ep: ServiceEndpoint): string => `AMBIT-SEP-${chainHash(`${label(rule)}/${rule.protocol}/${ep.ip}:${ep.port}`)}`;
const portMatch = (rule: ServicePortRule): string => `-d ${rule.clusterIP}/32 -p ${rule.protocol}`;
const comment = (text: string): string => `-m comment --comment "${text}"`;

/**
 * The complete `*filter` and `*nat` tables of a node netns, for one atomic `iptables-restore` (without
 * --noflush, so stale rules vanish). Ports with endpoints are DNATed, picking an endpoint uniformly at
 * random; ports without endpoints are rejected in filter (tcp-reset / port-unreachable) so clients fail
 * at once instead of timing out. Session affinity and NodePorts are not implemented.
 */
export function renderProxyRules(services: readonly KubeService[], slices: readonly KubeEndpointSlice[], opts: ProxyRuleOptions): string {
  const rules = servicePortRules(services, slices, opts);

  const filter = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":AMBIT-SERVICES - [0:0]"];
  filter.push(
    `-A FORWARD -m conntrack --ctstate NEW ${comment("ambit service portals")} -j AMBIT-SERVICES`,
    `-A OUTPUT -m conntrack --ctstate NEW ${comment("ambit service portals")} -j AMBIT-SERVICES`,
  );
  for (const rule of rules.filter((r) => r.endpoints.length === 0)) {
    const reject = rule.protocol === "tcp" ? "tcp-reset" : "icmp-port-unreachable";
    filter.push(
      `-A AMBIT-SERVICES ${portMatch(rule)} ${comment(`${label(rule)} has no endpoints`)} -m ${rule.protocol} --dport ${rule.port} -j REJECT --reject-with ${reject}`,
    );
  }
  filter.push("COMMIT");

  const chains = [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"];
  const ownChains = ["AMBIT-MARK-MASQ", "AMBIT-POSTROUTING", "AMBIT-SERVICES"];
  const serviceLines: string[] = [];
  const chainLines: string[] = [];
  for (const rule of rules.filter((r) => r.endpoints.length > 0)) {
    const svcChain = serviceChain(rule);
    ownChains.push(svcChain);
    serviceLines.push(`-A AMBIT-SERVICES ${portMatch(rule)} ${comment(`${label(rule)} cluster IP`)} -m ${rule.protocol} --dport ${rule.port} -j ${svcChain}`);
    rule.endpoints.forEach((ep, i) => {
      const sepChain = endpointChain(rule, ep);
      const remaining = rule.endpoints.length - i;
      // Each rule takes 1/remaining of what reaches it, so every endpoint gets the same share overall.
      const pick = remaining > 1 ? ` -m statistic --mode random --probability ${(1 / remaining).toFixed(10)}` : "";
      chainLines.push(`-A ${svcChain} ${comment(`${label(rule)} -> ${ep.ip}:${ep.port}`)}${pick} -j ${sepChain}`);
    });
    for (const ep of rule.endpoints) {
      const sepChain = endpointChain(rule, ep);
      ownChains.push(sepChain);
      chainLines.push(
        // Hairpin: a pod reaching itself through its Service must see the node as the source.
        `-A ${sepChain} -s ${ep.ip}/32 ${comment(label(rule))} -j AMBIT-MARK-MASQ`,
        `-A ${sepChain} -p ${rule.protocol} ${comment(label(rule))} -m ${rule.protocol} -j DNAT --to-destination ${ep.ip}:${ep.port}`,
      );
    }
  }
  const nat = [
    "*nat",
    ...chains,
    ...ownChains.sort(compare).map((chain) => `:${chain} - [0:0]`),
    `-A PREROUTING ${comment("ambit service portals")} -j AMBIT-SERVICES`,
    `-A OUTPUT ${comment("ambit service portals")} -j AMBIT-SERVICES`,
    `-A POSTROUTING ${comment("ambit postrouting rules")} -j AMBIT-POSTROUTING`,
    `-A AMBIT-MARK-MASQ -j MARK --set-xmark ${MASQUERADE_MARK}`,
    `-A AMBIT-POSTROUTING -m mark --mark ${MASQUERADE_MARK} -j MASQUERADE`,
    ...serviceLines,
    ...chainLines,
    "COMMIT",
  ];
  return [...filter, ...nat].join("\n") + "\n";
}
