// Standalone SVG charts as strings, no dependencies or fonts: latency percentiles per scenario (grouped bars) and mesh memory per node against enrolled pods (lines).
import { SCENARIO_NAMES, type BenchResults } from "./schema.ts";
import { escapeXml, scenarioOrder } from "./format.ts";

type Attributes = Record<string, string | number>;

/** A coordinate or size: at most 2 decimals, so output does not depend on float noise. */
const c = (x: number): string => String(Number(x.toFixed(2)));

function el(name: string, attributes: Attributes, children?: string | string[]): string {
  const attrs = Object.entries(attributes)
    .map(([k, v]) => ` ${k}="${typeof v === "number" ? c(v) : escapeXml(v)}"`)
    .join("");
  if (children === undefined) return `<${name}${attrs}/>`;
  return `<${name}${attrs}>${Array.isArray(children) ? children.join("") : children}</${name}>`;
}
const text = (x: number, y: number, content: string, attributes: Attributes = {}) => el("text", { x, y, ...attributes }, escapeXml(content));
const tooltip = (content: string) => el("title", {}, escapeXml(content));

function svgDocument(width: number, height: number, title: string, body: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${el(
    "svg",
    {
      xmlns: "http://www.w3.org/2000/svg",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      "font-family": "sans-serif",
      "font-size": 12,
      role: "img",
      "aria-label": title,
    },
    [
      "\n",
      tooltip(title),
      "\n",
      el("rect", { x: 0, y: 0, width, height, fill: "#ffffff" }),
      "\n",
      text(width / 2, 24, title, { "text-anchor": "middle", "font-size": 15, "font-weight": "bold" }),
      "\n",
      ...body.map((b) => `${b}\n`),
    ],
  )}\n`;
}

/** A tick's label: up to 6 significant digits, no trailing zeros ("0.2", "1", "2500"). */
const tickLabel = (x: number): string => String(Number(x.toPrecision(6)));

/** Ticks from 0 to at least `max`, about five of them, at steps of 1, 2 or 5 times a power of ten. */
export function linearTicks(max: number): number[] {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const raw = top / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw - 1e-12)!;
  const count = Math.ceil(top / step - 1e-9);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  return Array.from({ length: count + 1 }, (_, i) => Number((i * step).toFixed(decimals)));
}

/** Decades covering [min, max] (min > 0); with two decades or fewer, also 2 and 5 times each. */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  let hi = Math.ceil(Math.log10(max));
  if (hi === lo) hi++;
  const ticks: number[] = [];
  for (let d = lo; d <= hi; d++) {
    const decade = Number((10 ** d).toPrecision(12));
    ticks.push(decade);
    if (hi - lo <= 2 && d < hi) ticks.push(Number((2 * decade).toPrecision(12)), Number((5 * decade).toPrecision(12)));
  }
  return ticks;
}

interface YAxis {
  ticks: number[];
  /** A value's height above the plot's bottom, 0..1. */
  fraction(v: number): number;
}

function yAxis(values: number[], scale: "log" | "linear"): YAxis {
  const max = Math.max(0, ...values);
  if (scale === "linear") {
    const ticks = linearTicks(max);
    const top = ticks.at(-1)!;
    return { ticks, fraction: (v) => Math.min(1, Math.max(0, v / top)) };
  }
  const positive = values.filter((v) => v > 0);
  const ticks = logTicks(positive.length ? Math.min(...positive) : 1, positive.length ? Math.max(...positive) : 10);
  const lo = Math.log10(ticks[0]!);
  const hi = Math.log10(ticks.at(-1)!);
  return { ticks, fraction: (v) => (v > 0 ? Math.min(1, Math.max(0, (Math.log10(v) - lo) / (hi - lo))) : 0) };
}

/** Series colours: Okabe-Ito, distinguishable with the common colour-vision deficiencies. */
const PALETTE = ["#56B4E9", "#0072B2", "#E69F00", "#D55E00", "#009E73", "#CC79A7", "#000000", "#999999"];
const SCENARIO_COLOURS: Record<string, string> = {
  direct: "#000000",
  ambient: "#0072B2",
  "ambient-same-node": "#56B4E9",
  "ambient-waypoint": "#009E73",
  sidecar: "#D55E00",
  "nginx-sidecar": "#CC79A7",
};

/** A horizontal legend starting at (x, y): a swatch and a label per entry; width estimated from the label's length. */
function legend(x: number, y: number, entries: Array<{ label: string; colour: string; line?: boolean }>): string {
  let at = x;
  const parts: string[] = [];
  for (const e of entries) {
    parts.push(
      e.line
        ? el("line", { x1: at, y1: y - 4, x2: at + 14, y2: y - 4, stroke: e.colour, "stroke-width": 2.5 })
        : el("rect", { x: at, y: y - 10, width: 12, height: 12, fill: e.colour }),
    );
    parts.push(text(at + 18, y, e.label));
    at += 18 + e.label.length * 7 + 16;
  }
  return el("g", { class: "legend" }, parts);
}

/** Horizontal grid lines with labels left of the plot, and the y axis's title. */
function yGrid(axis: YAxis, plot: { left: number; right: number; top: number; bottom: number }, label: string): string[] {
  const height = plot.bottom - plot.top;
  const out = axis.ticks.map((t) => {
    const y = plot.bottom - axis.fraction(t) * height;
    return el("g", {}, [
      el("line", { x1: plot.left, y1: y, x2: plot.right, y2: y, stroke: "#dddddd", "stroke-width": 1 }),
      text(plot.left - 6, y + 4, tickLabel(t), { "text-anchor": "end", fill: "#333333" }),
    ]);
  });
  const middle = (plot.top + plot.bottom) / 2;
  out.push(text(16, middle, label, { "text-anchor": "middle", transform: `rotate(-90 16 ${c(middle)})`, fill: "#333333" }));
  out.push(el("line", { x1: plot.left, y1: plot.top, x2: plot.left, y2: plot.bottom, stroke: "#333333" }));
  out.push(el("line", { x1: plot.left, y1: plot.bottom, x2: plot.right, y2: plot.bottom, stroke: "#333333" }));
  return out;
}

export interface GroupedBarChart {
  title: string;
  /** The y axis's title, e.g. "latency, ms". The scale is appended when log. */
  yLabel: string;
  /** One bar per series in each group, in this order. */
  series: string[];
  /** `values[i]` is series i's value; undefined draws no bar. */
  groups: Array<{ label: string; values: Array<number | undefined> }>;
  /** Default: log when the largest value is more than 20 times the smallest positive one. */
  scale?: "log" | "linear";
  /** Appended to each bar's tooltip value, e.g. " ms". */
  unit?: string;
}

export function groupedBarChartSvg(chart: GroupedBarChart): string {
  const values = chart.groups.flatMap((g) => g.values).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const positive = values.filter((v) => v > 0);
  const scale = chart.scale ?? (positive.length && Math.max(...positive) / Math.min(...positive) > 20 ? "log" : "linear");
  const groupWidth = Math.max(100, 24 * chart.series.length + 32);
  const plot = { left: 72, top: 72, bottom: 330, right: 72 + Math.max(1, chart.groups.length) * groupWidth };
  const width = Math.max(520, plot.right + 24);
  const height = 380;
  const axis = yAxis(values, scale);
  const body = [
    legend(
      plot.left,
      52,
      chart.series.map((s, i) => ({ label: s, colour: PALETTE[i % PALETTE.length]! })),
    ),
    ...yGrid(axis, plot, scale === "log" ? `${chart.yLabel} (log scale)` : chart.yLabel),
  ];
  const barWidth = (groupWidth - 32) / Math.max(1, chart.series.length);
  for (const [gi, group] of chart.groups.entries()) {
    const x0 = plot.left + gi * groupWidth + 16;
    const bars = group.values.flatMap((v, si) => {
      if (v === undefined || !Number.isFinite(v)) return [];
      const h = axis.fraction(v) * (plot.bottom - plot.top);
      return [
        el(
          "rect",
          { x: x0 + si * barWidth, y: plot.bottom - h, width: Math.max(1, barWidth - 2), height: h, fill: PALETTE[si % PALETTE.length]! },
          tooltip(`${group.label}, ${chart.series[si] ?? ""}: ${tickLabel(v)}${chart.unit ?? ""}`),
        ),
      ];
    });
    bars.push(text(x0 + (groupWidth - 32) / 2, plot.bottom + 18, group.label, { "text-anchor": "middle", "font-size": 11 }));
    body.push(el("g", { class: "group" }, bars));
  }
  return svgDocument(width, height, chart.title, body);
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Points are drawn in ascending x. */
  lines: Array<{ label: string; colour?: string; points: Array<[number, number]> }>;
  unit?: string;
}

export function lineChartSvg(chart: LineChart): string {
  const plot = { left: 72, top: 72, bottom: 330, right: 616 };
  const width = 640;
  const height = 380;
  const xs = chart.lines.flatMap((l) => l.points.map(([x]) => x));
  const ys = chart.lines.flatMap((l) => l.points.map(([, y]) => y));
  const xTicks = linearTicks(Math.max(0, ...xs));
  const xTop = xTicks.at(-1)!;
  const axis = yAxis(ys, "linear");
  const px = (x: number) => plot.left + (x / xTop) * (plot.right - plot.left);
  const py = (y: number) => plot.bottom - axis.fraction(y) * (plot.bottom - plot.top);
  const colours = chart.lines.map((l, i) => l.colour ?? PALETTE[i % PALETTE.length]!);
  const body = [
    legend(
      plot.left,
      52,
      chart.lines.map((l, i) => ({ label: l.label, colour: colours[i]!, line: true })),
    ),
    ...yGrid(axis, plot, chart.yLabel),
  ];
  for (const t of xTicks) {
    body.push(
      el("g", {}, [
        el("line", { x1: px(t), y1: plot.bottom, x2: px(t), y2: plot.bottom + 5, stroke: "#333333" }),
        text(px(t), plot.bottom + 18, tickLabel(t), { "text-anchor": "middle", fill: "#333333" }),
      ]),
    );
  }
  body.push(text((plot.left + plot.right) / 2, plot.bottom + 40, chart.xLabel, { "text-anchor": "middle", fill: "#333333" }));
  for (const [i, line] of chart.lines.entries()) {
    const points = [...line.points].sort((a, b) => a[0] - b[0]);
    const parts = [
      el("polyline", { points: points.map(([x, y]) => `${c(px(x))},${c(py(y))}`).join(" "), fill: "none", stroke: colours[i]!, "stroke-width": 2.5 }),
      ...points.map(([x, y]) =>
        el(
          "circle",
          { cx: px(x), cy: py(y), r: 4, fill: colours[i]! },
          tooltip(`${line.label}: ${tickLabel(y)}${chart.unit ?? ""} at ${tickLabel(x)} ${chart.xLabel}`),
        ),
      ),
    ];
    body.push(el("g", { class: "line" }, parts));
  }
  return svgDocument(width, height, chart.title, body);
}

const PERCENTILE_SERIES = [
  ["p50", "p50"],
  ["p90", "p90"],
  ["p99", "p99"],
  ["p999", "p99.9"],
] as const;

/** Latency percentiles (medians across rounds) per scenario for one load. Throws when no scenario has latency for it. */
export function latencyChartSvg(run: BenchResults, load: string, options: { scale?: "log" | "linear" } = {}): string {
  const results = run.results.filter((r) => r.load === load && r.median.latencyMs).sort((a, b) => scenarioOrder(a.scenario, b.scenario));
  if (results.length === 0) throw new Error(`no latency results for load "${load}" to chart`);
  const rounds = [...new Set(results.map((r) => r.rounds.length))].sort((a, b) => a - b);
  return groupedBarChartSvg({
    title: `Latency, ${load} (median of ${rounds.join(" or ")} round${rounds.at(-1) === 1 ? "" : "s"})`,
    yLabel: "latency, ms",
    series: PERCENTILE_SERIES.map(([, label]) => label),
    groups: results.map((r) => ({ label: r.scenario, values: PERCENTILE_SERIES.map(([key]) => r.median.latencyMs![key]) })),
    unit: " ms",
    ...(options.scale ? { scale: options.scale } : {}),
  });
}

/** Mesh memory per node (total / nodes) against enrolled pods, one line per scenario. Throws when nothing was measured. */
export function memoryChartSvg(run: BenchResults): string {
  const memory = run.resources.meshMemory;
  if (memory.length === 0) throw new Error("no mesh memory results to chart");
  const scenarios = [...new Set(memory.map((m) => m.scenario))].sort(scenarioOrder);
  return lineChartSvg({
    title: "Mesh memory per node against enrolled pods",
    xLabel: "enrolled pods",
    yLabel: "MiB per node",
    unit: " MiB per node",
    lines: scenarios.map((s) => ({
      label: s,
      colour: SCENARIO_COLOURS[s] ?? PALETTE[SCENARIO_NAMES.length % PALETTE.length]!,
      points: memory.filter((m) => m.scenario === s).map((m) => [m.pods, Number((m.totalMiB / m.nodes).toFixed(1))] as [number, number]),
    })),
  });
}
