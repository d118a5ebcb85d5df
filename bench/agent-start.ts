// Agent start to ready on a node with PODS (100) captured pods, as an upgrade or a crash restarts it: the new agent
// finds every pod again, opens its listeners in each, gets its configuration and certificates, and reports ready.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { stringify } from "yaml";
import { REPO_ROOT } from "../sandbox/config.ts";
import { median } from "./tools/process-stats.ts";

const PODS = Number(process.env.PODS ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const ENV = { AMBIT_DEV_NAME_PREFIX: "ambit-start", AMBIT_DEV_STATE_DIR: "/run/ambit-start", AMBIT_DEV_API_PORT: "16449" };
const KUBECONFIG = `${ENV.AMBIT_DEV_STATE_DIR}/kubeconfig`;
const NODE = path.join(REPO_ROOT, "node_modules", "node", "bin", "node");
const NODE_NAME = "node-1";

const ambit = (args: string[]) => execa(NODE, [path.join(REPO_ROOT, "bin", "ambit.ts"), ...args], { env: ENV, timeout: 300_000 });
const kubectl = (args: string[], input?: string) => execa("kubectl", args, { env: { KUBECONFIG }, timeout: 120_000, ...(input ? { input } : {}) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

interface AgentPod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName: string };
  status?: { conditions?: Array<{ type: string; status: string }> };
}
const agentPods = async () =>
  (JSON.parse((await kubectl(["get", "pods", "-n", "ambit-system", "-l", "app=ambit-agent", "-o", "json"])).stdout).items as AgentPod[]).filter(
    (p) => p.spec.nodeName === NODE_NAME,
  );
const isReady = (p: AgentPod) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** The "agent ready" line of the agent's log: its startup time from process start and the pods it captured. */
async function readyLine(pod: AgentPod): Promise<{ startupMs: number; capturedPods: number } | undefined> {
  const file = path.join(ENV.AMBIT_DEV_STATE_DIR, "logs", "pods", `ambit-system_${pod.metadata.name}_${pod.metadata.uid}`, "agent.log");
  const lines = (await fs.readFile(file, "utf8").catch(() => "")).split("\n");
  for (const line of lines) {
    if (!line.includes('"agent ready"')) continue;
    const entry = JSON.parse(line) as { startupMs: number; capturedPods: number };
    return { startupMs: entry.startupMs, capturedPods: entry.capturedPods };
  }
  return undefined;
}

/** Deletes the node's agent pod and times its successor: delete to Ready, and the successor's own start to ready. */
async function restartOnce(): Promise<{ deleteToReadyMs: number; startupMs: number; capturedPods: number }> {
  const [old] = await agentPods();
  if (!old) throw new Error(`no agent on ${NODE_NAME}`);
  const started = performance.now();
  await kubectl(["delete", "pod", "-n", "ambit-system", old.metadata.name, "--wait=false"]);
  const next = await waitFor("the successor agent ready", async () =>
    (await agentPods()).find((p) => p.metadata.uid !== old.metadata.uid && !p.metadata.deletionTimestamp && isReady(p)),
  );
  const deleteToReadyMs = Math.round(performance.now() - started);
  const line = await waitFor("its ready line", () => readyLine(next), 10_000);
  // The old agent drains and leaves before the next round.
  await waitFor("the old agent gone", async () => ((await agentPods()).some((p) => p.metadata.uid === old.metadata.uid) ? undefined : true), 120_000);
  return { deleteToReadyMs, ...line };
}

async function main(): Promise<void> {
  await ambit(["dev", "down"]);
  try {
    const up = await ambit(["dev", "up", "--mesh"]);
    if (up.exitCode !== 0) throw new Error(`ambit dev up failed: ${up.stderr}`);
    const baseline = [];
    for (let i = 0; i < ROUNDS; i++) baseline.push(await restartOnce());

    const pod = (i: number) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `p-${i}`, namespace: "bench" },
      spec: { nodeName: NODE_NAME, containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }] },
    });
    await kubectl(
      ["apply", "-f", "-"],
      stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "bench", labels: { "ambit.dev/dataplane-mode": "ambient" } } }),
    );
    await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: Array.from({ length: PODS }, (_, i) => pod(i)) }));
    await waitFor(
      `${PODS} pods captured`,
      async () => {
        const items = JSON.parse((await kubectl(["get", "pods", "-n", "bench", "-o", "json"])).stdout).items as Array<{
          metadata: { annotations?: Record<string, string> };
        }>;
        return items.filter((p) => p.metadata.annotations?.["ambit.dev/redirection"] === "enabled").length === PODS ? true : undefined;
      },
      600_000,
    );
    const loaded = [];
    for (let i = 0; i < ROUNDS; i++) loaded.push(await restartOnce());

    const summarize = (xs: Array<{ deleteToReadyMs: number; startupMs: number; capturedPods: number }>) => ({
      startupMsMedian: median(xs.map((x) => x.startupMs)),
      deleteToReadyMsMedian: median(xs.map((x) => x.deleteToReadyMs)),
      rounds: xs,
    });
    const summary = { pods: PODS, rounds: ROUNDS, withoutPods: summarize(baseline), withPods: summarize(loaded) };
    console.log("\n| measure | no captured pods | " + `${PODS} captured pods |`);
    console.log("|---|---|---|");
    console.log(
      `| agent start to ready, from its process start (ms, median of ${ROUNDS}) | ${summary.withoutPods.startupMsMedian} | ${summary.withPods.startupMsMedian} |`,
    );
    console.log(
      `| \`kubectl delete pod\` of the agent to its successor Ready (ms, median) | ${summary.withoutPods.deleteToReadyMsMedian} | ${summary.withPods.deleteToReadyMsMedian} |`,
    );
    console.log(
      `| pods the successor captured at ready | ${baseline.map((x) => x.capturedPods).join(", ")} | ${loaded.map((x) => x.capturedPods).join(", ")} |`,
    );
    const out = path.join(REPO_ROOT, "bench", "results", "agent-start.json");
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, JSON.stringify(summary, null, 2) + "\n");
    console.log(`\nwrote ${out}`);
  } finally {
    await ambit(["dev", "down"]);
  }
}

await main();
