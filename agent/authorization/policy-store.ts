// Enforces compiled L4 policy at the destination: peer authentication first, then DENY, then ALLOW, with Istio's semantics.
import net from "node:net";
import type { CompiledAuthorization, CompiledCondition, CompiledPeerAuthentication, CompiledRule, CompiledSource, MtlsMode } from "../../contract/authorization.ts";
import type { InboundAttributes, InboundPolicy } from "../dataplane/index.ts";
import { formatSpiffeId } from "../identity/index.ts";
import type { Workload } from "../state/index.ts";

export class PolicyError extends Error {
  readonly code = "AMBIT_E_POLICY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "PolicyError";
  }
}

/** Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). */
export function matchesPattern(pattern: string, value: string): boolean {
  if (pattern === "*") return value !== "";
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

const blockLists = new Map<string, net.BlockList>();
/** IP or CIDR membership through node's BlockList (IPv4 and IPv6); lists are cached per distinct block set. */
function inBlocks(blocks: string[], ip: string | undefined): boolean {
  if (!ip) return false;
  const key = blocks.join(",");
  let list = blockLists.get(key);
  if (!list) {
    list = new net.BlockList();
    for (const b of blocks) {
      const [addr, bits] = b.split("/");
      const family = net.isIP(addr!) === 6 ? "ipv6" : "ipv4";
      if (bits === undefined) list.addAddress(addr!, family);
      else list.addSubnet(addr!, Number(bits), family);
    }
    if (blockLists.size > 10_000) blockLists.clear();
    blockLists.set(key, list);
  }
  return list.check(ip, net.isIP(ip) === 6 ? "ipv6" : "ipv4");
}

interface Facts {
  /** Istio form (no scheme); "" for plaintext. */
  principal: string;
  namespace: string;
  sourceIp: string | undefined;
  destinationIp: string;
  destinationPort: number;
}

const any = (patterns: string[] | undefined, value: string) => patterns !== undefined && patterns.some((p) => matchesPattern(p, value));

function sourceMatches(s: CompiledSource, f: Facts): boolean {
  if (s.principals && !any(s.principals, f.principal)) return false;
  if (s.notPrincipals && any(s.notPrincipals, f.principal)) return false;
  if (s.namespaces && !any(s.namespaces, f.namespace)) return false;
  if (s.notNamespaces && any(s.notNamespaces, f.namespace)) return false;
  if (s.ipBlocks && !inBlocks(s.ipBlocks, f.sourceIp)) return false;
  if (s.notIpBlocks && inBlocks(s.notIpBlocks, f.sourceIp)) return false;
  // No proxy stands between the client and the destination agent: the remote address is the source address.
  if (s.remoteIpBlocks && !inBlocks(s.remoteIpBlocks, f.sourceIp)) return false;
  if (s.notRemoteIpBlocks && inBlocks(s.notRemoteIpBlocks, f.sourceIp)) return false;
  return true;
}

function conditionMatches(c: CompiledCondition, f: Facts): boolean {
  const test = (values: string[]): boolean => {
    switch (c.key) {
      case "source.ip":
      case "remote.ip":
        return inBlocks(values, f.sourceIp);
      case "destination.ip":
        return inBlocks(values, f.destinationIp);
      case "destination.port":
        return values.includes(String(f.destinationPort));
      case "source.namespace":
        return any(values, f.namespace);
      case "source.principal":
        return any(values, f.principal);
    }
  };
  if (c.values && !test(c.values)) return false;
  if (c.notValues && test(c.notValues)) return false;
  return true;
}

function ruleMatches(r: CompiledRule, f: Facts): boolean {
  if (r.from && !r.from.some((s) => sourceMatches(s, f))) return false;
  if (r.to && !r.to.some((o) => (!o.ports || o.ports.includes(f.destinationPort)) && (!o.notPorts || !o.notPorts.includes(f.destinationPort)))) return false;
  if (r.when && !r.when.every((c) => conditionMatches(c, f))) return false;
  return true;
}

const selects = (p: { namespace: string; selector?: Record<string, string> }, w: Workload, rootNamespace: string): boolean =>
  (p.namespace === rootNamespace || p.namespace === w.namespace) && (!p.selector || Object.entries(p.selector).every(([k, v]) => w.labels[k] === v));

function checkShape(value: unknown, kind: string): void {
  const v = value as Record<string, unknown> | null;
  if (!v || typeof v.namespace !== "string" || typeof v.name !== "string") throw new PolicyError(`a ${kind} without namespace and name`);
}

/** The node's policies, indexed by namespace; replaced whole on every config version. */
export class PolicyStore implements InboundPolicy {
  readonly #rootNamespace: string;
  #authz = new Map<string, CompiledAuthorization[]>();
  #peer = new Map<string, CompiledPeerAuthentication[]>();

  constructor(opts: { rootNamespace: string }) {
    this.#rootNamespace = opts.rootNamespace;
  }

  /** Throws (and keeps the previous policies) if any entry is malformed: a config version applies whole or not at all. */
  replace(authorizations: unknown[], peerAuthentications: unknown[]): void {
    const authz = new Map<string, CompiledAuthorization[]>();
    for (const a of authorizations) {
      checkShape(a, "authorization policy");
      const p = a as CompiledAuthorization;
      if ((p.action !== "ALLOW" && p.action !== "DENY") || !Array.isArray(p.rules)) throw new PolicyError(`authorization policy ${p.namespace}/${p.name} has no valid action and rules`);
      authz.set(p.namespace, [...(authz.get(p.namespace) ?? []), p]);
    }
    const peer = new Map<string, CompiledPeerAuthentication[]>();
    for (const a of peerAuthentications) {
      checkShape(a, "peer authentication");
      const p = a as CompiledPeerAuthentication;
      peer.set(p.namespace, [...(peer.get(p.namespace) ?? []), p]);
    }
    this.#authz = authz;
    this.#peer = peer;
  }

  /** Most specific wins: workload selector (oldest first) > namespace > mesh; UNSET inherits; the default is PERMISSIVE. */
  mtlsMode(w: Workload, port: number): Exclude<MtlsMode, "UNSET"> {
    const own = this.#peer.get(w.namespace) ?? [];
    const workloadLevel = own.filter((p) => p.selector && selects(p, w, "")).sort((a, b) => a.createdAt.localeCompare(b.createdAt))[0];
    const namespaceLevel = own.find((p) => !p.selector);
    const meshLevel = (this.#peer.get(this.#rootNamespace) ?? []).find((p) => !p.selector);
    for (const mode of [workloadLevel?.portLevel[String(port)], workloadLevel?.mode, namespaceLevel?.mode, meshLevel?.mode]) {
      if (mode && mode !== "UNSET") return mode;
    }
    return "PERMISSIVE";
  }

  check(conn: InboundAttributes): { allowed: boolean; reason: string } {
    const w = conn.destination;
    const principal = conn.source ? formatSpiffeId(conn.source).replace(/^spiffe:\/\//, "") : "";
    if (!conn.source && this.mtlsMode(w, conn.destinationPort) === "STRICT") {
      return { allowed: false, reason: `STRICT mTLS for ${w.namespace}/${w.name}:${conn.destinationPort} requires a mesh identity; the client sent plaintext` };
    }
    const facts: Facts = { principal, namespace: conn.source?.namespace ?? "", sourceIp: conn.sourceIp, destinationIp: conn.destinationIp, destinationPort: conn.destinationPort };
    const applicable = [...(this.#authz.get(w.namespace) ?? []), ...(w.namespace === this.#rootNamespace ? [] : (this.#authz.get(this.#rootNamespace) ?? []))].filter((p) => selects(p, w, this.#rootNamespace));
    for (const p of applicable) {
      if (p.action === "DENY" && p.rules.some((r) => ruleMatches(r, facts))) return { allowed: false, reason: `denied by policy ${p.namespace}/${p.name}` };
    }
    const allows = applicable.filter((p) => p.action === "ALLOW");
    if (allows.length === 0) return { allowed: true, reason: "no ALLOW policy selects the workload" };
    const match = allows.find((p) => p.rules.some((r) => ruleMatches(r, facts)));
    if (match) return { allowed: true, reason: `allowed by policy ${match.namespace}/${match.name}` };
    return { allowed: false, reason: `no ALLOW policy matched for ${w.namespace}/${w.name} (from ${principal || conn.sourceIp || "unknown"})` };
  }

  /** For the admin API. */
  dump(): { authorizations: CompiledAuthorization[]; peerAuthentications: CompiledPeerAuthentication[] } {
    return { authorizations: [...this.#authz.values()].flat(), peerAuthentications: [...this.#peer.values()].flat() };
  }
}
