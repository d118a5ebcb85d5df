// Issue 13 targets on the sandbox: what a waypoint adds over ambient L4 at a fixed rate (latency), and what it costs (vCPU against the agents', RSS).
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../sandbox/config.ts";
import { NODE, SERVER, type PodWithPid, benchPod, benchSandbox, containerPid, sleep, waitFor } from "./tools/bench-sandbox.ts";
import { cpuSeconds, median, rssKiB } from "./tools/process-stats.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 10);
/** Load before each measured window, not counted: JIT, pooled upstream connections and the first requests after a switch. */
const WARMUP_SECONDS = Number(process.env.WARMUP_SECONDS ?? 2);
/** Where the waypoint pod runs: the server's node by default (the client is on node-1, the server on node-2). */
const WAYPOINT_NODE = process.env.WAYPOINT_NODE ?? "node-2";
/** The whole run, sandbox start and teardown included; past it the sandbox is taken down and the run fails. */
const DEADLINE_S = Number(process.env.DEADLINE_S ?? 900);
// A prefix of its own (no other sandbox's starts with "ambit-l7-"), so it never meets dataplane-l4's ambit-bench.
const ENV = { AMBIT_DEV_NAME_PREFIX: "ambit-l7", AMBIT_DEV_STATE_DIR: "/run/ambit-l7", AMBIT_DEV_API_PORT: "16448" };
const { ambit, kubectl, deployMesh, podsOf, agentPids, load } = benchSandbox(ENV);

const WAYPOINT_SELECTOR = "gateway.networking.k8s.io/gateway-name=waypoint";
/** Set by the HTTPRoute on every response it routes: how a probe tells the waypoint's path from the L4 one. */
const ROUTE_HEADER = "x-ambit-bench";

const waypointObjects = [
  {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "Gateway",
    metadata: { name: "waypoint", namespace: "bench" },
    spec: { gatewayClassName: "ambit-waypoint", listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }] },
  },
  // L7 routing for real: a matched rule, a response header modifier and a backendRef, as a minimal production route has.
  {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name: "server", namespace: "bench" },
    spec: {
      parentRefs: [{ group: "", kind: "Service", name: "server", port: 8080 }],
      rules: [
        {
          matches: [{ path: { type: "PathPrefix", value: "/" } }],
          filters: [{ type: "ResponseHeaderModifier", responseHeaderModifier: { set: [{ name: ROUTE_HEADER, value: "waypoint" }] } }],
          backendRefs: [{ name: "server", port: 8080 }],
        },
      ],
    },
  },
];

type BenchPod = PodWithPid & {
  metadata: { name: string; deletionTimestamp?: string; annotations?: Record<string, string> };
  status: { conditions?: Array<{ type: string; status: string }> };
};

async function waypointPod(): Promise<BenchPod | undefined> {
  return ((await podsOf("bench", WAYPOINT_SELECTOR)) as BenchPod[]).find((p) => !p.metadata.deletionTimestamp);
}

/** The waypoint pod's network namespace (the sandbox's `ip netns` name), where its metrics and admin API listen. */
async function podNetns(name: string): Promise<string> {
  const pods = JSON.parse((await ambit(["dev", "status", "-o", "json"])).stdout).pods as Array<{ namespace: string; name: string; netns: string }>;
  const netns = pods.find((p) => p.namespace === "bench" && p.name === name)?.netns;
  if (!netns) throw new Error(`no network namespace for pod bench/${name}`);
  return netns;
}

const inNetns = async (netns: string, args: string[]) =>
  (await execa("nsenter", [`--net=/run/netns/${netns}`, "--", "curl", "-s", "--max-time", "10", ...args], { timeout: 20_000 })).stdout;

/** From the waypoint's :15020/metrics: requests it answered for Service server (by response code) and its own CPU time. */
async function waypointMetrics(netns: string): Promise<{ requests: Record<string, number>; cpuSeconds: number }> {
  const requests: Record<string, number> = {};
  let cpu = NaN;
  for (const line of (await inNetns(netns, ["http://127.0.0.1:15020/metrics"])).split("\n")) {
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("ambit_waypoint_process_cpu_seconds_total ")) cpu = value;
    if (!line.startsWith("istio_requests_total{") || !line.includes('destination_service_name="server"')) continue;
    const code = /response_code="(\d+)"/.exec(line)?.[1] ?? "?";
    requests[code] = (requests[code] ?? 0) + value;
  }
  return { requests, cpuSeconds: cpu };
}

