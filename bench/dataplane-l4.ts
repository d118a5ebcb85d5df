// Issue 3 targets on the sandbox: cross-node latency at a fixed rate, max req/s, new connections/s, agent CPU and memory — direct vs through the mesh.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../sandbox/config.ts";
import { LOAD, NODE, SERVER, benchPod as pod, benchSandbox, sleep, waitFor } from "./tools/bench-sandbox.ts";
import { cpuSeconds, cpuTimes, median, rssKiB } from "./tools/process-stats.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 2);
const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 10);
const IDLE_PODS = Number(process.env.IDLE_PODS ?? 100);
const HELD_CONNECTIONS = Number(process.env.HELD_CONNECTIONS ?? 10_000);
const ENV = { AMBIT_DEV_NAME_PREFIX: "ambit-bench", AMBIT_DEV_STATE_DIR: "/run/ambit-bench", AMBIT_DEV_API_PORT: "16446" };
const { ambit, kubectl, deployMesh, agentPids, load } = benchSandbox(ENV);

/** An agent's memory after a full collection (its `POST /memory/gc`), in KiB. */
interface AgentMemory {
  rssKiB: number;
  heapUsedKiB: number;
  externalKiB: number;
}

async function setEnrolled(enrolled: boolean): Promise<void> {
  await kubectl(["label", "ns", "bench", enrolled ? "ambit.dev/dataplane-mode=ambient" : "ambit.dev/dataplane-mode-", "--overwrite"]);
  const want = enrolled ? "enabled" : "disabled";
  await waitFor(`bench pods ${want}`, async () => {
    const items = JSON.parse((await kubectl(["get", "pods", "-n", "bench", "-l", "role=measured", "-o", "json"])).stdout).items as Array<{
      metadata: { annotations?: Record<string, string> };
    }>;
    return items.length === 2 && items.every((p) => (p.metadata.annotations?.["ambit.dev/redirection"] ?? "disabled") === want);
  });
  await sleep(1000);
}

interface Scenario {
  latency: Record<string, number>;
  max: Record<string, number>;
  connect: Record<string, number>;
  agentCpuPer1kRps?: Record<string, number>;
  /** The share of each agent's CPU time spent in the kernel (system calls and the network stack they run). */
  agentKernelShare?: Record<string, number>;
}

async function measure(mesh: boolean): Promise<Scenario> {
  const pids = await agentPids();
  const before = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([n, pid]) => [n, await cpuTimes(pid)] as const)));
  const started = performance.now();
  const latency = await load("rate", ["--rate", String(RATE), "--seconds", String(SECONDS), "--connections", "16"]);
  const wall = (performance.now() - started) / 1000;
  const after = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([n, pid]) => [n, await cpuTimes(pid)] as const)));
  const used = Object.fromEntries(Object.keys(pids).map((n) => [n, { user: after[n]!.user - before[n]!.user, kernel: after[n]!.kernel - before[n]!.kernel }]));
  const agentCpuPer1kRps = Object.fromEntries(
    Object.entries(used).map(([n, u]) => [n, Number(((u.user + u.kernel) / wall / (latency.achievedRate! / 1000)).toFixed(4))]),
  );
  const agentKernelShare = Object.fromEntries(Object.entries(used).map(([n, u]) => [n, Number((u.kernel / (u.user + u.kernel)).toFixed(2))]));
  const max = await load("max", ["--seconds", "8", "--connections", "32"]);
  const connect = await load("connect", ["--seconds", "6", "--connections", "16"]);
  return { latency, max, connect, ...(mesh ? { agentCpuPer1kRps, agentKernelShare } : {}) };
}

