// `ambit tunnels`: the HBONE connections each agent holds, with both ends' identities, streams and bytes.
import type { Argv } from "yargs";
import type { HboneConnectionInfo, TunnelsDump } from "../contract/agent-admin.ts";
import { type KubeObject, pathFor } from "../kube/client.ts";
import { MESH_NAMESPACE } from "./agents.ts";
import { type CliEnv, type CommonArgs, withCommonOptions, withEnv } from "./context.ts";
import { CliError, fromKubeError } from "./errors.ts";
import { CLI_API_VERSION, type Table, formatAge, formatBytes, formatDocument, formatTable } from "./output.ts";

export interface TunnelsArgs extends CommonArgs {
  workload?: string;
  watch?: boolean;
  /** Seconds between two listings with --watch. */
  interval?: number;
}

export interface TunnelList {
  apiVersion: typeof CLI_API_VERSION;
  kind: "TunnelList";
  /** Agents asked (nodes), sorted. */
  nodes: string[];
  items: HboneConnectionInfo[];
}

const hostOf = (address: string) => address.replace(/:\d+$/, "");

/** Connections of several agents in one stable order: node, direction, peer, local address. */
export function tunnelList(dumps: TunnelsDump[], filter?: { ip: string; pod: string }): TunnelList {
  const items = dumps
    .flatMap((d) => d.connections.map((c) => ({ ...c, localNode: c.localNode ?? d.node })))
    .filter(
      (c) =>
        !filter ||
        hostOf(c.localAddress) === filter.ip ||
        hostOf(c.peerAddress) === filter.ip ||
        (c.streams ?? []).some((s) => s.localWorkload === filter.pod || hostOf(s.destinationAddress) === filter.ip),
    )
    .sort(
      (a, b) =>
        (a.localNode ?? "").localeCompare(b.localNode ?? "") ||
        a.direction.localeCompare(b.direction) ||
        a.peerAddress.localeCompare(b.peerAddress) ||
        a.localAddress.localeCompare(b.localAddress),
    );
  return { apiVersion: CLI_API_VERSION, kind: "TunnelList", nodes: dumps.map((d) => d.node).sort(), items };
}

export function tunnelTable(list: TunnelList): Table {
  return {
    headers: ["NODE", "DIRECTION", "LOCAL IDENTITY", "PEER IDENTITY", "PEER", "PEER NODE", "STREAMS", "SENT", "RECEIVED", "AGE", "LOCAL", "TLS", "CIPHER"],
    rows: list.items.map((c) => [
      c.localNode ?? "",
      c.direction,
      c.localIdentity ?? "<unknown>",
      c.peerIdentity ?? "<unknown>",
      c.peerAddress,
      c.peerNode ?? "<unknown>",
      `${c.streamsOpen}/${c.streamsTotal}`,
      formatBytes(c.bytesSent),
      formatBytes(c.bytesReceived),
      formatAge(c.ageSeconds),
      c.localAddress,
      c.tlsVersion,
      c.cipher,
    ]),
    wideOnly: [10, 11, 12],
  };
}

/** `--workload ns/pod`: the pod's node (whose agent to ask) and address (which connections are its). */
async function resolveWorkload(env: CliEnv, ref: string): Promise<{ node: string; ip: string; pod: string }> {
  const [ns, name, extra] = ref.split("/");
  if (!ns || !name || extra !== undefined) throw new CliError("AMBIT_E_USAGE", `--workload takes <namespace>/<pod>, not "${ref}"`);
  let pod: KubeObject;
  try {
    pod = await env.kube.get(pathFor("v1", "pods", ns, name));
  } catch (err) {
    if ((err as { status?: number }).status === 404)
      throw new CliError("AMBIT_E_UNKNOWN_POD", `no pod ${name} in namespace ${ns}; \`kubectl get pods -n ${ns}\` lists them`, { cause: err });
    throw fromKubeError(err, `reading pod ${ref}`);
  }
  const node = String(pod.spec?.nodeName ?? "");
  const ip = String(pod.status?.podIP ?? "");
  if (!node || !ip) throw new CliError("AMBIT_E_UNKNOWN_POD", `pod ${ref} is not running on a node yet (no node or IP); wait for it to start`);
  return { node, ip, pod: `${ns}/${name}` };
}

export async function collectTunnels(env: CliEnv, args: TunnelsArgs): Promise<TunnelList> {
  const target = args.workload ? await resolveWorkload(env, args.workload) : undefined;
  if (target && args.node && args.node !== target.node)
    throw new CliError("AMBIT_E_USAGE", `pod ${args.workload} runs on ${target.node}, not on --node ${args.node}; drop one of them`);
  const nodes = target ? [target.node] : args.node ? [args.node] : (await env.agents.agents()).map((a) => a.node);
  if (nodes.length === 0)
    throw new CliError("AMBIT_E_NO_MESH", `no Ambit agent pod found (pods -l app=ambit-agent in ${MESH_NAMESPACE}); is the mesh installed?`);
  const dumps = await Promise.all(nodes.map((n) => env.agents.get<TunnelsDump>(n, "/tunnels")));
  return tunnelList(dumps, target);
}

export async function runTunnels(env: CliEnv, args: TunnelsArgs, signal?: AbortSignal): Promise<void> {
  for (;;) {
    const list = await collectTunnels(env, args);
    if (args.output === "json" || args.output === "yaml") env.stdout(formatDocument(list, args.output));
    else if (list.items.length === 0) env.stderr(`no HBONE connections on ${list.nodes.join(", ")}\n`);
    else env.stdout(formatTable(tunnelTable(list), args.output === "wide"));
    if (!args.watch || signal?.aborted) return;
    await new Promise((r) => setTimeout(r, (args.interval ?? 2) * 1000));
    if (signal?.aborted) return;
    env.stdout("\n");
  }
}

export function tunnelsCommand(y: Argv): Argv {
  return y.command(
    "tunnels",
    "HBONE connections between agents: identities, TLS, streams and bytes (every node, or --node / --workload)",
    (c) =>
      withCommonOptions(c)
        .option("workload", { type: "string", describe: "only the connections of this pod (<namespace>/<pod>)" })
        .option("watch", { alias: "w", type: "boolean", describe: "list again every --interval seconds until interrupted" })
        .option("interval", { type: "number", default: 2, describe: "seconds between listings with --watch" }),
    (args) => withEnv(args as TunnelsArgs, (env) => runTunnels(env, args as TunnelsArgs)),
  );
}
