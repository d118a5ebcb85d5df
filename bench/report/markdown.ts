// Renders a results object as a Markdown report: header, one table per load, resources, control plane, goals and errors; same input, same bytes.
import { PROXY_NAMES, type BenchResults, type LoadKind, type ScenarioLoadResult } from "./schema.ts";
import { num, scenarioOrder, signed } from "./format.ts";

export interface MarkdownOptions {
  /** Chart images to link: by load name, and "memory" for the mesh-memory chart; paths relative to the Markdown file. */
  charts?: Readonly<Record<string, string>>;
}

/** Text in Markdown: every character that could start markup is backslash-escaped (CommonMark allows it before any ASCII punctuation). */
export const mdText = (s: string): string => s.replace(/[\\`*_[\]<>|#]/g, (c) => `\\${c}`).replace(/\r?\n/g, " ");

/** A code span that holds `s` whatever backticks it contains. In a table cell, pass `inTable` (GFM splits cells at "|" even in code). */
function code(s: string, inTable = false): string {
  const longest = Math.max(0, ...(s.match(/`+/g) ?? []).map((run) => run.length));
  const fence = "`".repeat(longest + 1);
  const pad = s.startsWith("`") || s.endsWith("`") ? " " : "";
  const text = s.replace(/\r?\n/g, " ");
  return `${fence}${pad}${inTable ? text.replaceAll("|", "\\|") : text}${pad}${fence}`;
}

function table(headers: string[], rows: string[][], rightAligned: ReadonlySet<number> = new Set()): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map((_, i) => (rightAligned.has(i) ? "---:" : "---"))), ...rows.map(line)].join("\n");
}
/** The first `names` columns name the row; the others hold numbers, right-aligned. */
const numbersTable = (headers: string[], rows: string[][], names = 1) => table(headers, rows, new Set(headers.map((_, i) => i).filter((i) => i >= names)));

const utc = (iso: string) =>
  iso
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z")
    .replace(/Z$/, " UTC");

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "n/a";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function header(run: BenchResults): string[] {
  const m = run.machine;
  const { rounds, seconds, rate, ...extra } = run.settings;
  const settings = [
    `rounds ${rounds}`,
    `seconds ${seconds}`,
    `rate ${num(rate)} req/s`,
    ...Object.keys(extra)
      .sort()
      .map((k) => `${k} ${String(extra[k])}`),
  ];
  const lines = [
    "# Ambit benchmark report",
    "",
    ...(run.quick ? ["> **Quick run**: fewer rounds and shorter loads than a full run; read the numbers as indicative only.", ""] : []),
    `- **Date:** ${utc(run.startedAt)} to ${utc(run.finishedAt)} (${duration((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000)})`,
    `- **Command:** ${code(run.command)}`,
    `- **Commit:** ${run.git.commit === null ? "not a git checkout" : code(run.git.commit)}${run.git.dirty ? " with uncommitted changes" : ""}`,
    `- **Machine:** ${m.cpus} CPUs (${mdText(m.cpuModel || "unknown model")}), ${num(m.memoryGiB, 1)} GiB memory, Linux ${mdText(m.kernel)}, Node ${mdText(m.node)}`,
    `- **Settings:** ${mdText(settings.join(", "))}`,
    `- **Results format:** schemaVersion ${run.schemaVersion}`,
  ];
  return lines;
}

const byScenario = (a: { scenario: string }, b: { scenario: string }) => scenarioOrder(a.scenario, b.scenario);

