// Memory the mesh holds on a node as enrolled pods grow (ambient vs sidecar vs nginx-sidecar), and per open connection.
import os from "node:os";
import path from "node:path";
import fs from "node:fs/promises";
import { execa } from "execa";
import type { MeshMemory, PerConnection, ScenarioName } from "../report/index.ts";
import { LOAD, NODE, type benchSandbox, waitFor } from "../tools/bench-sandbox.ts";
import { type NginxSidecar, findNginx, startNginxSidecar, writeNginxSidecarCerts } from "../tools/nginx-sidecar.ts";
import { rssKiB } from "../tools/process-stats.ts";
import type { ScenarioTarget, Scenarios } from "./scenarios.ts";

type Sandbox = ReturnType<typeof benchSandbox>;

interface PodJson {
  metadata: { name: string; annotations?: Record<string, string> };
  status: { conditions?: Array<{ type: string; status: string }>; containerStatuses?: Array<{ name: string; containerID?: string }> };
}

const ready = (p: PodJson) => p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
const pidOf = (p: PodJson, container: string) => Number(p.status.containerStatuses?.find((c) => c.name === container)?.containerID?.replace("sandbox://", ""));

/** A full collection in a process that serves the shared admin API on 127.0.0.1:15000 of `netns` (agents, sidecars). */
async function collect(netns: string): Promise<void> {
  // Twice: V8 gives pages back only after a later collection (bench/dataplane-l4.ts).
  for (let i = 0; i < 2; i++)
    await execa("nsenter", [`--net=/run/netns/${netns}`, "--", "curl", "-s", "--max-time", "20", "-X", "POST", "http://127.0.0.1:15000/memory/gc"]).catch(
      () => {},
    );
}

const idlePod = (name: string, namespace: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace, labels: { app: "idle" } },
  spec: { nodeName: "node-1", terminationGracePeriodSeconds: 1, containers: [{ name: "app", image: "ambit.dev/toolbox" }] },
});

/**
 * With `counts` pods (10, 50, 100) on node-1 for each mesh: the agent of node-1 (ambient: one per node whatever the
 * pods), every sidecar of the pods (sidecar), every nginx of the pods, master and worker (nginx-sidecar). Pods are
 * idle; each sample follows a full collection in every Node process measured.
 */
