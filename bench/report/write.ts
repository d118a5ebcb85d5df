// Writes one run's report files: the results JSON (validated first), the Markdown report and its SVG charts, named after the run's start time.
import fs from "node:fs/promises";
import path from "node:path";
import { assertValidResults, type BenchResults } from "./schema.ts";
import { renderMarkdown } from "./markdown.ts";
import { latencyChartSvg, memoryChartSvg } from "./svg.ts";

export interface WriteReportOptions {
  /** Where the Markdown and charts go (created if missing), and the JSON unless `outJson` says otherwise. */
  dir: string;
  /** The results JSON's path instead of `<dir>/<timestamp>.json`. */
  outJson?: string;
}

export interface WrittenReport {
  json: string;
  markdown: string;
  /** `<dir>/<timestamp>-<load>.svg` for each load with latency, then `<dir>/<timestamp>-memory.svg` if mesh memory was measured. */
  charts: string[];
}

/** A file-name-safe timestamp of the run's start, in UTC to the second: 2025-06-01T12-34-56Z. */
export function reportTimestamp(startedAt: string): string {
  return startedAt.replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
}

/**
 * Validates `results` against the results format, then writes `<timestamp>.json` (or `outJson`), `<timestamp>.md`
 * and the charts into `dir`, and returns their paths. Nothing is written when the results are invalid: the Error
 * lists every problem.
 */
export async function writeReport(results: BenchResults, options: WriteReportOptions): Promise<WrittenReport> {
  assertValidResults(results, "bench results (nothing written)");
  const stamp = reportTimestamp(results.startedAt);
  const at = (name: string) => path.join(options.dir, name);
  const charts: Array<{ key: string; file: string; svg: string }> = [];
  for (const load of results.loads) {
    if (results.results.some((r) => r.load === load.name && r.median.latencyMs))
      charts.push({ key: load.name, file: `${stamp}-${load.name}.svg`, svg: latencyChartSvg(results, load.name) });
  }
  if (results.resources.meshMemory.length) charts.push({ key: "memory", file: `${stamp}-memory.svg`, svg: memoryChartSvg(results) });
  const markdown = renderMarkdown(results, { charts: Object.fromEntries(charts.map((c) => [c.key, c.file])) });

  const json = options.outJson ?? at(`${stamp}.json`);
  await fs.mkdir(options.dir, { recursive: true });
  await fs.mkdir(path.dirname(json), { recursive: true });
  await fs.writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  await fs.writeFile(at(`${stamp}.md`), markdown);
  for (const c of charts) await fs.writeFile(at(c.file), c.svg);
  return { json, markdown: at(`${stamp}.md`), charts: charts.map((c) => at(c.file)) };
}