function loadSection(run: BenchResults, load: { name: string; description: string; kind: LoadKind }, charts: Readonly<Record<string, string>>): string[] {
  const results = run.results.filter((r) => r.load === load.name).sort(byScenario);
  const out = [`### ${mdText(load.name)}`, "", `${mdText(load.description)} (${load.kind})`, ""];
  const chart = charts[load.name];
  if (chart) out.push(`![${mdText(load.name)} latency](${encodeURI(chart)})`, "");
  if (results.length === 0) return [...out, "No results.", ""];
  const has = (pick: (r: ScenarioLoadResult) => unknown) => results.some((r) => pick(r) !== undefined);
  const latency = has((r) => r.median.latencyMs);
  const achieved = has((r) => r.median.achievedRate);
  const throughput = has((r) => r.median.throughputRps);
  const bulk = has((r) => r.median.bulkMBps);
  const direct = results.find((r) => r.scenario === "direct");
  const headers = ["scenario"];
  if (latency) headers.push("p50 ms", "p90 ms", "p99 ms (range)", "p99.9 ms", "max ms");
  if (achieved) headers.push("achieved req/s");
  if (throughput) headers.push("req/s (range)");
  if (bulk) headers.push("MB/s (range)");
  if ((throughput || bulk) && direct) headers.push("of direct");
  headers.push("errors");
  if (latency) headers.push("+p99 vs direct", "p99 vs sidecar");
  const rows = results.map((r) => {
    const l = r.median.latencyMs;
    const row: string[] = [r.scenario];
    const withRange = (x: number | undefined, span: [number, number] | undefined, d: number) =>
      x === undefined ? "n/a" : span ? `${num(x, d)} (${num(span[0], d)}–${num(span[1], d)})` : num(x, d);
    if (latency) row.push(num(l?.p50, 3), num(l?.p90, 3), withRange(l?.p99, r.range.p99, 3), num(l?.p999, 3), num(l?.max, 3));
    if (achieved) {
      const target = r.median.targetRate;
      row.push(r.median.achievedRate === undefined ? "n/a" : `${num(r.median.achievedRate)}${target === undefined ? "" : ` of ${num(target)}`}`);
    }
    if (throughput) row.push(withRange(r.median.throughputRps, r.range.throughputRps, 0));
    if (bulk) row.push(withRange(r.median.bulkMBps, r.range.bulkMBps, 1));
    if ((throughput || bulk) && direct) {
      const field = throughput ? "throughputRps" : "bulkMBps";
      const mine = r.median[field];
      const theirs = direct.median[field];
      row.push(mine !== undefined && theirs ? `${num((100 * mine) / theirs)}%` : "n/a");
    }
    row.push(num(r.rounds.reduce((sum, rd) => sum + rd.errors, 0)));
    if (latency) {
      const ratio = run.ratios.find((x) => x.scenario === r.scenario && x.load === r.load);
      row.push(
        r.scenario === "direct" ? "—" : ratio ? `${signed(ratio.vsDirect.addedP99Ms, 3)} ms` : "n/a",
        r.scenario === "sidecar" || r.scenario === "direct" ? "—" : ratio?.vsSidecar ? `${num(ratio.vsSidecar.p99Ratio, 2)}×` : "n/a",
      );
    }
    return row;
  });
  out.push(numbersTable(headers, rows), "");
  const rounds = [...new Set(results.map((r) => r.rounds.length))].sort((a, b) => a - b);
  const notes = [`Medians of ${rounds.join(" or ")} round${rounds.at(-1) === 1 ? "" : "s"}`];
  if (latency) notes.push("the p99 range is the lowest and highest round", "+p99 vs direct and p99 vs sidecar are medians over the rounds both ran in");
  notes.push("errors are summed over rounds");
  return [...out, `${notes.join("; ")}.`, ""];
}