/** One request from bench/client with curl: whether the waypoint routed it (the route's response header). */
async function routedByWaypoint(): Promise<boolean> {
  const { stdout } = await ambit([
    "dev",
    "exec",
    "bench/client",
    "--",
    "curl",
    "-s",
    "-o",
    "/dev/null",
    "-D",
    "-",
    "--max-time",
    "3",
    "http://server.bench:8080/",
  ]);
  if (!/^HTTP\/1\.1 200/.test(stdout)) throw new Error(`probe: ${stdout.split("\n")[0]}`);
  return new RegExp(`^${ROUTE_HEADER}: waypoint\\r?$`, "im").test(stdout);
}

/** Binds Service server to the waypoint or unbinds it, then waits until the client's agent sends its requests the new way. */
async function setWaypoint(on: boolean): Promise<void> {
  await kubectl(["label", "svc", "server", "-n", "bench", on ? "ambit.dev/use-waypoint=waypoint" : "ambit.dev/use-waypoint-", "--overwrite"]);
  await waitFor(`requests ${on ? "through" : "around"} the waypoint`, async () => (await routedByWaypoint()) === on, 60_000);
  await sleep(1000);
}

/** VmRSS of each process once a second until stopped (KiB samples by name; NaN once a process is gone). */
function sampleRss(pids: Record<string, number>): () => Promise<Record<string, number[]>> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(pids).map((n) => [n, []]));
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const [n, pid] of Object.entries(pids)) samples[n]!.push(await rssKiB(pid).catch(() => NaN));
      await sleep(1000);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return samples;
  };
}

interface Phase {
  latency: Record<string, number>;
  /** CPU time (user + kernel, /proc/<pid>/stat) over the window divided by the requests answered in it, times 1,000. */
  agentCpuPer1kRps: Record<string, number>;
  waypointCpuPer1kRps: number;
  /** The same from the waypoint's own `ambit_waypoint_process_cpu_seconds_total`, as a cross-check. */
  waypointCpuPer1kRpsFromMetrics: number;
  /** istio_requests_total of the waypoint for Service server in the window, by response code: the requests it routed. */
  waypointRequests: Record<string, number>;
  /** Highest VmRSS sampled once a second during the window, KiB. */
  peakRssKiB: Record<string, number>;
}

async function measure(netns: string): Promise<Phase> {
  const warm = await load("rate", ["--rate", String(RATE), "--seconds", String(WARMUP_SECONDS), "--connections", "16"]);
  if (!(warm.requests! > 0)) throw new Error(`warm-up answered no request: ${JSON.stringify(warm)}`);
  const wp = await waypointPod();
  if (!wp) throw new Error("the waypoint pod is gone");
  const pids = { ...(await agentPids()), waypoint: containerPid(wp) };
  const metricsBefore = await waypointMetrics(netns);
  const before = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([n, pid]) => [n, await cpuSeconds(pid)] as const)));
  const stopSampling = sampleRss(pids);
  const latency = await load("rate", ["--rate", String(RATE), "--seconds", String(SECONDS), "--connections", "16"]);
  const rss = await stopSampling();
  if (!(latency.requests! > 0)) throw new Error(`the measured window answered no request: ${JSON.stringify(latency)}`);
  const after = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([n, pid]) => [n, await cpuSeconds(pid)] as const)));
  const metricsAfter = await waypointMetrics(netns);
  const per1k = (cpu: number) => Number(((cpu * 1000) / latency.requests!).toFixed(4));
  const cpu = Object.fromEntries(Object.keys(pids).map((n) => [n, per1k(after[n]! - before[n]!)]));
  const { waypoint: waypointCpuPer1kRps, ...agentCpuPer1kRps } = cpu;
  const codes = new Set([...Object.keys(metricsBefore.requests), ...Object.keys(metricsAfter.requests)]);
  return {
    latency,
    agentCpuPer1kRps,
    waypointCpuPer1kRps: waypointCpuPer1kRps!,
    waypointCpuPer1kRpsFromMetrics: per1k(metricsAfter.cpuSeconds - metricsBefore.cpuSeconds),
    waypointRequests: Object.fromEntries([...codes].map((c) => [c, (metricsAfter.requests[c] ?? 0) - (metricsBefore.requests[c] ?? 0)])),
    peakRssKiB: Object.fromEntries(Object.entries(rss).map(([n, xs]) => [n, Math.max(...xs)])),
  };
}