async function main(): Promise<void> {
  await ambit(["dev", "down"]).catch(() => {});
  console.log("starting a bench sandbox (2 nodes, agent DaemonSet)...");
  await ambit(["dev", "up", "--no-demo"]);
  try {
    await deployMesh();
    await kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-controller", "--timeout=90s"]);
    await kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-agent", "--timeout=90s"]);
    const objects = [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "bench" } },
      pod("server", "node-2", { image: "bench", command: [NODE, SERVER], ports: [{ containerPort: 8080 }] }, { role: "measured" }),
      pod("client", "node-1", { image: "ambit.dev/toolbox:0.1" }, { role: "measured" }),
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "server", namespace: "bench" },
        spec: { selector: { app: "server" }, ports: [{ port: 8080, targetPort: 8080 }] },
      },
    ];
    await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
    await kubectl(["wait", "-n", "bench", "--for=condition=Ready", "pod", "--all", "--timeout=90s"]);
    // ECONNREFUSED until the server listens; the kubelet has no probe here.
    await waitFor("the bench server", async () => (await load("max", ["--seconds", "0.2", "--connections", "1"])).requests! > 0, 30_000);
    // Connection-per-request phases leave tens of thousands of TIME_WAIT sockets; without reuse the next
    // phase (mesh right after direct) pays for a crowded ephemeral port range (see ../shared/facts.md, traps).
    // Both pods' own netns, created by the sandbox; nothing is changed outside them.
    const benchPods = JSON.parse((await ambit(["dev", "status", "-o", "json"])).stdout).pods as Array<{ namespace: string; name: string; netns: string }>;
    for (const p of benchPods.filter((x) => x.namespace === "bench"))
      await execa("ip", ["netns", "exec", p.netns, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"]);

    // Idle figures first: after load, V8 keeps the heap it grew, so later readings are not "idle" any more.
    const idlePids = await agentPids();
    const idle = Object.fromEntries(await Promise.all(Object.entries(idlePids).map(async ([n, pid]) => [n, await rssKiB(pid)] as const)));
    const cpuBefore = await Promise.all(Object.values(idlePids).map(cpuSeconds));
    await sleep(5000);
    const cpuAfter = await Promise.all(Object.values(idlePids).map(cpuSeconds));
    const idleCpu = Object.fromEntries(Object.keys(idlePids).map((n, i) => [n, Number(((cpuAfter[i]! - cpuBefore[i]!) / 5).toFixed(4))]));

    const rounds: Array<{ direct: Scenario; mesh: Scenario }> = [];
    for (let r = 1; r <= ROUNDS; r++) {
      await setEnrolled(false);
      const direct = await measure(false);
      await setEnrolled(true);
      const mesh = await measure(true);
      rounds.push({ direct, mesh });
      console.log(
        `round ${r}: direct p50/p99 ${direct.latency.p50Ms}/${direct.latency.p99Ms} ms, mesh ${mesh.latency.p50Ms}/${mesh.latency.p99Ms} ms; max ${direct.max.requestsPerSecond} vs ${mesh.max.requestsPerSecond} req/s`,
      );
    }

    // Memory: idle agents, then with IDLE_PODS more enrolled pods, then with HELD_CONNECTIONS open tunneled connections.
    // Every sample follows a full collection in each agent (its localhost admin API), so the differences are
    // what pods and connections hold, not when V8 last collected. RSS is the headline; heap used + external
    // (V8 objects and buffers) is what the agent's code keeps alive.
    const pids = await agentPids();
    const nodes = JSON.parse((await ambit(["dev", "status", "-o", "json"])).stdout).nodes as Array<{ name: string; netns: string }>;
    const sample = async (): Promise<Record<string, AgentMemory>> =>
      Object.fromEntries(
        await Promise.all(
          Object.keys(pids).map(async (n) => {
            const netns = nodes.find((x) => x.name === n)!.netns;
            const gc = async () =>
              JSON.parse(
                (
                  await execa("nsenter", [
                    `--net=/run/netns/${netns}`,
                    "--",
                    "curl",
                    "-s",
                    "--max-time",
                    "10",
                    "-X",
                    "POST",
                    "http://127.0.0.1:15000/memory/gc",
                  ])
                ).stdout,
              ) as AgentMemory;
            // V8 gives pages back to the system only after a later collection: without the second one, RSS still
            // carries the heap the load phase grew (the first run of this measured a negative cost per pod).
            await gc();
            await sleep(1500);
            return [n, await gc()] as const;
          }),
        ),
      );
    const total = (m: Record<string, AgentMemory>, f: (x: AgentMemory) => number) => Object.values(m).reduce((a, x) => a + f(x), 0);
    const live = (x: AgentMemory) => x.heapUsedKiB + x.externalKiB;
    const perItem = (after: Record<string, AgentMemory>, before: Record<string, AgentMemory>, f: (x: AgentMemory) => number, n: number) =>
      Number(((total(after, f) - total(before, f)) / n).toFixed(2));
    const beforePods = await sample();
    await kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: Array.from({ length: IDLE_PODS }, (_, i) => pod(`idle-${i}`, i % 2 ? "node-2" : "node-1", { image: "ambit.dev/toolbox:0.1" })),
      }),
    );
    await waitFor(
      `${IDLE_PODS} idle pods captured`,
      async () => {
        const items = JSON.parse((await kubectl(["get", "pods", "-n", "bench", "-o", "json"])).stdout).items as Array<{
          metadata: { name: string; annotations?: Record<string, string> };
        }>;
        return items.filter((p) => p.metadata.name.startsWith("idle-") && p.metadata.annotations?.["ambit.dev/redirection"] === "enabled").length === IDLE_PODS;
      },
      600_000,
    );
    await sleep(3000);
    const withPods = await sample();
    const held = execa(
      NODE,
      [
        path.join(REPO_ROOT, "bin", "ambit.ts"),
        "dev",
        "exec",
        "bench/client",
        "--",
        "sh",
        "-c",
        `ulimit -n 65536; exec ${NODE} ${LOAD} --mode hold --target server.bench:8080 --connections ${HELD_CONNECTIONS}`,
      ],
      { env: ENV, stdin: "pipe", reject: false },
    );
    let heldReport = "";
    held.stdout?.on("data", (d: Buffer) => (heldReport += d.toString()));
    await waitFor(`${HELD_CONNECTIONS} held connections`, async () => heldReport.includes('"mode":"hold"'), 300_000);
    await sleep(3000);
    const withConnections = await sample();
    held.stdin?.end();
    await held;

    const meshLat = rounds.map((r) => r.mesh.latency);
    const directLat = rounds.map((r) => r.direct.latency);
    const summary = {
      rounds: ROUNDS,
      rate: RATE,
      latency: {
        directP50Ms: median(directLat.map((l) => l.p50Ms!)),
        directP99Ms: median(directLat.map((l) => l.p99Ms!)),
        meshP50Ms: median(meshLat.map((l) => l.p50Ms!)),
        meshP99Ms: median(meshLat.map((l) => l.p99Ms!)),
        addedP50Ms: Number((median(meshLat.map((l) => l.p50Ms!)) - median(directLat.map((l) => l.p50Ms!))).toFixed(3)),
        addedP99Ms: Number((median(meshLat.map((l) => l.p99Ms!)) - median(directLat.map((l) => l.p99Ms!))).toFixed(3)),
      },
      maxRps: { direct: median(rounds.map((r) => r.direct.max.requestsPerSecond!)), mesh: median(rounds.map((r) => r.mesh.max.requestsPerSecond!)) },
      newConnectionsPerSecond: {
        direct: median(rounds.map((r) => r.direct.connect.connectionsPerSecond!)),
        mesh: median(rounds.map((r) => r.mesh.connect.connectionsPerSecond!)),
      },
      agentCpuPer1kRps: Object.fromEntries(Object.keys(pids).map((n) => [n, median(rounds.map((r) => r.mesh.agentCpuPer1kRps![n]!))])),
      agentKernelShare: Object.fromEntries(Object.keys(pids).map((n) => [n, median(rounds.map((r) => r.mesh.agentKernelShare![n]!))])),
      agentIdleVcpu: idleCpu,
      agentRssKiB: { idle },
      agentMemoryAfterGc: { afterLoad: beforePods, withPods, withConnections },
      perPodKiB: perItem(withPods, beforePods, (x) => x.rssKiB, IDLE_PODS),
      perPodLiveKiB: perItem(withPods, beforePods, live, IDLE_PODS),
      perConnectionKiB: perItem(withConnections, withPods, (x) => x.rssKiB, HELD_CONNECTIONS),
      perConnectionLiveKiB: perItem(withConnections, withPods, live, HELD_CONNECTIONS),
      heldConnections: JSON.parse(
        heldReport
          .trim()
          .split("\n")
          .find((l) => l.includes('"mode":"hold"'))!,
      ),
      raw: rounds,
    };
    console.log("\n| measure | direct | mesh | goal |\n|---|---|---|---|");
    console.log(`| p50 latency @${RATE} req/s (ms) | ${summary.latency.directP50Ms} | ${summary.latency.meshP50Ms} (+${summary.latency.addedP50Ms}) | |`);
    console.log(`| p99 latency @${RATE} req/s (ms) | ${summary.latency.directP99Ms} | ${summary.latency.meshP99Ms} (+${summary.latency.addedP99Ms}) | |`);
    console.log(
      `| max keep-alive req/s (32 conns) | ${summary.maxRps.direct} | ${summary.maxRps.mesh} (${((100 * summary.maxRps.mesh) / summary.maxRps.direct).toFixed(0)}%) | >= 40% |`,
    );
    console.log(`| new connections/s (16 workers) | ${summary.newConnectionsPerSecond.direct} | ${summary.newConnectionsPerSecond.mesh} | |`);
    console.log(
      `| agent vCPU per 1,000 req/s (kernel share) | | ${Object.entries(summary.agentCpuPer1kRps)
        .map(([n, v]) => `${n} ${v} (${summary.agentKernelShare[n]})`)
        .join(", ")} | <= 0.06 |`,
    );
    console.log(
      `| agent vCPU idle | | ${Object.entries(idleCpu)
        .map(([n, v]) => `${n} ${v}`)
        .join(", ")} | |`,
    );
    console.log(
      `| agent RSS idle (KiB) | | ${Object.entries(idle)
        .map(([n, v]) => `${n} ${v}`)
        .join(", ")} | |`,
    );
    console.log(`| RSS per enrolled pod, after GC (KiB) | | ${summary.perPodKiB} (heap + buffers ${summary.perPodLiveKiB}) | <= 64 |`);
    console.log(`| RSS per open tunneled connection, after GC (KiB) | | ${summary.perConnectionKiB} (heap + buffers ${summary.perConnectionLiveKiB}) | <= 8 |`);
    const out = path.join(REPO_ROOT, "bench", "results", "dataplane-l4.json");
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, JSON.stringify(summary, null, 2) + "\n");
    console.log(`\nwrote ${out}`);
  } finally {
    await ambit(["dev", "down"]).catch(() => {});
  }
}

await main();
