// `ambit status`: the controller replicas (leader, ready, version) and every node's agent (ready, config, captured pods, certificates).
import type { Argv } from "yargs";
import type { ConfigDump } from "../contract/agent-admin.ts";
import { type KubeObject, pathFor } from "../kube/client.ts";
import { CONTROLLER_SELECTOR, MESH_NAMESPACE } from "./agents.ts";
import { type CliEnv, type CommonArgs, withCommonOptions, withEnv } from "./context.ts";
import { CliError, fromKubeError } from "./errors.ts";
import { CLI_API_VERSION, formatAge, formatDocument, formatTable } from "./output.ts";

/** An agent that has not heard from the controller for this long serves a config too old to trust. */
export const STALE_AFTER_SECONDS = 60;
/** Certificates are renewed at half life (12 h of 24): one this close to expiry means renewal is failing. */
export const CERT_WARNING_SECONDS = 3600;
/** Added to twice the lease duration before a leader lease counts as abandoned. */
export const LEASE_SLACK_SECONDS = 15;

export interface ControllerStatus {
  pod: string;
  node: string;
  ready: boolean;
  leader: boolean;
  version: string;
}
export interface AgentStatus {
  node: string;
  pod: string | null;
  ready: boolean;
  version: string;
  reachable: boolean;
  configVersion: number | null;
  connected: boolean | null;
  staleSeconds: number | null;
  podsCaptured: number | null;
  /** The soonest expiry among the certificates the agent holds. */
  certificateExpiry: string | null;
}
export interface MeshStatus {
  apiVersion: typeof CLI_API_VERSION;
  kind: "MeshStatus";
  healthy: boolean;
  leader: string | null;
  controllers: ControllerStatus[];
  agents: AgentStatus[];
  /** What is wrong, one sentence each, saying what to check. */
  problems: string[];
}

const ready = (p: KubeObject) =>
  ((p.status?.conditions ?? []) as Array<{ type: string; status: string }>).some((c) => c.type === "Ready" && c.status === "True");
/** The image tag, which the chart sets to the release version. */
const versionOf = (image: string | undefined) => (image && /:([^:/]+)$/.exec(image)?.[1]) || "unknown";

/** Pure: the status document from what the API and the agents answered. */
export function meshStatus(input: {
  controllers: KubeObject[];
  lease: KubeObject | undefined;
  nodes: string[];
  agents: Array<{ node: string; pod: string; ready: boolean; image?: string; dump?: ConfigDump; error?: string }>;
  now: number;
}): MeshStatus {
  const problems: string[] = [];
  const holder = String(input.lease?.spec?.holderIdentity ?? "");
  const leaseFresh = (() => {
    const renew = Date.parse(String(input.lease?.spec?.renewTime ?? ""));
    const duration = Number(input.lease?.spec?.leaseDurationSeconds ?? 15);
    // Generous: a holder that misses a renewal or two is replaced by the next acquire anyway (within the lease
    // duration); only a lease nobody renewed for much longer means no replica is leading.
    return Number.isFinite(renew) && input.now - renew < (duration * 2 + LEASE_SLACK_SECONDS) * 1000;
  })();
  const controllers = input.controllers
    .map((p) => ({
      pod: p.metadata.name,
      node: String(p.spec?.nodeName ?? ""),
      ready: ready(p),
      // The holder identity is `<pod>_<random>` (controller/leader): a replica leads when it is its pod's.
      leader: holder.startsWith(`${p.metadata.name}_`) && leaseFresh,
      version: versionOf(p.spec?.containers?.[0]?.image),
    }))
    .sort((a, b) => a.pod.localeCompare(b.pod));
  if (controllers.length === 0)
    problems.push(`no controller pod (-l ${CONTROLLER_SELECTOR} in ${MESH_NAMESPACE}); is the mesh installed? (kubectl -n ${MESH_NAMESPACE} get deploy)`);
  for (const c of controllers.filter((c) => !c.ready)) problems.push(`controller ${c.pod} is not ready (kubectl -n ${MESH_NAMESPACE} describe pod ${c.pod})`);
  const leader = controllers.find((c) => c.leader)?.pod ?? null;
  if (controllers.length > 0 && !leader)
    problems.push(`no controller holds a fresh leader lease (lease ambit-controller in ${MESH_NAMESPACE}); check the controllers' logs`);

  // What is known of an agent that cannot be asked.
  const UNREACHABLE = { reachable: false, configVersion: null, connected: null, staleSeconds: null, podsCaptured: null, certificateExpiry: null } as const;
  const byNode = new Map(input.agents.map((a) => [a.node, a]));
  const agents: AgentStatus[] = [...new Set([...input.nodes, ...byNode.keys()])].sort().map((node) => {
    const a = byNode.get(node);
    if (!a) {
      problems.push(`node ${node} has no agent pod; check the DaemonSet's scheduling (kubectl -n ${MESH_NAMESPACE} get ds ambit-agent)`);
      return { node, pod: null, ready: false, version: "unknown", ...UNREACHABLE };
    }
    if (!a.ready) problems.push(`agent ${a.pod} on ${node} is not ready (kubectl -n ${MESH_NAMESPACE} describe pod ${a.pod})`);
    const d = a.dump;
    if (!d) {
      problems.push(`agent ${a.pod} on ${node} did not answer on its admin port: ${a.error ?? "unknown error"}`);
      return { node, pod: a.pod, ready: a.ready, version: versionOf(a.image), ...UNREACHABLE };
    }
    const since = d.controller.connected ? undefined : (d.controller.disconnectedSince ?? d.controller.lastUpdateAt);
    const staleSeconds = since ? Math.max(0, Math.round((input.now - Date.parse(since)) / 1000)) : 0;
    if (!d.controller.connected && staleSeconds >= STALE_AFTER_SECONDS)
      problems.push(
        `agent on ${node} lost its config stream ${formatAge(staleSeconds)} ago; its configuration may be stale (check the controller and the agent's logs)`,
      );
    const expiry = d.certificates.map((c) => c.notAfter).sort()[0] ?? null;
    if (expiry && Date.parse(expiry) - input.now < CERT_WARNING_SECONDS * 1000)
      problems.push(`a certificate on ${node} expires ${expiry}, within the hour: renewal is failing (check the agent's logs and the controller's CA)`);
    return {
      node,
      pod: a.pod,
      ready: a.ready,
      version: versionOf(a.image),
      reachable: true,
      configVersion: d.controller.version,
      connected: d.controller.connected,
      staleSeconds,
      podsCaptured: d.enrollment.filter((e) => e.captured).length,
      certificateExpiry: expiry,
    };
  });
  return { apiVersion: CLI_API_VERSION, kind: "MeshStatus", healthy: problems.length === 0, leader, controllers, agents, problems };
}