export async function meshMemory(sb: Sandbox, counts: number[], progress: (line: string) => void): Promise<MeshMemory[]> {
  const { kubectl } = sb;
  const out: MeshMemory[] = [];
  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "m-ambient", labels: { "ambit.dev/dataplane-mode": "ambient" } } },
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "m-sidecar", labels: { "ambit.dev/dataplane-mode": "sidecar" } } },
      ],
    }),
  );
  const nginx = findNginx();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-bench-mem-"));
  const started: NginxSidecar[] = [];
  try {
    const certs = await writeNginxSidecarCerts(path.join(dir, "certs"), { namespace: "m-ambient" });
    const status = async () =>
      JSON.parse((await sb.ambit(["dev", "status", "-o", "json"])).stdout) as {
        pods: Array<{ namespace: string; name: string; netns: string }>;
        nodes: Array<{ name: string; netns: string }>;
      };
    let have = 0;
    for (const count of counts) {
      progress(`mesh memory with ${count} pods per mesh on node-1`);
      const names = Array.from({ length: count - have }, (_, i) => `idle-${String(have + i + 1).padStart(3, "0")}`);
      const items = names.flatMap((n) => [idlePod(n, "m-ambient"), idlePod(n, "m-sidecar")]);
      await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
      const pods = async (ns: string) => JSON.parse((await kubectl(["get", "pods", "-n", ns, "-o", "json"])).stdout).items as PodJson[];
      await waitFor(
        `${count} idle pods ready and captured in each mesh`,
        async () => {
          const [a, s] = [await pods("m-ambient"), await pods("m-sidecar")];
          return (
            a.length === count &&
            s.length === count &&
            [...a, ...s].every(ready) &&
            a.every((p) => p.metadata.annotations?.["ambit.dev/redirection"] === "enabled")
          );
        },
        60_000 + count * 3_000,
      );
      const st = await status();
      const netnsOf = (ns: string, pod: string) => st.pods.find((p) => p.namespace === ns && p.name === pod)!.netns;
      // One nginx (server role, as a pod taking mesh traffic would run) in each ambient pod for the nginx figure.
      for (const n of names) {
        const prefix = path.join(dir, n);
        await fs.mkdir(prefix, { recursive: true });
        started.push(
          await startNginxSidecar(
            {
              role: "server",
              listen: "15443",
              upstream: "127.0.0.1:8080",
              certFile: certs.server.certFile,
              keyFile: certs.server.keyFile,
              caFile: certs.caFile,
              prefix,
              loadModule: nginx.loadModule,
            },
            { netns: netnsOf("m-ambient", n), nginx },
          ),
        );
      }
      // Ambient: node-1's agent after a full collection.
      const agentPid = (await sb.agentPids())["node-1"]!;
      await collect(st.nodes.find((x) => x.name === "node-1")!.netns);
      out.push({ scenario: "ambient", pods: count, nodes: 1, totalMiB: round1((await rssKiB(agentPid)) / 1024) });
      // Sidecar: every sidecar of the pods, each after a full collection.
      let sidecars = 0;
      for (const p of await pods("m-sidecar")) {
        await collect(netnsOf("m-sidecar", p.metadata.name));
        sidecars += await rssKiB(pidOf(p, "ambit-proxy")).catch(() => 0);
      }
      out.push({ scenario: "sidecar", pods: count, nodes: 1, totalMiB: round1(sidecars / 1024) });
      let nginxKiB = 0;
      for (const n of started) for (const pid of [n.pid, ...(await n.workerPids())]) nginxKiB += await rssKiB(pid).catch(() => 0);
      out.push({ scenario: "nginx-sidecar", pods: count, nodes: 1, totalMiB: round1(nginxKiB / 1024) });
      have = count;
    }
  } finally {
    await Promise.all(started.map((n) => n.stop().catch(() => {})));
    await fs.rm(dir, { recursive: true, force: true });
    // The pods go with the sandbox; deleting 2 x 100 pods here would only add minutes.
  }
  return out;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * Memory per open idle connection: `connections` keep-alive connections (one request each) held from the client pod,
 * the scenario's proxies' RSS before and while they are held (Node processes after a full collection).
 */
export async function perConnection(
  sb: Sandbox,
  scenarios: Scenarios,
  target: ScenarioTarget,
  connections: number,
  netnsOfPid: (role: string) => Promise<string | undefined>,
): Promise<PerConnection> {
  const pids = await scenarios.memoryPids(target.name);
  const sample = async () => {
    let kib = 0;
    for (const [role, list] of Object.entries(pids)) {
      const ns = await netnsOfPid(role);
      if (ns) await collect(ns);
      for (const pid of list ?? []) kib += await rssKiB(pid).catch(() => 0);
    }
    return kib;
  };
  const before = await sample();
  const holder = execa(
    "nsenter",
    [`--net=/run/netns/${target.clientNetns}`, "--", NODE, LOAD, "--mode", "hold", "--target", target.targets.http, "--connections", String(connections)],
    {
      stdin: "pipe",
      buffer: false,
      reject: false,
    },
  );
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error(`hold: no report within 120 s`)), 120_000);
      holder.stdout?.on("data", (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes("\n")) {
          clearTimeout(timer);
          resolve(text.split("\n")[0]!);
        }
      });
      void holder.then(() => reject(new Error(`hold exited before reporting: ${text}`)));
    });
    const held = JSON.parse(line) as { open: number; ok: number };
    if (held.ok < connections * 0.95) throw new Error(`hold: only ${held.ok} of ${connections} connections answered`);
    const during = await sample();
    return { scenario: target.name as ScenarioName, kibPerConnection: Math.round(((during - before) / held.open) * 10) / 10, connections: held.open };
  } finally {
    holder.stdin?.end();
    holder.kill("SIGTERM");
    await holder;
  }
}
