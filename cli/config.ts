// `ambit workloads|services|policies|certs`: one agent's view of the mesh, with the columns `istioctl ztunnel-config` shows.
import type { Argv } from "yargs";
import type { ConfigDump } from "../contract/agent-admin.ts";
import { waypointKey } from "../contract/waypoint.ts";
import { MESH_NAMESPACE } from "./agents.ts";
import { type CliEnv, type CommonArgs, withCommonOptions, withEnv } from "./context.ts";
import { CliError } from "./errors.ts";
import { CLI_API_VERSION, type OutputFormat, type Table, formatAge, formatDocument, formatTable } from "./output.ts";

/** Which configuration the agent answered from: the controller's version, and how stale it may be. */
export interface ConfigSource {
  node: string;
  version: number;
  connected: boolean;
  lastUpdateAt?: string;
  /** 0 while connected to the controller; else seconds since the stream was lost. */
  staleSeconds: number;
}

export interface WorkloadItem {
  namespace: string;
  name: string;
  workload: string;
  address: string;
  node: string;
  serviceAccount: string;
  waypoint: string | null;
  /** HBONE when the mesh captures the pod, TCP when its traffic goes unencrypted. */
  protocol: "HBONE" | "TCP";
}
export interface ServiceItem {
  namespace: string;
  name: string;
  vip: string;
  waypoint: string | null;
  endpoints: { ready: number; total: number };
  ports: string[];
}
export interface PolicyItem {
  namespace: string;
  name: string;
  kind: "AuthorizationPolicy" | "PeerAuthentication";
  /** ALLOW, DENY or AUDIT; for a PeerAuthentication its mTLS mode. */
  action: string;
  /** Global (the mesh's root namespace), Namespace, or WorkloadSelector. */
  scope: string;
}
export interface CertificateItem {
  node: string;
  identity: string;
  type: "Leaf" | "Intermediate" | "Root";
  status: "Available" | "Expired" | "NotYetValid";
  valid: boolean;
  serialNumber: string;
  notAfter: string;
  notBefore: string;
}

export interface ConfigList<K extends string, T> {
  apiVersion: typeof CLI_API_VERSION;
  kind: K;
  source: ConfigSource;
  items: T[];
}

export function configSource(dump: ConfigDump, now: number): ConfigSource {
  const c = dump.controller;
  const since = c.connected ? undefined : (c.disconnectedSince ?? c.lastUpdateAt);
  return {
    node: dump.node,
    version: c.version,
    connected: c.connected,
    ...(c.lastUpdateAt ? { lastUpdateAt: c.lastUpdateAt } : {}),
    staleSeconds: since ? Math.max(0, Math.round((now - Date.parse(since)) / 1000)) : 0,
  };
}

const inNamespace = (ns: string | undefined) => (item: { namespace: string }) => !ns || item.namespace === ns;
const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
  a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);

export function workloadList(dump: ConfigDump, now: number, namespace?: string): ConfigList<"WorkloadList", WorkloadItem> {
  const items = dump.workloads
    .map((w) => ({
      namespace: w.namespace,
      name: w.name,
      workload: w.workloadName,
      address: w.ip,
      node: w.node,
      serviceAccount: w.serviceAccount,
      waypoint: w.waypoint ? waypointKey(w.waypoint) : null,
      protocol: w.captured ? ("HBONE" as const) : ("TCP" as const),
    }))
    .filter(inNamespace(namespace))
    .sort(byName);
  return { apiVersion: CLI_API_VERSION, kind: "WorkloadList", source: configSource(dump, now), items };
}

export function serviceList(dump: ConfigDump, now: number, namespace?: string): ConfigList<"ServiceList", ServiceItem> {
  const items = dump.services
    .map((s) => {
      // Endpoints are pods, whatever number of ports each serves.
      const all = new Map<string, boolean>();
      for (const eps of Object.values(s.ports)) for (const e of eps) all.set(e.ip, (all.get(e.ip) ?? false) || e.ready);
      return {
        namespace: s.namespace,
        name: s.name,
        vip: s.clusterIP,
        waypoint: s.waypoint ? waypointKey(s.waypoint) : null,
        endpoints: { ready: [...all.values()].filter(Boolean).length, total: all.size },
        ports: Object.keys(s.ports).sort((a, b) => Number(a) - Number(b)),
      };
    })
    .filter(inNamespace(namespace))
    .sort(byName);
  return { apiVersion: CLI_API_VERSION, kind: "ServiceList", source: configSource(dump, now), items };
}