function resourcesSection(run: BenchResults, memoryChart: string | undefined): string[] {
  const loadIndex = (name: string) => run.loads.findIndex((l) => l.name === name);
  const proxyIndex = (name: string) => (PROXY_NAMES as readonly string[]).indexOf(name);
  const sortProxies = <T extends { scenario: string; load: string; proxy: string }>(xs: readonly T[]) =>
    [...xs].sort((a, b) => byScenario(a, b) || loadIndex(a.load) - loadIndex(b.load) || proxyIndex(a.proxy) - proxyIndex(b.proxy));
  const r = run.resources;
  const out = ["## Resources", ""];

  out.push("### Proxy CPU", "");
  out.push(
    r.proxyCpu.length
      ? numbersTable(
          ["scenario", "load", "proxy", "vCPU per 1,000 req/s", "min–max"],
          sortProxies(r.proxyCpu).map((e) => [
            e.scenario,
            mdText(e.load),
            e.proxy,
            num(e.vcpuPer1000Rps.median, 3),
            `${num(e.vcpuPer1000Rps.min, 3)}–${num(e.vcpuPer1000Rps.max, 3)}`,
          ]),
          3,
        )
      : "Not measured.",
    "",
  );

  out.push("### Proxy memory", "");
  out.push(
    r.proxyRss.length
      ? numbersTable(
          ["scenario", "load", "proxy", "RSS MiB", "min–max"],
          sortProxies(r.proxyRss).map((e) => [e.scenario, mdText(e.load), e.proxy, num(e.rssMiB.median, 1), `${num(e.rssMiB.min, 1)}–${num(e.rssMiB.max, 1)}`]),
          3,
        )
      : "Not measured.",
    "",
  );

  out.push("### Mesh memory", "");
  if (memoryChart) out.push(`![mesh memory per node](${encodeURI(memoryChart)})`, "");
  if (r.meshMemory.length) {
    const pods = [...new Set(r.meshMemory.map((m) => m.pods))].sort((a, b) => a - b);
    const scenarios = [...new Set(r.meshMemory.map((m) => m.scenario))].sort(scenarioOrder);
    out.push(
      numbersTable(
        ["scenario", ...pods.map((p) => `${p} pods: MiB (per node)`)],
        scenarios.map((s) => [
          s,
          ...pods.map((p) => {
            const m = r.meshMemory.find((x) => x.scenario === s && x.pods === p);
            return m ? `${num(m.totalMiB, 1)} (${num(m.totalMiB / m.nodes, 1)})` : "n/a";
          }),
        ]),
      ),
      "",
      "Sum of the resident memory of every data-plane process (agents, sidecars, waypoints) with that many pods enrolled; per node in parentheses.",
      "",
    );
  } else out.push("Not measured.", "");

  out.push("### Memory per connection", "");
  out.push(
    r.perConnection.length
      ? numbersTable(
          ["scenario", "KiB per connection", "connections held"],
          [...r.perConnection].sort(byScenario).map((e) => [e.scenario, num(e.kibPerConnection, 1), num(e.connections)]),
        )
      : "Not measured.",
    "",
  );

  out.push("### Controller", "");
  out.push(
    r.controller
      ? numbersTable(["controller", "vCPU", "RSS MiB"], [["whole run", num(r.controller.cpuVcpu, 3), num(r.controller.rssMiB, 1)]])
      : "Not measured.",
    "",
  );
  return out;
}

function controlPlaneSection(run: BenchResults): string[] {
  const c = run.controlPlane;
  const rows: string[][] = [];
  if (c.certIssuancesPerSec !== undefined) rows.push(["certificate issuances per second", num(c.certIssuancesPerSec)]);
  if (c.policyPropagationMs) {
    const p = c.policyPropagationMs;
    rows.push([`policy propagation p50, ms (${num(p.pods)} pods, ${num(p.nodes)} nodes)`, num(p.p50, 1)]);
    rows.push([`policy propagation p99, ms (${num(p.pods)} pods, ${num(p.nodes)} nodes)`, num(p.p99, 1)]);
  }
  return ["## Control plane", "", rows.length ? numbersTable(["measure", "value"], rows) : "Not measured.", ""];
}

function goalsSection(run: BenchResults): string[] {
  if (run.goals.length === 0) return ["## Goals", "", "None evaluated.", ""];
  const verdict = (met: boolean | null) => (met === true ? "met" : met === false ? "**not met**" : "no data");
  return [
    "## Goals",
    "",
    table(
      ["goal", "result", "detail"],
      run.goals.map((g) => [`${mdText(g.text)} (${code(g.id, true)})`, verdict(g.met), mdText(g.detail)]),
    ),
    "",
  ];
}

function errorsSection(run: BenchResults): string[] {
  return ["## Errors", "", ...(run.errors.length ? run.errors.map((e) => `- ${code(e.step)}: ${mdText(e.message)}`) : ["None."]), ""];
}

/** The whole report as Markdown. Deterministic: scenarios in canonical order, loads as the run lists them, fixed decimals. */
export function renderMarkdown(run: BenchResults, options: MarkdownOptions = {}): string {
  const charts = options.charts ?? {};
  const lines = [...header(run), ""];
  lines.push("## Scenarios", "");
  lines.push(
    run.scenarios.length
      ? table(
          ["scenario", "what runs"],
          [...run.scenarios].sort((a, b) => scenarioOrder(a.name, b.name)).map((s) => [s.name, mdText(s.description)]),
        )
      : "None.",
    "",
  );
  lines.push("## Loads", "");
  lines.push(
    run.loads.length
      ? table(
          ["load", "kind", "what it sends"],
          run.loads.map((l) => [mdText(l.name), l.kind, mdText(l.description)]),
        )
      : "None.",
    "",
  );
  lines.push("## Results per load", "");
  for (const load of run.loads) lines.push(...loadSection(run, load, charts));
  lines.push(...resourcesSection(run, charts.memory));
  lines.push(...controlPlaneSection(run), ...goalsSection(run), ...errorsSection(run));
  return `${lines
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}