let downOnce: Promise<unknown> | undefined;
const down = () => (downOnce ??= ambit(["dev", "down"]).catch(() => {}));

async function main(): Promise<void> {
  await ambit(["dev", "down"]).catch(() => {});
  console.log(`starting a bench sandbox (${ENV.AMBIT_DEV_NAME_PREFIX}: 2 nodes, Gateway API CRDs, agent DaemonSet)...`);
  await ambit(["dev", "up", "--no-demo"]);
  try {
    // Before the mesh, as on a cluster with waypoints: the controller watches Gateways and routes from its start.
    const { GATEWAY_API_DIR } = await import("../sandbox/index.ts");
    await kubectl(["apply", "-f", path.join(GATEWAY_API_DIR, "crds.yaml")]);
    await deployMesh();
    await kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-controller", "--timeout=90s"]);
    await kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-agent", "--timeout=90s"]);
    const objects = [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "bench", labels: { "ambit.dev/dataplane-mode": "ambient" } } },
      benchPod("server", "node-2", { image: "bench", command: [NODE, SERVER], ports: [{ containerPort: 8080 }] }, { role: "measured" }),
      benchPod("client", "node-1", { image: "ambit.dev/toolbox:0.1" }, { role: "measured" }),
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "server", namespace: "bench" },
        spec: { selector: { app: "server" }, ports: [{ name: "http", port: 8080, targetPort: 8080 }] },
      },
    ];
    await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
    await kubectl(["wait", "-n", "bench", "--for=condition=Ready", "pod", "--all", "--timeout=90s"]);
    await waitFor("client and server captured", async () => {
      const items = (await podsOf("bench", "role=measured")) as BenchPod[];
      return items.length === 2 && items.every((p) => p.metadata.annotations?.["ambit.dev/redirection"] === "enabled");
    });
    // ECONNREFUSED until the server listens; the kubelet has no probe here.
    await waitFor("the bench server", async () => (await load("max", ["--seconds", "0.2", "--connections", "1"])).requests! > 0, 30_000);

    // The waypoint on a known node: every other node is cordoned while the scheduler places its pod.
    const nodes = JSON.parse((await ambit(["dev", "status", "-o", "json"])).stdout).nodes as Array<{ name: string }>;
    if (!nodes.some((n) => n.name === WAYPOINT_NODE)) throw new Error(`WAYPOINT_NODE ${WAYPOINT_NODE} is not a sandbox node`);
    const others = nodes.map((n) => n.name).filter((n) => n !== WAYPOINT_NODE);
    const cordon = (node: string, on: boolean) => kubectl(["patch", "node", node, "--type=merge", "-p", JSON.stringify({ spec: { unschedulable: on } })]);
    for (const n of others) await cordon(n, true);
    try {
      await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: waypointObjects }));
      await waitFor("the waypoint pod scheduled", async () => Boolean((await waypointPod())?.spec.nodeName));
    } finally {
      for (const n of others) await cordon(n, false);
    }
    await waitFor("the waypoint pod ready and its Gateway programmed", async () => {
      const gw = (await kubectl(["get", "gateway", "-n", "bench", "waypoint", "-o", 'jsonpath={.status.conditions[?(@.type=="Programmed")].status}'])).stdout;
      const p = await waypointPod();
      return gw === "True" && p?.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
    });
    const wp = (await waypointPod())!;
    if (wp.spec.nodeName !== WAYPOINT_NODE) throw new Error(`the waypoint pod landed on ${wp.spec.nodeName}, not ${WAYPOINT_NODE}`);
    const netns = await podNetns(wp.metadata.name);
    console.log(`waypoint pod ${wp.metadata.name} on ${wp.spec.nodeName}`);

    // Idle first, before any request reached it: after load V8 keeps the heap it grew.
    const idlePids = { ...(await agentPids()), waypoint: containerPid(wp) };
    const idleRssKiB = Object.fromEntries(await Promise.all(Object.entries(idlePids).map(async ([n, pid]) => [n, await rssKiB(pid)] as const)));
    const cpuBefore = await Promise.all(Object.values(idlePids).map(cpuSeconds));
    await sleep(5000);
    const cpuAfter = await Promise.all(Object.values(idlePids).map(cpuSeconds));
    const idleVcpu = Object.fromEntries(Object.keys(idlePids).map((n, i) => [n, Number(((cpuAfter[i]! - cpuBefore[i]!) / 5).toFixed(4))]));

    // Bound once here so the route's status can be checked (it is written only for Services bound to a waypoint).
    await kubectl(["label", "svc", "server", "-n", "bench", "ambit.dev/use-waypoint=waypoint", "--overwrite"]);
    await waitFor(
      "HTTPRoute server accepted",
      async () =>
        (await kubectl(["get", "httproute", "-n", "bench", "server", "-o", 'jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status}']))
          .stdout === "True",
      60_000,
    );

    const rounds: Array<{ l4: Phase; waypoint: Phase }> = [];
    for (let r = 1; r <= ROUNDS; r++) {
      await setWaypoint(false);
      const l4 = await measure(netns);
      await setWaypoint(true);
      const waypoint = await measure(netns);
      rounds.push({ l4, waypoint });
      console.log(
        `round ${r}: L4 p50/p99 ${l4.latency.p50Ms}/${l4.latency.p99Ms} ms, waypoint ${waypoint.latency.p50Ms}/${waypoint.latency.p99Ms} ms; ` +
          `waypoint ${waypoint.waypointCpuPer1kRps} vCPU per 1,000 req/s, ${JSON.stringify(waypoint.waypointRequests)} requests routed`,
      );
    }

    // After load: idle again, then after a full collection (the waypoint's localhost admin API), as dataplane-l4 reads agents.
    await sleep(5000);
    const idleAfterLoadKiB = await rssKiB(containerPid(wp));
    await inNetns(netns, ["-X", "POST", "http://127.0.0.1:15000/memory/gc"]);
    await sleep(1500);
    const afterGc = JSON.parse(await inNetns(netns, ["-X", "POST", "http://127.0.0.1:15000/memory/gc"])) as Record<string, number>;

    const med = (f: (r: { l4: Phase; waypoint: Phase }) => number) => median(rounds.map(f));
    const agents = Object.keys(rounds[0]!.waypoint.agentCpuPer1kRps).sort();
    const l4 = { p50Ms: med((r) => r.l4.latency.p50Ms!), p99Ms: med((r) => r.l4.latency.p99Ms!) };
    const withWaypoint = { p50Ms: med((r) => r.waypoint.latency.p50Ms!), p99Ms: med((r) => r.waypoint.latency.p99Ms!) };
    const agentCpu = (phase: "l4" | "waypoint") => Object.fromEntries(agents.map((n) => [n, med((r) => r[phase].agentCpuPer1kRps[n]!)]));
    const agentCpuWaypoint = agentCpu("waypoint");
    const waypointCpu = med((r) => r.waypoint.waypointCpuPer1kRps);
    const meanAgentCpu = agents.reduce((a, n) => a + agentCpuWaypoint[n]!, 0) / agents.length;
    const mib = (kib: number) => Number((kib / 1024).toFixed(1));
    const summary = {
      rounds: ROUNDS,
      rate: RATE,
      seconds: SECONDS,
      placement: { client: "node-1", server: "node-2", waypoint: wp.spec.nodeName },
      latency: {
        l4P50Ms: l4.p50Ms,
        l4P99Ms: l4.p99Ms,
        waypointP50Ms: withWaypoint.p50Ms,
        waypointP99Ms: withWaypoint.p99Ms,
        addedP50Ms: Number((withWaypoint.p50Ms - l4.p50Ms).toFixed(3)),
        addedP99Ms: Number((withWaypoint.p99Ms - l4.p99Ms).toFixed(3)),
      },
      waypointCpuPer1kRps: waypointCpu,
      waypointCpuPer1kRpsFromMetrics: med((r) => r.waypoint.waypointCpuPer1kRpsFromMetrics),
      /** The waypoint's CPU while the same load went around it (L4): what it costs doing nothing, per 1,000 req/s of others. */
      waypointCpuPer1kRpsDuringL4: med((r) => r.l4.waypointCpuPer1kRps),
      agentCpuPer1kRps: { l4: agentCpu("l4"), waypoint: agentCpuWaypoint },
      /** The waypoint's vCPU over one agent's (the mean of the agents' in the same windows), as Istio's 0.25 / 0.06 per ztunnel. */
      waypointToAgentCpuRatio: Number((waypointCpu / meanAgentCpu).toFixed(2)),
      idleVcpu,
      waypointRssMiB: {
        idle: mib(idleRssKiB.waypoint!),
        atLoadPeak: mib(med((r) => r.waypoint.peakRssKiB.waypoint!)),
        idleAfterLoad: mib(idleAfterLoadKiB),
        afterGc: mib(afterGc.rssKiB!),
        afterGcHeapAndBuffersMiB: mib(afterGc.heapUsedKiB! + afterGc.externalKiB!),
      },
      agentRssMiB: {
        idle: Object.fromEntries(agents.map((n) => [n, mib(idleRssKiB[n]!)])),
        atLoadPeak: Object.fromEntries(agents.map((n) => [n, mib(med((r) => r.waypoint.peakRssKiB[n]!))])),
      },
      raw: rounds,
    };
    const perNode = (m: Record<string, number>) =>
      Object.entries(m)
        .map(([n, v]) => `${n} ${v}`)
        .join(", ");
    const routed = (phase: "l4" | "waypoint") => rounds.map((r) => r[phase].waypointRequests["200"] ?? 0).join(", ");
    console.log(`\nclient on node-1, server on node-2, waypoint on ${wp.spec.nodeName}; medians of ${ROUNDS} rounds at ${RATE} req/s keep-alive, 1 KiB`);
    console.log("\n| measure | ambient L4 | ambient + waypoint | goal (Istio) |\n|---|---|---|---|");
    console.log(`| p50 latency (ms) | ${l4.p50Ms} | ${withWaypoint.p50Ms} (+${summary.latency.addedP50Ms}) | |`);
    console.log(`| p99 latency (ms) | ${l4.p99Ms} | ${withWaypoint.p99Ms} (+${summary.latency.addedP99Ms}) | |`);
    console.log(`| requests the waypoint routed (200), per round | ${routed("l4")} | ${routed("waypoint")} | |`);
    console.log(
      `| waypoint vCPU per 1,000 req/s (its metric) | ${summary.waypointCpuPer1kRpsDuringL4} (idle) | ${waypointCpu} (${summary.waypointCpuPer1kRpsFromMetrics}) | (0.25) |`,
    );
    console.log(`| agent vCPU per 1,000 req/s | ${perNode(summary.agentCpuPer1kRps.l4)} | ${perNode(agentCpuWaypoint)} | (ztunnel 0.06) |`);
    console.log(`| waypoint / agent vCPU | | ${summary.waypointToAgentCpuRatio} | <= 3 (4.2) |`);
    console.log(`| waypoint RSS at load, peak (MiB) | | ${summary.waypointRssMiB.atLoadPeak} | <= 60 (60 MB) |`);
    console.log(
      `| waypoint RSS idle: before load / after load / after GC (MiB) | | ${summary.waypointRssMiB.idle} / ${summary.waypointRssMiB.idleAfterLoad} / ${summary.waypointRssMiB.afterGc} (heap + buffers ${summary.waypointRssMiB.afterGcHeapAndBuffersMiB}) | |`,
    );
    console.log(`| vCPU idle | | ${perNode(idleVcpu)} | |`);
    console.log(`| agent RSS idle / at load, peak (MiB) | | ${perNode(summary.agentRssMiB.idle)} / ${perNode(summary.agentRssMiB.atLoadPeak)} | |`);
    const out = path.join(REPO_ROOT, "bench", "results", "dataplane-l7.json");
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, JSON.stringify(summary, null, 2) + "\n");
    console.log(`\nwrote ${out}`);
  } finally {
    await down();
  }
}

// Bounded: past the deadline, or on Ctrl-C, the sandbox goes before the process does.
const abort = (why: string, code: number) => {
  console.error(why);
  void down().finally(() => process.exit(code));
};
const deadline = setTimeout(() => abort(`dataplane-l7: past DEADLINE_S (${DEADLINE_S} s); taking the sandbox down`, 1), DEADLINE_S * 1000);
deadline.unref();
process.once("SIGINT", () => abort("dataplane-l7: interrupted; taking the sandbox down", 130));
process.once("SIGTERM", () => abort("dataplane-l7: terminated; taking the sandbox down", 143));
try {
  await main();
} finally {
  clearTimeout(deadline);
}