export function policyList(dump: ConfigDump, now: number, namespace?: string, rootNamespace = MESH_NAMESPACE): ConfigList<"PolicyList", PolicyItem> {
  const scope = (p: { namespace: string; selector?: object; selectorKeys?: string[] }) =>
    p.selector || p.selectorKeys?.length ? "WorkloadSelector" : p.namespace === rootNamespace ? "Global" : `Namespace ${p.namespace}`;
  const items: PolicyItem[] = [
    ...dump.policies.authorizations.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      kind: "AuthorizationPolicy" as const,
      action: p.action,
      scope: scope(p),
    })),
    ...dump.policies.peerAuthentications.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      kind: "PeerAuthentication" as const,
      action: `mTLS ${p.mode}`,
      scope: scope(p),
    })),
  ]
    .filter(inNamespace(namespace))
    .sort((a, b) => byName(a, b) || a.kind.localeCompare(b.kind));
  return { apiVersion: CLI_API_VERSION, kind: "PolicyList", source: configSource(dump, now), items };
}

const TYPE_NAMES = { leaf: "Leaf", intermediate: "Intermediate", root: "Root" } as const;

/** The identities an agent holds certificates for, each chain certificate a row, then the trust bundle's roots. */
export function certificateItems(dump: ConfigDump, now: number): CertificateItem[] {
  const item = (identity: string, c: { type: keyof typeof TYPE_NAMES; serialNumber: string; notBefore: string; notAfter: string }): CertificateItem => {
    const status = now < Date.parse(c.notBefore) ? "NotYetValid" : now > Date.parse(c.notAfter) ? "Expired" : "Available";
    return {
      node: dump.node,
      identity,
      type: TYPE_NAMES[c.type],
      status,
      valid: status === "Available",
      serialNumber: c.serialNumber,
      notAfter: c.notAfter,
      notBefore: c.notBefore,
    };
  };
  const held = [...dump.certificates].sort((a, b) => a.identity.localeCompare(b.identity)).flatMap((c) => c.chain.map((e) => item(c.identity, e)));
  const roots = (dump.trustBundle.certificates ?? []).map((e) => item("trust bundle", e));
  return [...held, ...roots];
}

export function certificateList(dumps: ConfigDump[], now: number): ConfigList<"CertificateList", CertificateItem> & { sources: ConfigSource[] } {
  const sources = dumps.map((d) => configSource(d, now));
  return { apiVersion: CLI_API_VERSION, kind: "CertificateList", source: sources[0]!, sources, items: dumps.flatMap((d) => certificateItems(d, now)) };
}

export function workloadTable(list: ConfigList<"WorkloadList", WorkloadItem>): Table {
  return {
    headers: ["NAMESPACE", "POD NAME", "ADDRESS", "NODE", "WAYPOINT", "PROTOCOL", "SERVICE ACCOUNT"],
    rows: list.items.map((w) => [w.namespace, w.name, w.address, w.node, w.waypoint ?? "None", w.protocol, w.serviceAccount]),
    wideOnly: [6],
  };
}

export function serviceTable(list: ConfigList<"ServiceList", ServiceItem>): Table {
  return {
    headers: ["NAMESPACE", "SERVICE NAME", "SERVICE VIP", "WAYPOINT", "ENDPOINTS", "PORTS"],
    rows: list.items.map((s) => [s.namespace, s.name, s.vip, s.waypoint ?? "None", `${s.endpoints.ready}/${s.endpoints.total}`, s.ports.join(",")]),
    wideOnly: [5],
  };
}

export function policyTable(list: ConfigList<"PolicyList", PolicyItem>): Table {
  return {
    headers: ["NAMESPACE", "POLICY NAME", "ACTION", "SCOPE", "KIND"],
    rows: list.items.map((p) => [p.namespace, p.name, p.action, p.scope, p.kind]),
    wideOnly: [4],
  };
}

