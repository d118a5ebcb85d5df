// The report's arithmetic: percentiles (sorted samples or an HDR-like histogram), medians and ranges across rounds, latency against direct and sidecar, and the project's goals.
import {
  RANGE_FIELDS,
  SCHEMA_VERSION,
  type BenchResults,
  type Goal,
  type LatencyDelta,
  type LatencyMs,
  type Measurement,
  type Ranges,
  type Ratio,
  type RoundResult,
  type ScenarioLoadResult,
  type ScenarioName,
  type Spread,
} from "./schema.ts";
import { num, signed } from "./format.ts";

/** Rounds a derived figure to 4 decimals, so medians of two samples do not print float noise (0.1 µs for ms). */
export const round4 = (x: number): number => Number(x.toFixed(4));

/** p as a rank among n samples, nearest-rank: the smallest rank r with r / n >= p / 100 (at least 1). */
function nearestRank(p: number, n: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is not within 0..100`);
  // p * n / 100 computed so that integral results stay exact (99.9 * 1000 / 100 is 999.0000000000001 otherwise).
  return Math.max(1, Math.ceil((p * n) / 100 - 1e-9));
}

/**
 * The p-th percentile (0..100) of samples sorted in ascending order, by the nearest-rank method: the smallest sample
 * such that at least p% of all samples are at or below it. No interpolation, so the result is always a measured
 * value (p100 is the maximum; p0 the minimum). Throws on an empty or unsorted array.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of no samples");
  for (let i = 1; i < sorted.length; i++) if (sorted[i]! < sorted[i - 1]!) throw new RangeError(`samples are not sorted (index ${i})`);
  return sorted[nearestRank(p, sorted.length) - 1]!;
}

/**
 * One bucket of an HDR-like histogram: `count` samples whose value rounds up to `value`, the highest value the bucket
 * stands for (HdrHistogram's "highest equivalent value").
 */
export interface HistogramBucket {
  value: number;
  count: number;
}

/**
 * The p-th percentile (0..100) of the samples a histogram counts, by the same nearest-rank rule as `percentile`,
 * reported as the upper value of the bucket that holds that sample: it may overstate by up to one bucket's width,
 * never understate. Buckets may come in any order; empty ones are ignored. Throws when no bucket counts a sample.
 */
export function histogramPercentile(buckets: readonly HistogramBucket[], p: number): number {
  const sorted = buckets.filter((b) => b.count > 0).sort((a, b) => a.value - b.value);
  const total = sorted.reduce((sum, b) => sum + b.count, 0);
  if (total === 0) throw new RangeError("percentile of an empty histogram");
  const rank = nearestRank(p, total);
  let seen = 0;
  for (const b of sorted) {
    seen += b.count;
    if (seen >= rank) return b.value;
  }
  return sorted.at(-1)!.value;
}

/** Median of values in any order: the middle one, or the mean of the two middle ones. Throws on none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("median of no values");
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** [lowest, highest]. Throws on none. */
export function range(xs: readonly number[]): [number, number] {
  if (xs.length === 0) throw new RangeError("range of no values");
  return [Math.min(...xs), Math.max(...xs)];
}

/** Median, lowest and highest of one value per round (medians rounded to 4 decimals). */
export function spread(xs: readonly number[]): Spread {
  const [min, max] = range(xs);
  return { median: round4(median(xs)), min, max };
}

const PERCENTILES = ["p50", "p90", "p99", "p999", "max"] as const satisfies ReadonlyArray<keyof LatencyMs>;

/** The value of a range field in one round, if it has it. */
function rangeValue(r: Measurement, field: (typeof RANGE_FIELDS)[number]): number | undefined {
  switch (field) {
    case "achievedRate":
    case "throughputRps":
    case "bulkMBps":
      return r[field];
    default:
      return r.latencyMs?.[field];
  }
}

/**
 * A result's `median` and `range` from its rounds: each field's median over the rounds that have it (each latency
 * percentile on its own, over the rounds that have latency), rounded to 4 decimals, and [min, max] of the latency
 * percentiles and rates.
 */
export function summarizeRounds(rounds: readonly RoundResult[]): { median: Measurement; range: Ranges } {
  if (rounds.length === 0) throw new RangeError("no rounds to summarize");
  const of = (pick: (r: RoundResult) => number | undefined) => rounds.map(pick).filter((v): v is number => v !== undefined);
  const medianOf = (pick: (r: RoundResult) => number | undefined): number | undefined => {
    const values = of(pick);
    return values.length ? round4(median(values)) : undefined;
  };
  // Keys in the schema's order, so two runs with the same numbers serialize the same.
  const med: Partial<Measurement> = {};
  const withLatency = rounds.filter((r) => r.latencyMs);
  if (withLatency.length) {
    med.latencyMs = Object.fromEntries(PERCENTILES.map((p) => [p, round4(median(withLatency.map((r) => r.latencyMs![p])))])) as unknown as LatencyMs;
  }
  for (const field of ["targetRate", "achievedRate", "requests"] as const) {
    const v = medianOf((r) => r[field]);
    if (v !== undefined) med[field] = v;
  }
  med.errors = medianOf((r) => r.errors)!;
  for (const field of ["throughputRps", "bulkMBps"] as const) {
    const v = medianOf((r) => r[field]);
    if (v !== undefined) med[field] = v;
  }
  med.durationS = medianOf((r) => r.durationS)!;
  const ranges: Ranges = {};
  for (const field of RANGE_FIELDS) {
    const values = of((r) => rangeValue(r, field));
    if (values.length) ranges[field] = range(values);
  }
  return { median: med as Measurement, range: ranges };
}

/** Paired rounds' deltas of `scenario` against `reference`, or undefined when no round has both with latency. */
function delta(scenario: ScenarioLoadResult, reference: ScenarioLoadResult | undefined): LatencyDelta | undefined {
  if (!reference) return undefined;
  const byRound = new Map(reference.rounds.filter((r) => r.latencyMs).map((r) => [r.round, r.latencyMs!]));
  const pairs = scenario.rounds.flatMap((r) => {
    const ref = byRound.get(r.round);
    return r.latencyMs && ref ? [[r.latencyMs, ref] as const] : [];
  });
  if (pairs.length === 0) return undefined;
  const ratios = pairs.filter(([, ref]) => ref.p99 > 0).map(([l, ref]) => l.p99 / ref.p99);
  return {
    addedP50Ms: round4(median(pairs.map(([l, ref]) => l.p50 - ref.p50))),
    addedP99Ms: round4(median(pairs.map(([l, ref]) => l.p99 - ref.p99))),
    p99Ratio: ratios.length ? round4(median(ratios)) : 0,
    rounds: pairs.length,
  };
}

/**
 * Each non-direct scenario's latency against direct (and against sidecar, for the others) under the same load: the
 * difference (and the p99 ratio) within each round both were measured in, then the median over those rounds. A
 * scenario with no round paired with direct gets no entry. In the order of `results`.
 */
export function computeRatios(results: readonly ScenarioLoadResult[]): Ratio[] {
  const find = (scenario: ScenarioName, load: string) => results.find((r) => r.scenario === scenario && r.load === load);
  const out: Ratio[] = [];
  for (const r of results) {
    if (r.scenario === "direct") continue;
    const vsDirect = delta(r, find("direct", r.load));
    if (!vsDirect) continue;
    const vsSidecar = r.scenario === "sidecar" ? undefined : delta(r, find("sidecar", r.load));
    out.push({ scenario: r.scenario, load: r.load, vsDirect, ...(vsSidecar ? { vsSidecar } : {}) });
  }
  return out;
}

/** The load the latency and CPU goals are judged under: 1,000 req/s over 16 keep-alive connections. */
export const GOAL_LOAD = "keepalive-16c";
export const GOAL_RATE = 1000;
export const GOAL_PODS = 100;

export const GOAL_IDS = {
  ambientP99: "ambient-p99-vs-sidecars",
  meshMemory: "mesh-memory-100-pods",
  agentCpu: "agent-cpu-vs-sidecars",
  waypointP99: "waypoint-p99-vs-sidecar",
} as const;

const ms = (x: number) => `${signed(x, 3)} ms`;
const list = (xs: string[]) => (xs.length <= 1 ? xs.join("") : `${xs.slice(0, -1).join(", ")} and ${xs.at(-1)}`);

/** met from known comparisons and missing data: false if any comparison fails; else null if something is missing; else true. */
function verdict(checks: boolean[], missing: string[]): boolean | null {
  if (checks.some((ok) => !ok)) return false;
  return missing.length ? null : true;
}
const detailOf = (parts: string[], missing: string[]) => [...parts, ...(missing.length ? [`missing: ${list(missing)}`] : [])].join("; ");

/** The run as goals read it: its results and resources. */
export type GoalInput = Pick<BenchResults, "results" | "resources">;

function addedP99Goal(run: GoalInput, id: string, text: string, subject: ScenarioName, references: ScenarioName[]): Goal {
  const ratios = computeRatios(run.results.filter((r) => r.load === GOAL_LOAD));
  const missing: string[] = [];
  const added = (scenario: ScenarioName): number | undefined => {
    const result = run.results.find((r) => r.scenario === scenario && r.load === GOAL_LOAD);
    const rate = result?.median.targetRate;
    if (rate !== undefined && rate !== GOAL_RATE) {
      missing.push(`${GOAL_LOAD} at ${GOAL_RATE} req/s for ${scenario} (it ran at ${rate} req/s)`);
      return undefined;
    }
    const r = ratios.find((x) => x.scenario === scenario);
    if (!r) missing.push(`${GOAL_LOAD} latency for ${scenario} and direct in a common round`);
    return r?.vsDirect.addedP99Ms;
  };
  const mine = added(subject);
  const parts: string[] = [];
  const checks: boolean[] = [];
  if (mine !== undefined) parts.push(`${subject} ${ms(mine)}`);
  for (const ref of references) {
    const theirs = added(ref);
    if (theirs === undefined) continue;
    parts.push(`${ref} ${ms(theirs)}`);
    if (mine !== undefined) checks.push(mine <= theirs);
  }
  const head = parts.length ? [`p99 added over direct (${GOAL_LOAD}, median over paired rounds): ${parts.join(", ")}`] : [];
  return { id, text, met: verdict(checks, missing), detail: detailOf(head, missing) };
}

function meshMemoryGoal(run: GoalInput): Goal {
  const at = (scenario: ScenarioName) => run.resources.meshMemory.find((m) => m.scenario === scenario && m.pods === GOAL_PODS)?.totalMiB;
  const ambient = at("ambient");
  const sidecar = at("sidecar");
  const missing = [
    ...(ambient === undefined ? [`ambient mesh memory at ${GOAL_PODS} pods`] : []),
    ...(sidecar === undefined ? [`sidecar mesh memory at ${GOAL_PODS} pods`] : []),
  ];
  const parts: string[] = [];
  if (ambient !== undefined) parts.push(`ambient ${num(ambient, 1)} MiB`);
  if (sidecar !== undefined) parts.push(`sidecar ${num(sidecar, 1)} MiB (1/20: ${num(sidecar / 20, 1)} MiB)`);
  if (ambient !== undefined && sidecar !== undefined) parts.push(`ambient is 1/${ambient > 0 ? num(sidecar / ambient, 1) : "∞"} of sidecar`);
  const checks = ambient !== undefined && sidecar !== undefined ? [ambient * 20 <= sidecar] : [];
  return {
    id: GOAL_IDS.meshMemory,
    text: `Mesh memory with ${GOAL_PODS} enrolled pods: ambient at most 1/20 of sidecar`,
    met: verdict(checks, missing),
    detail: detailOf(parts.length ? [`at ${GOAL_PODS} pods: ${parts.join(", ")}`] : [], missing),
  };
}

function agentCpuGoal(run: GoalInput): Goal {
  const missing: string[] = [];
  /** The sum of the pair's median vCPU per 1,000 req/s under the goal load. */
  const pairCpu = (scenario: ScenarioName, proxies: [string, string]): number | undefined => {
    const values = proxies.map((proxy) => {
      const e = run.resources.proxyCpu.find((c) => c.scenario === scenario && c.load === GOAL_LOAD && c.proxy === proxy);
      if (!e) missing.push(`${proxy} vCPU in ${scenario} under ${GOAL_LOAD}`);
      return e?.vcpuPer1000Rps.median;
    });
    return values.every((v) => v !== undefined) ? values[0]! + values[1]! : undefined;
  };
  const agents = pairCpu("ambient", ["agent-client", "agent-server"]);
  const sidecars = pairCpu("sidecar", ["sidecar-client", "sidecar-server"]);
  const nginx = pairCpu("nginx-sidecar", ["nginx-client", "nginx-server"]);
  const parts: string[] = [];
  const checks: boolean[] = [];
  if (agents !== undefined) parts.push(`agents ${num(agents, 3)}`);
  if (sidecars !== undefined) parts.push(`sidecar pair ${num(sidecars, 3)}`);
  if (nginx !== undefined) parts.push(`nginx pair ${num(nginx, 3)} (2x: ${num(2 * nginx, 3)})`);
  if (agents !== undefined && sidecars !== undefined) checks.push(agents <= sidecars);
  if (agents !== undefined && nginx !== undefined) checks.push(agents <= 2 * nginx);
  return {
    id: GOAL_IDS.agentCpu,
    text: `Agent vCPU per 1,000 req/s (client + server agent, ${GOAL_LOAD}): at most the sidecar pair's, and within 2x of the nginx pair's`,
    met: verdict(checks, missing),
    detail: detailOf(parts.length ? [`vCPU per 1,000 req/s, medians summed per pair: ${parts.join(", ")}`] : [], missing),
  };
}

/**
 * The project's goals judged on a run. A goal whose data is partly missing is not met (false) if a comparison it
 * could make fails, and null otherwise; `detail` gives the numbers compared and names what is missing.
 *
 * - ambient adds no more p99 over direct than sidecar and nginx-sidecar do (keepalive-16c at 1,000 req/s);
 * - mesh memory with 100 pods: ambient <= 1/20 of sidecar;
 * - the two agents' vCPU per 1,000 req/s <= the two sidecars', and <= 2x the two nginx sidecars' (keepalive-16c);
 * - ambient-waypoint adds no more p99 over direct than sidecar does (keepalive-16c at 1,000 req/s).
 */
export function evaluateGoals(run: GoalInput): Goal[] {
  return [
    addedP99Goal(
      run,
      GOAL_IDS.ambientP99,
      `Ambient adds no more p99 latency over direct than sidecar and nginx-sidecar (${GOAL_LOAD}: 1,000 req/s over 16 keep-alive connections)`,
      "ambient",
      ["sidecar", "nginx-sidecar"],
    ),
    meshMemoryGoal(run),
    agentCpuGoal(run),
    addedP99Goal(
      run,
      GOAL_IDS.waypointP99,
      `Ambient with a waypoint adds no more p99 latency over direct than sidecar (${GOAL_LOAD}: 1,000 req/s over 16 keep-alive connections)`,
      "ambient-waypoint",
      ["sidecar"],
    ),
  ];
}

/** A run as a harness collects it: each result's rounds (median and range are derived), no ratios or goals yet. */
export type DraftResults = Omit<BenchResults, "schemaVersion" | "results" | "ratios" | "goals"> & {
  results: Array<Pick<ScenarioLoadResult, "scenario" | "load" | "rounds">>;
};

/** A complete results object from a draft: medians and ranges from the rounds, then ratios and goals. */
export function finalizeResults(draft: DraftResults): BenchResults {
  const results: ScenarioLoadResult[] = draft.results.map((r) => ({ scenario: r.scenario, load: r.load, rounds: r.rounds, ...summarizeRounds(r.rounds) }));
  const { startedAt, finishedAt, command, quick, git, machine, settings, scenarios, loads, resources, controlPlane, errors } = draft;
  return {
    schemaVersion: SCHEMA_VERSION,
    startedAt,
    finishedAt,
    command,
    quick,
    git,
    machine,
    settings,
    scenarios,
    loads,
    results,
    resources,
    controlPlane,
    ratios: computeRatios(results),
    goals: evaluateGoals({ results, resources }),
    errors,
  };
}