export function statusText(s: MeshStatus, now: number): string {
  const controllers = formatTable({
    headers: ["CONTROLLER", "NODE", "READY", "LEADER", "VERSION"],
    rows: s.controllers.map((c) => [c.pod, c.node, String(c.ready), c.leader ? "*" : "", c.version]),
  });
  const agents = formatTable({
    headers: ["NODE", "AGENT", "READY", "VERSION", "CONFIG", "STALE", "CAPTURED", "CERT EXPIRES"],
    rows: s.agents.map((a) => [
      a.node,
      a.pod ?? "<none>",
      String(a.ready),
      a.version,
      a.configVersion === null ? "<unreachable>" : String(a.configVersion),
      a.staleSeconds === null ? "-" : a.connected ? "no" : formatAge(a.staleSeconds),
      a.podsCaptured === null ? "-" : String(a.podsCaptured),
      a.certificateExpiry ? `in ${formatAge((Date.parse(a.certificateExpiry) - now) / 1000)}` : "-",
    ]),
  });
  return `${controllers}\n${agents}`;
}

/** Gathers everything `ambit status` shows: controller pods and lease, nodes, agent pods and their dumps. */
export async function collectStatus(env: CliEnv, node?: string): Promise<MeshStatus> {
  const api = async <T>(what: string, call: () => Promise<T>) => {
    try {
      return await call();
    } catch (err) {
      throw fromKubeError(err, what);
    }
  };
  const controllers = await api(`listing controller pods in ${MESH_NAMESPACE}`, () =>
    env.kube.list(`${pathFor("v1", "pods", MESH_NAMESPACE)}?labelSelector=${encodeURIComponent(CONTROLLER_SELECTOR)}`),
  );
  const lease = await env.kube.get(pathFor("coordination.k8s.io/v1", "leases", MESH_NAMESPACE, "ambit-controller")).catch(() => undefined);
  const nodes = node
    ? [node]
    : (await api("listing nodes", () => env.kube.list(pathFor("v1", "nodes")))).map((n) => n.metadata.name).filter((n): n is string => Boolean(n));
  const pods = (await env.agents.agents()).filter((a) => !node || a.node === node);
  const agents = await Promise.all(
    pods.map(async (a) => {
      try {
        return { ...a, dump: await env.agents.get<ConfigDump>(a.node, "/config_dump") };
      } catch (err) {
        return { ...a, error: (err as Error).message };
      }
    }),
  );
  return meshStatus({ controllers, lease, nodes, agents, now: env.now() });
}

export async function runStatus(env: CliEnv, args: CommonArgs): Promise<void> {
  const s = await collectStatus(env, args.node);
  if (args.output === "json" || args.output === "yaml") env.stdout(formatDocument(s, args.output));
  else env.stdout(statusText(s, env.now()));
  if (s.healthy) return;
  if (args.output === "table" || args.output === "wide") for (const p of s.problems) env.stderr(`problem: ${p}\n`);
  throw new CliError("AMBIT_E_UNHEALTHY", `${s.problems.length} problem${s.problems.length === 1 ? "" : "s"} found (listed above)`);
}

export function statusCommand(y: Argv): Argv {
  return y.command("status", "controller replicas and every node's agent; exits non-zero when something is wrong", withCommonOptions, (args) =>
    withEnv(args as CommonArgs, (env) => runStatus(env, args as CommonArgs)),
  );
}
