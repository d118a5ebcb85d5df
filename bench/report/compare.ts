// Two runs side by side: per scenario, load and metric the old and new medians and the change in percent, and a terminal table of them.
import { PROXY_NAMES, SCHEMA_VERSION, assertValidResults, type BenchResults } from "./schema.ts";
import { num, scenarioOrder, signed } from "./format.ts";

export interface ComparisonRow {
  scenario: string;
  load: string;
  /** p50Ms, p99Ms, achievedRate, throughputRps, bulkMBps, vcpuPer1000Rps.<proxy> or rssMiB.<proxy>. */
  metric: string;
  /** The old run's median; null when it lacks this one. */
  old: number | null;
  new: number | null;
  /** (new - old) / old in percent; null when either is missing, or old is 0 and new is not. */
  changePct: number | null;
  /** Which direction is an improvement. */
  better: "lower" | "higher";
}

const RESULT_METRICS = [
  ["p50Ms", "lower", (r: BenchResults["results"][number]) => r.median.latencyMs?.p50],
  ["p99Ms", "lower", (r: BenchResults["results"][number]) => r.median.latencyMs?.p99],
  ["achievedRate", "higher", (r: BenchResults["results"][number]) => r.median.achievedRate],
  ["throughputRps", "higher", (r: BenchResults["results"][number]) => r.median.throughputRps],
  ["bulkMBps", "higher", (r: BenchResults["results"][number]) => r.median.bulkMBps],
] as const;

/** Every metric of a run by "scenario\tload\tmetric". */
function metricsOf(run: BenchResults): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of run.results) {
    for (const [metric, , pick] of RESULT_METRICS) {
      const v = pick(r);
      if (v !== undefined) out.set(`${r.scenario}\t${r.load}\t${metric}`, v);
    }
  }
  for (const e of run.resources.proxyCpu) out.set(`${e.scenario}\t${e.load}\tvcpuPer1000Rps.${e.proxy}`, e.vcpuPer1000Rps.median);
  for (const e of run.resources.proxyRss) out.set(`${e.scenario}\t${e.load}\trssMiB.${e.proxy}`, e.rssMiB.median);
  return out;
}

const versionOf = (run: unknown): unknown => (typeof run === "object" && run !== null ? (run as { schemaVersion?: unknown }).schemaVersion : undefined);

/** The rank of a metric in the fixed order: results' metrics, then CPU and memory by proxy. */
function metricRank(metric: string): number {
  const i = RESULT_METRICS.findIndex(([m]) => m === metric);
  if (i >= 0) return i;
  const [kind, proxy] = metric.split(".") as [string, string];
  return RESULT_METRICS.length + (kind === "vcpuPer1000Rps" ? 0 : PROXY_NAMES.length) + (PROXY_NAMES as readonly string[]).indexOf(proxy);
}

/**
 * The medians two runs share, and those only one has: one row per scenario, load and metric (p50, p99, achieved
 * rate, closed-loop req/s, bulk MB/s, each proxy's vCPU per 1,000 req/s and RSS). Both must be valid results of
 * this schemaVersion; a different version is refused, since the same field may not mean the same there.
 */
export function compareResults(oldRun: unknown, newRun: unknown): ComparisonRow[] {
  const [vo, vn] = [versionOf(oldRun), versionOf(newRun)];
  if (vo !== vn)
    throw new Error(
      `cannot compare results of different formats: the old run has schemaVersion ${JSON.stringify(vo)}, the new one ${JSON.stringify(vn)}; compare runs of the same version`,
    );
  if (vo !== SCHEMA_VERSION)
    throw new Error(`cannot compare results of schemaVersion ${JSON.stringify(vo)}: this report reads schemaVersion ${SCHEMA_VERSION} only`);
  assertValidResults(oldRun, "the old results");
  assertValidResults(newRun, "the new results");
  const before = metricsOf(oldRun);
  const after = metricsOf(newRun);
  const loadOrder = [...newRun.loads.map((l) => l.name), ...oldRun.loads.map((l) => l.name)];
  const rows = [...new Set([...after.keys(), ...before.keys()])].map((key): ComparisonRow => {
    const [scenario, load, metric] = key.split("\t") as [string, string, string];
    const o = before.get(key) ?? null;
    const n = after.get(key) ?? null;
    const changePct = o === null || n === null ? null : o === 0 ? (n === 0 ? 0 : null) : Number((((n - o) / o) * 100).toFixed(2));
    const better = metric.startsWith("vcpu") || metric.startsWith("rss") || metric.endsWith("Ms") ? "lower" : "higher";
    return { scenario, load, metric, old: o, new: n, changePct, better };
  });
  return rows.sort(
    (a, b) => scenarioOrder(a.scenario, b.scenario) || loadOrder.indexOf(a.load) - loadOrder.indexOf(b.load) || metricRank(a.metric) - metricRank(b.metric),
  );
}

/** Decimals a metric is shown with. */
function decimals(metric: string): number {
  if (metric.endsWith("Ms") || metric.startsWith("vcpu")) return 3;
  if (metric.startsWith("rss") || metric === "bulkMBps") return 1;
  return 0;
}

/** The rows as a plain-text table for a terminal: aligned columns, the change marked better or worse. */
export function renderComparison(rows: readonly ComparisonRow[]): string {
  if (rows.length === 0) return "no metrics to compare\n";
  const header = ["scenario", "load", "metric", "old", "new", "change"];
  const body = rows.map((r) => {
    const change =
      r.changePct === null
        ? r.old === null
          ? "new"
          : r.new === null
            ? "gone"
            : "n/a"
        : Math.abs(r.changePct) < 0.05
          ? "0.0%"
          : `${signed(r.changePct, 1)}% ${r.changePct < 0 === (r.better === "lower") ? "better" : "worse"}`;
    return [r.scenario, r.load, r.metric, num(r.old, decimals(r.metric)), num(r.new, decimals(r.metric)), change];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const numeric = new Set([3, 4]);
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return `${[line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n")}\n`;
}
