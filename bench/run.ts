// `npm run bench [-- --quick] [--out file.json] [--compare old.json]`: direct vs ambient vs waypoint vs sidecar vs nginx sidecars on one sandbox, one report.
import { execSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import fs from "node:fs/promises";
import { REPO_ROOT } from "../sandbox/config.ts";
import {
  type DraftResults,
  type MeshMemory,
  type PerConnection,
  type ProxyCpu,
  type ProxyName,
  type ProxyRss,
  type RoundResult,
  type RunError,
  type ScenarioName,
  compareResults,
  finalizeResults,
  renderComparison,
  renderMarkdown,
  spread,
  writeReport,
} from "./report/index.ts";
import { benchSandbox, sleep } from "./tools/bench-sandbox.ts";
import { caIssuances, policyPropagation } from "./suite/control-plane.ts";
import { type LoadSpec, cpuByRole, loads, rssByRole, runLoad, toRound } from "./suite/measure.ts";
import { meshMemory, perConnection } from "./suite/memory.ts";
import { SCENARIOS, Scenarios } from "./suite/scenarios.ts";
import { cpuTimes, rssKiB } from "./tools/process-stats.ts";

const { values: flags } = parseArgs({
  options: { quick: { type: "boolean", default: false }, out: { type: "string" }, compare: { type: "string" } },
  allowPositionals: false,
});
const quick = flags.quick === true;
/** Each scenario at least 3 rounds, interleaved: round n of every scenario runs close in time on a shared, noisy machine. */
const ROUNDS = Math.max(3, Number(process.env.ROUNDS ?? 3));
const SECONDS = Number(process.env.SECONDS ?? (quick ? 4 : 10));
const RATE = Number(process.env.RATE ?? 1000);
/** Enrolled pods per mesh on one node for the memory comparison (`POD_COUNTS`, comma-separated, overrides). */
const POD_COUNTS = process.env.POD_COUNTS ? process.env.POD_COUNTS.split(",").map(Number) : quick ? [10] : [10, 50, 100];
const WARMUP_SECONDS = Number(process.env.WARMUP_SECONDS ?? 2);
/** Rounds of the policy propagation bench (bench/controller-scale.ts). */
const POLICY_ROUNDS = Number(process.env.POLICY_ROUNDS ?? (quick ? 5 : 30));
const HELD = Number(process.env.HELD_CONNECTIONS ?? (quick ? 500 : 5000));
const ENV = { AMBIT_DEV_NAME_PREFIX: "ambit-perf", AMBIT_DEV_STATE_DIR: "/run/ambit-perf", AMBIT_DEV_API_PORT: "16447" };
/** `LOADS` (comma-separated names) picks loads of the full list, e.g. to look at one again. */
const LOADS = process.env.LOADS ? loads(RATE).filter((l) => process.env.LOADS!.split(",").includes(l.name)) : quick ? loads(RATE).slice(0, 1) : loads(RATE);
if (LOADS.length === 0)
  throw new Error(
    `LOADS="${process.env.LOADS}" names no load; loads: ${loads(RATE)
      .map((l) => l.name)
      .join(", ")}`,
  );

const t0 = performance.now();
const progress = (line: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}`);
const errors: RunError[] = [];
/** Runs a step; a failure is recorded (the report says which step lacks numbers) and the run goes on. */
async function step<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const message = (err as Error).message.split("\n").slice(0, 6).join(" ");
    errors.push({ step: name, message });
    progress(`FAILED ${name}: ${message}`);
    return undefined;
  }
}

const sb = benchSandbox(ENV);
const scenarios = new Scenarios(sb);
const startedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
const roundsByKey = new Map<string, RoundResult[]>();
const cpuSamples = new Map<string, number[]>();
const rssSamples = new Map<string, number[]>();
const perConnections: PerConnection[] = [];
let memory: MeshMemory[] = [];
let controller: { cpuVcpu: number; rssMiB: number } | undefined;
const controlPlane: DraftResults["controlPlane"] = {};

async function controllerPids(): Promise<number[]> {
  return (await sb.podsOf("ambit-system", "app=ambit-controller")).map((p) => Number(p.status.containerStatuses?.[0]?.containerID?.replace("sandbox://", "")));
}

async function measureOne(name: ScenarioName, spec: LoadSpec, round: number, goalLoad: boolean): Promise<void> {
  const target = await scenarios.target(name);
  const pids = goalLoad ? await scenarios.proxies(name) : {};
  const before = await cpuByRole(pids);
  const started = performance.now();
  const out = await runLoad(spec, target, SECONDS);
  const wall = (performance.now() - started) / 1000;
  const r = toRound(spec, round, out);
  const key = `${name}|${spec.name}`;
  roundsByKey.set(key, [...(roundsByKey.get(key) ?? []), r]);
  if (goalLoad && r.achievedRate) {
    const after = await cpuByRole(pids);
    const rss = await rssByRole(await scenarios.memoryPids(name));
    for (const role of Object.keys(pids)) {
      const k = `${name}|${role}`;
      cpuSamples.set(k, [...(cpuSamples.get(k) ?? []), (after[role]! - before[role]!) / wall / (r.achievedRate / 1000)]);
      rssSamples.set(k, [...(rssSamples.get(k) ?? []), rss[role] ?? 0]);
    }
  }
  const p = r.latencyMs ? `p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms` : r.bulkMBps !== undefined ? `${r.bulkMBps} MB/s` : `${r.throughputRps} req/s`;
  progress(`round ${round}/${ROUNDS} ${name.padEnd(17)} ${spec.name.padEnd(19)} ${p}${r.errors ? `, ${r.errors} errors` : ""}`);
}

async function main(): Promise<void> {
  progress(`${quick ? "quick" : "full"} run: ${ROUNDS} rounds x ${SCENARIOS.length} scenarios x ${LOADS.length} loads, ${SECONDS} s each, ${RATE} req/s`);
  await sb.ambit(["dev", "down"]).catch(() => {});
  progress(`starting a sandbox of its own (${ENV.AMBIT_DEV_NAME_PREFIX}: 2 nodes, Gateway API CRDs, the mesh from its chart)`);
  await sb.ambit(["dev", "up", "--no-demo"]);
  const { GATEWAY_API_DIR } = await import("../sandbox/index.ts");
  // Before the mesh, as on a cluster with waypoints: the controller watches Gateways and routes from its start.
  await sb.kubectl(["apply", "-f", path.join(GATEWAY_API_DIR, "crds.yaml")]);
  await sb.deployMesh();
  await sb.kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-controller", "--timeout=120s"]);
  await sb.kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-agent", "--timeout=120s"]);
  await scenarios.setUp(progress);

  const ctlPids = await controllerPids();
  const ctlCpuStart = (await Promise.all(ctlPids.map(cpuTimes))).reduce((s, t) => s + t.user + t.kernel, 0);
  const ctlStart = performance.now();

  progress(`warm-up: every scenario, ${WARMUP_SECONDS} s of the first load (discarded)`);
  for (const s of SCENARIOS)
    await step(`warm-up ${s.name}`, async () => {
      // Until the route is in effect everywhere it applies, and connections, certificates and JIT are warm.
      await runLoad(LOADS[0]!, await scenarios.target(s.name), WARMUP_SECONDS);
    });

  for (let round = 1; round <= ROUNDS; round++) {
    // The order rotates each round, so no scenario always runs right after another's load.
    const order = SCENARIOS.map((_, i) => SCENARIOS[(i + round - 1) % SCENARIOS.length]!);
    for (const s of order)
      for (const [i, spec] of LOADS.entries()) await step(`round ${round} ${s.name} ${spec.name}`, () => measureOne(s.name, spec, round, i === 0));
  }

  for (const name of ["ambient", "sidecar", "nginx-sidecar"] as const)
    await step(`memory per connection ${name}`, async () => {
      progress(`memory per open connection: ${name}, ${HELD} connections held`);
      const target = await scenarios.target(name);
      const status = JSON.parse((await sb.ambit(["dev", "status", "-o", "json"])).stdout) as {
        pods: Array<{ namespace: string; name: string; netns: string }>;
        nodes: Array<{ name: string; netns: string }>;
      };
      const netnsOf = async (role: string) => {
        if (role === "agent-client") return status.nodes.find((n) => n.name === "node-1")?.netns;
        if (role === "agent-server") return status.nodes.find((n) => n.name === "node-2")?.netns;
        if (role === "sidecar-client") return status.pods.find((p) => p.namespace === "b-sidecar" && p.name === "client")?.netns;
        if (role === "sidecar-server") return status.pods.find((p) => p.namespace === "b-sidecar" && p.name === "server")?.netns;
        return undefined;
      };
      perConnections.push(await perConnection(sb, scenarios, target, HELD, netnsOf));
    });

  const mem = await step("mesh memory per node", () => meshMemory(sb, POD_COUNTS, progress));
  if (mem) memory = mem;

  await step("controller usage", async () => {
    const cpu = (await Promise.all(ctlPids.map(cpuTimes))).reduce((s, t) => s + t.user + t.kernel, 0) - ctlCpuStart;
    const rss = (await Promise.all(ctlPids.map(rssKiB))).reduce((a, b) => a + b, 0) / 1024;
    controller = { cpuVcpu: Math.round((cpu / ((performance.now() - ctlStart) / 1000)) * 10_000) / 10_000, rssMiB: Math.round(rss * 10) / 10 };
  });
}

async function controlPlaneSteps(): Promise<void> {
  // After the sandbox is down: these run in one process each and would compete with the data plane's loads.
  const issued = await step("control plane: CA issuances", async () => {
    progress("control plane: CA issuances per second (bench/ca-issue.ts)");
    return caIssuances(quick);
  });
  if (issued !== undefined) controlPlane.certIssuancesPerSec = issued;
  const propagation = await step("control plane: policy propagation", async () => {
    progress("control plane: policy propagation at 1,000 pods over 20 nodes (bench/controller-scale.ts)");
    return policyPropagation(1000, 20, POLICY_ROUNDS);
  });
  if (propagation) controlPlane.policyPropagationMs = propagation;
}

function git(): { commit: string | null; dirty: boolean } {
  try {
    const commit = execSync("git rev-parse HEAD", { cwd: REPO_ROOT }).toString().trim();
    const dirty = execSync("git status --porcelain", { cwd: REPO_ROOT }).toString().trim() !== "";
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: false };
  }
}

try {
  await step("data plane", main);
} finally {
  progress("tearing the sandbox down");
  await scenarios.tearDown().catch(() => {});
  await sb.ambit(["dev", "down"]).catch(() => {});
}
await controlPlaneSteps();

const proxyCpu: ProxyCpu[] = [];
const proxyRss: ProxyRss[] = [];
for (const [key, samples] of cpuSamples) {
  const [scenario, proxy] = key.split("|") as [ScenarioName, ProxyName];
  proxyCpu.push({ scenario, load: LOADS[0]!.name, proxy, vcpuPer1000Rps: spread(samples.map((x) => Math.round(x * 10_000) / 10_000)) });
  proxyRss.push({ scenario, load: LOADS[0]!.name, proxy, rssMiB: spread((rssSamples.get(key) ?? []).map((x) => Math.round(x * 10) / 10)) });
}
const cpus = os.cpus();
const results = finalizeResults({
  startedAt,
  finishedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
  quick,
  git: git(),
  machine: {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    node: process.version,
  },
  settings: {
    rounds: ROUNDS,
    seconds: SECONDS,
    rate: RATE,
    heldConnections: HELD,
    podCounts: POD_COUNTS.join(","),
    warmupSeconds: WARMUP_SECONDS,
    policyRounds: POLICY_ROUNDS,
  },
  scenarios: SCENARIOS,
  loads: LOADS.map(({ name, description, kind }) => ({ name, description, kind })),
  results: [...roundsByKey].map(([key, rounds]) => {
    const [scenario, load] = key.split("|") as [ScenarioName, string];
    return { scenario, load, rounds };
  }),
  resources: { proxyCpu, proxyRss, meshMemory: memory, perConnection: perConnections, ...(controller ? { controller } : {}) },
  controlPlane,
  errors,
});
const dir = path.join(REPO_ROOT, "bench", "results");
await fs.mkdir(dir, { recursive: true });
const written = await writeReport(results, { dir, ...(flags.out ? { outJson: path.resolve(flags.out) } : {}) });
console.log(`\n${renderMarkdown(results)}`);
console.log(`wrote ${[written.json, written.markdown, ...written.charts].map((f) => path.relative(REPO_ROOT, f)).join(", ")}`);
if (flags.compare) {
  const old = JSON.parse(await fs.readFile(path.resolve(flags.compare), "utf8")) as unknown;
  console.log(`\nchange against ${flags.compare}:\n${renderComparison(compareResults(old, results))}`);
}
await sleep(0);
process.exit(errors.length > 0 ? 1 : 0);