export function certificateTable(list: ConfigList<"CertificateList", CertificateItem>): Table {
  return {
    headers: ["CERTIFICATE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE", "NODE"],
    // NODE always: each agent holds its own pods' identities, and a listing usually spans several.
    rows: list.items.map((c) => [c.identity, c.type, c.status, String(c.valid), c.serialNumber, c.notAfter, c.notBefore, c.node]),
  };
}

/** One line per agent under a table (on stderr, so the table stays parseable): the config version and its staleness. */
export function sourceLine(s: ConfigSource): string {
  const freshness = s.connected ? "connected to the controller" : `DISCONNECTED from the controller for ${formatAge(s.staleSeconds)} (config may be stale)`;
  return `agent on ${s.node}: config version ${s.version}, ${freshness}${s.lastUpdateAt ? `, last update ${s.lastUpdateAt}` : ""}\n`;
}

/** Prints a list as asked: a table (with its source lines on stderr) or the whole document. */
export function printList<T>(env: CliEnv, format: OutputFormat, doc: { source: ConfigSource; sources?: ConfigSource[]; items: T[] }, table: Table): void {
  if (format === "json" || format === "yaml") return env.stdout(formatDocument(doc, format));
  env.stdout(formatTable(table, format === "wide"));
  for (const s of doc.sources ?? [doc.source]) env.stderr(sourceLine(s));
}

/** The dump of `--node`'s agent, else of the first ready agent (every agent holds the same mesh-wide view). */
export async function dumpFor(env: CliEnv, node: string | undefined): Promise<ConfigDump> {
  if (node) return env.agents.get<ConfigDump>(node, "/config_dump");
  const agents = await env.agents.agents();
  const pick = agents.find((a) => a.ready) ?? agents[0];
  if (!pick)
    throw new CliError(
      "AMBIT_E_NO_MESH",
      `no Ambit agent pod found (pods -l app=ambit-agent in ${MESH_NAMESPACE}); is the mesh installed? (kubectl -n ${MESH_NAMESPACE} get ds,pods)`,
    );
  return env.agents.get<ConfigDump>(pick.node, "/config_dump");
}

export async function runWorkloads(env: CliEnv, args: CommonArgs): Promise<void> {
  const list = workloadList(await dumpFor(env, args.node), env.now(), args.allNamespaces ? undefined : args.namespace);
  printList(env, args.output, list, workloadTable(list));
}
export async function runServices(env: CliEnv, args: CommonArgs): Promise<void> {
  const list = serviceList(await dumpFor(env, args.node), env.now(), args.allNamespaces ? undefined : args.namespace);
  printList(env, args.output, list, serviceTable(list));
}
export async function runPolicies(env: CliEnv, args: CommonArgs): Promise<void> {
  const list = policyList(await dumpFor(env, args.node), env.now(), args.allNamespaces ? undefined : args.namespace);
  printList(env, args.output, list, policyTable(list));
}
/** Certificates differ per node (each holds its own pods' identities): every agent unless `--node`. */
export async function runCerts(env: CliEnv, args: CommonArgs): Promise<void> {
  const nodes = args.node ? [args.node] : (await env.agents.agents()).map((a) => a.node);
  if (nodes.length === 0) throw new CliError("AMBIT_E_NO_MESH", `no Ambit agent pod found in ${MESH_NAMESPACE}; is the mesh installed?`);
  const dumps = await Promise.all(nodes.map((n) => env.agents.get<ConfigDump>(n, "/config_dump")));
  const list = certificateList(dumps, env.now());
  printList(env, args.output, list, certificateTable(list));
}

export function configCommands(y: Argv): Argv {
  const run = (fn: (env: CliEnv, args: CommonArgs) => Promise<void>) => (args: unknown) => withEnv(args as CommonArgs, (env) => fn(env, args as CommonArgs));
  return y
    .command("workloads", "workloads as an agent sees them (NAMESPACE POD NAME ADDRESS NODE WAYPOINT PROTOCOL)", withCommonOptions, run(runWorkloads))
    .command("services", "services and their endpoints as an agent sees them", withCommonOptions, run(runServices))
    .command("policies", "authorization and peer-authentication policies an agent enforces", withCommonOptions, run(runPolicies))
    .command("certs", "certificates each agent holds for its pods' identities, and the trust bundle", withCommonOptions, run(runCerts));
}
