// bench/report: the results format's schema, the statistics (percentiles, ratios, goals), the Markdown and SVG renderers, run comparison and the report writer.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  RESULTS_SCHEMA,
  SCHEMA_VERSION,
  compareResults,
  computeRatios,
  evaluateGoals,
  finalizeResults,
  groupedBarChartSvg,
  histogramPercentile,
  latencyChartSvg,
  linearTicks,
  logTicks,
  median,
  memoryChartSvg,
  percentile,
  range,
  renderComparison,
  renderMarkdown,
  summarizeRounds,
  validateResults,
  writeReport,
  type BenchResults,
  type GoalInput,
  type RoundResult,
  type ScenarioLoadResult,
  type ScenarioName,
} from "../../bench/report/index.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

const SAMPLE_PATH = path.join(REPO_ROOT, "test", "fixtures", "bench", "sample-results.json");
const sampleText = await fs.readFile(SAMPLE_PATH, "utf8");
/** A fresh copy of the sample results for each use: tests mutate theirs. */
const sample = (): BenchResults => JSON.parse(sampleText) as BenchResults;

// --- a minimal XML well-formedness check (no XML parser among the dependencies) --------------------------------

const isNameStart = (ch: string) => (ch >= "a" && ch <= "z") || (ch >= "A" && ch <= "Z") || ch === "_" || ch === ":";
const isNameChar = (ch: string) => isNameStart(ch) || (ch >= "0" && ch <= "9") || ch === "-" || ch === ".";
const isSpace = (ch: string | undefined) => ch === " " || ch === "\n" || ch === "\t" || ch === "\r";
const PREDEFINED = new Set(["amp", "lt", "gt", "quot", "apos"]);

/** Each "&" starts a predefined entity or a character reference, and no "<" appears (character data and attribute values). */
function entityProblem(text: string): string | undefined {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "<") return "'<' in text or an attribute value";
    if (text[i] !== "&") continue;
    const end = text.indexOf(";", i);
    if (end < 0) return `unterminated entity at ${i}`;
    const name = text.slice(i + 1, end);
    const numeric = name.startsWith("#x") ? name.slice(2) : name.startsWith("#") ? name.slice(1) : undefined;
    const ok = numeric !== undefined ? numeric.length > 0 && [...numeric].every((c) => "0123456789abcdefABCDEF".includes(c)) : PREDEFINED.has(name);
    if (!ok) return `unknown entity &${name};`;
    i = end;
  }
  return undefined;
}

/** Walks the document once: one root element, tags nested and closed in order, quoted unique attributes, valid entities. */
function checkXml(xml: string): { ok: true; root: string; rootAttributes: Record<string, string> } | { ok: false; error: string } {
  let i = 0;
  const stack: string[] = [];
  let root: string | undefined;
  let rootAttributes: Record<string, string> = {};
  let rootClosed = false;
  const fail = (error: string) => ({ ok: false as const, error: `${error} (at ${i})` });
  const readName = (): string => {
    const start = i;
    if (!isNameStart(xml[i] ?? "")) return "";
    while (i < xml.length && isNameChar(xml[i]!)) i++;
    return xml.slice(start, i);
  };
  if (xml.startsWith("<?xml")) {
    const end = xml.indexOf("?>");
    if (end < 0) return fail("unterminated XML declaration");
    i = end + 2;
  }
  while (i < xml.length) {
    if (xml[i] !== "<") {
      const end = xml.indexOf("<", i) < 0 ? xml.length : xml.indexOf("<", i);
      const text = xml.slice(i, end);
      if (stack.length === 0 && [...text].some((ch) => !isSpace(ch))) return fail("text outside the root element");
      const problem = entityProblem(text);
      if (problem) return fail(problem);
      i = end;
      continue;
    }
    if (xml.startsWith("<!--", i)) {
      const end = xml.indexOf("-->", i + 4);
      if (end < 0) return fail("unterminated comment");
      i = end + 3;
      continue;
    }
    if (xml.startsWith("</", i)) {
      i += 2;
      const name = readName();
      while (isSpace(xml[i])) i++;
      if (xml[i] !== ">") return fail(`malformed end tag </${name}`);
      i++;
      const open = stack.pop();
      if (open !== name) return fail(`</${name}> closes <${open ?? "nothing"}>`);
      if (stack.length === 0) rootClosed = true;
      continue;
    }
    i++;
    const name = readName();
    if (!name) return fail("a '<' that starts no tag");
    if (stack.length === 0 && (root !== undefined || rootClosed)) return fail(`a second root element <${name}>`);
    const attributes: Record<string, string> = {};
    for (;;) {
      const hadSpace = isSpace(xml[i]);
      while (isSpace(xml[i])) i++;
      if (xml.startsWith("/>", i) || xml[i] === ">") break;
      if (!hadSpace) return fail(`no space before an attribute of <${name}>`);
      const attribute = readName();
      if (!attribute) return fail(`malformed attribute in <${name}>`);
      if (attribute in attributes) return fail(`duplicate attribute ${attribute} in <${name}>`);
      while (isSpace(xml[i])) i++;
      if (xml[i] !== "=") return fail(`attribute ${attribute} of <${name}> has no value`);
      i++;
      while (isSpace(xml[i])) i++;
      const quote = xml[i];
      if (quote !== '"' && quote !== "'") return fail(`attribute ${attribute} of <${name}> is not quoted`);
      const end = xml.indexOf(quote, i + 1);
      if (end < 0) return fail(`unterminated value of ${attribute}`);
      const value = xml.slice(i + 1, end);
      const problem = entityProblem(value);
      if (problem) return fail(`${attribute} of <${name}>: ${problem}`);
      attributes[attribute] = value;
      i = end + 1;
    }
    if (stack.length === 0) {
      root = name;
      rootAttributes = attributes;
    }
    if (xml.startsWith("/>", i)) {
      i += 2;
      if (stack.length === 0) rootClosed = true;
    } else {
      i++;
      stack.push(name);
    }
  }
  if (stack.length) return fail(`unclosed <${stack.at(-1)}>`);
  if (root === undefined) return fail("no root element");
  return { ok: true, root, rootAttributes };
}

function expectStandaloneSvg(svg: string): void {
  const parsed = checkXml(svg);
  expect(parsed).toMatchObject({ ok: true, root: "svg", rootAttributes: { xmlns: "http://www.w3.org/2000/svg" } });
  expect(svg).not.toMatch(/NaN|Infinity|undefined/);
  // No external resources: no fonts, images or stylesheets fetched.
  expect(svg).not.toMatch(/@import|@font-face|href=|url\(/);
}

// --- helpers building small runs by hand ------------------------------------------------------------------------

const latency = (p50: number, p99: number) => ({ p50, p90: (p50 + p99) / 2, p99, p999: p99 * 2, max: p99 * 4 });
const roundOf = (round: number, p50: number, p99: number, extra: Partial<RoundResult> = {}): RoundResult => ({
  round,
  latencyMs: latency(p50, p99),
  targetRate: 1000,
  achievedRate: 1000,
  requests: 10_000,
  errors: 0,
  durationS: 10,
  ...extra,
});
const resultOf = (scenario: ScenarioName, load: string, rounds: RoundResult[]): ScenarioLoadResult => ({ scenario, load, rounds, ...summarizeRounds(rounds) });

/** A run with one keepalive-16c round per scenario whose p99 is given, and the resources the goals read. */
function goalRun(
  p99: Partial<Record<ScenarioName, number>>,
  options: { memory?: Partial<Record<ScenarioName, number>>; cpu?: Record<string, number> } = {},
): GoalInput {
  const results = Object.entries(p99).map(([s, v]) => resultOf(s as ScenarioName, "keepalive-16c", [roundOf(1, v / 2, v)]));
  const cpu = options.cpu ?? {
    "ambient/agent-client": 0.1,
    "ambient/agent-server": 0.1,
    "sidecar/sidecar-client": 0.12,
    "sidecar/sidecar-server": 0.12,
    "nginx-sidecar/nginx-client": 0.05,
    "nginx-sidecar/nginx-server": 0.05,
  };
  return {
    results,
    resources: {
      proxyCpu: Object.entries(cpu).map(([key, v]) => {
        const [scenario, proxy] = key.split("/") as [ScenarioName, "agent-client"];
        return { scenario, load: "keepalive-16c", proxy, vcpuPer1000Rps: { median: v, min: v, max: v } };
      }),
      proxyRss: [],
      meshMemory: Object.entries(options.memory ?? { ambient: 150, sidecar: 4000 }).map(([s, totalMiB]) => ({
        scenario: s as ScenarioName,
        pods: 100,
        nodes: 2,
        totalMiB,
      })),
      perConnection: [],
    },
  };
}
const goal = (run: GoalInput, id: string) => evaluateGoals(run).find((g) => g.id === id)!;

/** A results object as untyped JSON, to break in ways its type forbids. */
type LooseJson = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

// --- schema ------------------------------------------------------------------------------------------------------

describe("the results schema", () => {
  it("is a versioned draft-07 JSON Schema, and accepts the full sample", () => {
    expect(RESULTS_SCHEMA.$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(SCHEMA_VERSION).toBe(1);
    expect(validateResults(sample())).toEqual({ ok: true });
  });

  it("accepts a run with no optional data: no controller, no control plane figures, empty lists, no commit", () => {
    const r = sample();
    delete r.resources.controller;
    r.controlPlane = {};
    r.git.commit = null;
    r.results = [];
    r.ratios = [];
    r.goals = [];
    r.resources = { proxyCpu: [], proxyRss: [], meshMemory: [], perConnection: [] };
    expect(validateResults(r)).toEqual({ ok: true });
  });

  it.each<[string, (r: LooseJson) => void, string]>([
    ["a missing top-level field", (r) => delete r.machine, "(root): must have required property 'machine'"],
    ["a missing round field", (r) => delete r.results[0].rounds[0].errors, "/results/0/rounds/0: must have required property 'errors'"],
    ["a wrong type", (r) => (r.quick = "yes"), "/quick: must be boolean"],
    ["a string for a number", (r) => (r.results[2].median.latencyMs.p99 = "1.4"), "/results/2/median/latencyMs/p99: must be number"],
    ["a fractional error count in a round", (r) => (r.results[0].rounds[0].errors = 0.5), "/results/0/rounds/0/errors: must be integer"],
    ["an unknown scenario", (r) => (r.results[0].scenario = "linkerd"), '/results/0/scenario: must be one of "direct", "ambient"'],
    ["an unknown property", (r) => (r.machine.gpu = "none"), '/machine: unknown property "gpu"'],
    ["another schemaVersion", (r) => (r.schemaVersion = 2), "/schemaVersion: must be equal to constant"],
    ["a local time", (r) => (r.startedAt = "2025-11-20 10:14:03"), "/startedAt: must match pattern"],
    ["a range that is not a pair", (r) => (r.results[0].range.p99 = [1]), "/results/0/range/p99: must NOT have fewer than 2 items"],
    ["a non-scalar extra setting", (r) => (r.settings.nested = { a: 1 }), "/settings/nested: must be number,string,boolean"],
  ])("rejects %s", (_, breakIt, message) => {
    const r = sample() as unknown as LooseJson;
    breakIt(r);
    const v = validateResults(r);
    expect(v.ok).toBe(false);
    expect(v.ok ? [] : v.errors.join("\n")).toContain(message);
  });

  it.each<[string, (r: BenchResults) => void, string]>([
    ["a result for an undeclared load", (r) => (r.results[0]!.load = "warp-speed"), '/results/0/load: "warp-speed" is not in /loads'],
    [
      "a result for an undeclared scenario",
      (r) => (r.scenarios = r.scenarios.filter((s) => s.name !== "direct")),
      '/results/0/scenario: "direct" is not in /scenarios',
    ],
    ["two results for one scenario and load", (r) => r.results.push(structuredClone(r.results[0]!)), '/results/47: duplicate "direct/keepalive-1c"'],
    ["percentiles out of order", (r) => (r.results[0]!.rounds[1]!.latencyMs!.p90 = 99), "/results/0/rounds/1/latencyMs: percentiles must not decrease"],
    ["a range with min above max", (r) => (r.results[0]!.range.p50 = [2, 1]), "/results/0/range/p50: 2 > 1"],
    [
      "a spread with the median outside it",
      (r) => (r.resources.proxyCpu[0]!.vcpuPer1000Rps.median = 9),
      "/resources/proxyCpu/0: must have min <= median <= max",
    ],
    ["an end before the start", (r) => (r.finishedAt = "2025-11-20T08:00:00Z"), "/finishedAt: before /startedAt"],
  ])("rejects %s (beyond the JSON Schema)", (_, breakIt, message) => {
    const r = sample();
    breakIt(r);
    const v = validateResults(r);
    expect(v.ok ? "" : v.errors.join("\n")).toContain(message);
  });
});

// --- stats -------------------------------------------------------------------------------------------------------

describe("percentiles, medians and ranges", () => {
  const oneToTen = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

  it("percentile of sorted samples is nearest-rank", () => {
    expect([0, 10, 50, 90, 99, 100].map((p) => percentile(oneToTen, p))).toEqual([1, 1, 5, 9, 10, 10]);
    // 5 samples: p50 is the 3rd (ceil 2.5), p90 the 5th (ceil 4.5), p20 the 1st (exactly 1), p21 the 2nd.
    const ms = [0.2, 0.3, 0.5, 0.7, 1.1];
    expect([50, 90, 20, 21].map((p) => percentile(ms, p))).toEqual([0.5, 1.1, 0.2, 0.3]);
    const thousand = Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentile(thousand, 99.9)).toBe(999);
    expect(percentile(thousand, 99)).toBe(990);
  });

  it("percentile refuses what it cannot answer", () => {
    expect(() => percentile([], 50)).toThrow(/no samples/);
    expect(() => percentile([2, 1], 50)).toThrow(/not sorted/);
    expect(() => percentile(oneToTen, 101)).toThrow(/within 0\.\.100/);
  });

  it("a histogram's percentile is its nearest-rank sample's bucket value", () => {
    // 100 samples: 50 in (.., 1], 40 in (1, 2], 9 in (2, 5], 1 in (5, 10]; given out of order, with an empty bucket.
    const buckets = [
      { value: 5, count: 9 },
      { value: 1, count: 50 },
      { value: 3, count: 0 },
      { value: 10, count: 1 },
      { value: 2, count: 40 },
    ];
    expect([50, 51, 90, 91, 99, 99.9, 100].map((p) => histogramPercentile(buckets, p))).toEqual([1, 2, 2, 5, 5, 10, 10]);
    expect(() => histogramPercentile([{ value: 1, count: 0 }], 50)).toThrow(/empty histogram/);
  });

  it("a histogram of one bucket per distinct sample gives the same percentiles as the samples", () => {
    const samples = [0.4, 0.4, 0.5, 0.5, 0.5, 0.6, 0.9, 1.2, 1.2, 3.5];
    const buckets = [...new Set(samples)].map((value) => ({ value, count: samples.filter((s) => s === value).length }));
    for (const p of [1, 10, 25, 50, 75, 90, 99, 99.9, 100]) expect(histogramPercentile(buckets, p)).toBe(percentile(samples, p));
  });

  it("median and range", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(range([3, 1, 2])).toEqual([1, 3]);
    expect(() => median([])).toThrow();
  });

  it("summarizeRounds takes each field's median and range over the rounds that have it", () => {
    const rounds = [
      roundOf(1, 0.2, 0.5, { achievedRate: 998 }),
      roundOf(2, 0.3, 0.7, { achievedRate: 1000, errors: 2 }),
      roundOf(3, 0.25, 0.4, { achievedRate: 999, errors: 1 }),
    ];
    const { median: m, range: r } = summarizeRounds(rounds);
    // p90 is (p50 + p99) / 2 in each round: 0.35, 0.5, 0.325.
    expect(m.latencyMs).toEqual({ p50: 0.25, p90: 0.35, p99: 0.5, p999: 1, max: 2 });
    expect(m).toMatchObject({ achievedRate: 999, errors: 1, targetRate: 1000, durationS: 10 });
    expect(r.p99).toEqual([0.4, 0.7]);
    expect(r.achievedRate).toEqual([998, 1000]);
    expect(r.throughputRps).toBeUndefined();
  });
});

describe("computeRatios", () => {
  const direct = resultOf("direct", "keepalive-16c", [roundOf(1, 0.2, 0.5), roundOf(2, 0.25, 0.6), roundOf(3, 0.3, 0.4)]);
  // Round 3 failed for ambient; its round 4 has no direct counterpart: only rounds 1 and 2 pair.
  const ambient = resultOf("ambient", "keepalive-16c", [roundOf(1, 0.6, 1.4), roundOf(2, 0.5, 1.5), roundOf(4, 9, 9)]);
  const sidecar = resultOf("sidecar", "keepalive-16c", [roundOf(1, 0.6, 1.5), roundOf(2, 0.6, 1.6), roundOf(3, 0.7, 1.7)]);
  const ratios = computeRatios([direct, ambient, sidecar]);

  it("subtracts direct within each round both ran in, then takes the median over those rounds", () => {
    const a = ratios.find((r) => r.scenario === "ambient")!;
    expect(a.vsDirect.rounds).toBe(2);
    expect(a.vsDirect.addedP99Ms).toBeCloseTo(0.9, 9); // 0.9 and 0.9
    expect(a.vsDirect.addedP50Ms).toBeCloseTo(0.325, 9); // 0.4 and 0.25
    expect(a.vsDirect.p99Ratio).toBeCloseTo(2.65, 9); // 2.8 and 2.5
    const s = ratios.find((r) => r.scenario === "sidecar")!;
    // p50: +0.4, +0.35, +0.4; p99: +1.0, +1.0, +1.3; p99 ratio: 3, 2.67, 4.25.
    expect(s.vsDirect).toEqual({ addedP50Ms: 0.4, addedP99Ms: 1, p99Ratio: 3, rounds: 3 });
  });

  it("compares with sidecar likewise, except for sidecar itself and direct", () => {
    const a = ratios.find((r) => r.scenario === "ambient")!;
    expect(a.vsSidecar).toEqual({ addedP50Ms: -0.05, addedP99Ms: -0.1, p99Ratio: 0.9354, rounds: 2 }); // 1.4/1.5, 1.5/1.6
    expect(ratios.find((r) => r.scenario === "sidecar")!.vsSidecar).toBeUndefined();
    expect(ratios.map((r) => r.scenario)).toEqual(["ambient", "sidecar"]);
  });

  it("gives no entry without a direct round to pair with, and never pairs across loads", () => {
    expect(computeRatios([ambient, sidecar])).toEqual([]);
    expect(computeRatios([direct, resultOf("ambient", "keepalive-1c", [roundOf(1, 1, 2)])])).toEqual([]);
  });

  it("agrees with the ratios stored in the sample", () => {
    const r = sample();
    expect(computeRatios(r.results)).toEqual(r.ratios);
  });
});

describe("evaluateGoals", () => {
  const ALL = { direct: 0.5, ambient: 1.4, "ambient-waypoint": 1.9, sidecar: 1.5, "nginx-sidecar": 2.4 };

  it("judges all four goals on a complete run", () => {
    const goals = evaluateGoals(goalRun({ ...ALL, "ambient-waypoint": 1.5 }, { memory: { ambient: 100, sidecar: 2000 } }));
    expect(goals.map((g) => [g.id, g.met])).toEqual([
      ["ambient-p99-vs-sidecars", true],
      ["mesh-memory-100-pods", true], // 100 * 20 = 2000: the bound itself is met
      ["agent-cpu-vs-sidecars", true], // 0.2 <= 0.24 and 0.2 <= 2 * 0.1
      ["waypoint-p99-vs-sidecar", true], // +1.0 <= +1.0
    ]);
    expect(goals[0]!.detail).toContain("ambient +0.900 ms, sidecar +1.000 ms, nginx-sidecar +1.900 ms");
    expect(goals[2]!.detail).toContain("agents 0.200, sidecar pair 0.240, nginx pair 0.100 (2x: 0.200)");
  });

  it("not met: ambient adds more than sidecar; memory above 1/20; agents above 2x nginx; waypoint above sidecar", () => {
    const run = goalRun(
      { ...ALL, ambient: 1.6 },
      {
        memory: { ambient: 100, sidecar: 1999 },
        cpu: {
          "ambient/agent-client": 0.1,
          "ambient/agent-server": 0.1,
          "sidecar/sidecar-client": 0.12,
          "sidecar/sidecar-server": 0.12,
          "nginx-sidecar/nginx-client": 0.05,
          "nginx-sidecar/nginx-server": 0.04,
        },
      },
    );
    expect(evaluateGoals(run).map((g) => g.met)).toEqual([false, false, false, false]);
    expect(goal(run, "mesh-memory-100-pods").detail).toContain("ambient 100.0 MiB, sidecar 1,999.0 MiB (1/20: 100.0 MiB)");
  });

  it("null, saying what is missing, when data is missing and nothing known fails", () => {
    const noNginx = goalRun({ direct: 0.5, ambient: 1.4, sidecar: 1.5 }, { memory: { sidecar: 4000 }, cpu: { "ambient/agent-client": 0.1 } });
    const goals = evaluateGoals(noNginx);
    expect(goals.map((g) => g.met)).toEqual([null, null, null, null]);
    expect(goals[0]!.detail).toContain("missing: keepalive-16c latency for nginx-sidecar and direct in a common round");
    expect(goals[1]!.detail).toContain("missing: ambient mesh memory at 100 pods");
    expect(goals[2]!.detail).toContain("missing: agent-server vCPU in ambient under keepalive-16c, sidecar-client vCPU in sidecar under keepalive-16c");
    expect(goals[3]!.detail).toContain("ambient-waypoint");
    // Without direct nothing can be compared.
    expect(goal(goalRun({ ambient: 1.4, sidecar: 1.5, "nginx-sidecar": 2.4 }), "ambient-p99-vs-sidecars").met).toBeNull();
  });

  it("not met rather than null when a comparison it can make already fails", () => {
    const g = goal(goalRun({ direct: 0.5, ambient: 1.6, sidecar: 1.5 }), "ambient-p99-vs-sidecars");
    expect(g.met).toBe(false);
    expect(g.detail).toContain("missing: keepalive-16c latency for nginx-sidecar");
  });

  it("null when the goal load ran at another rate than 1,000 req/s", () => {
    const run = goalRun(ALL);
    for (const r of run.results) r.median.targetRate = 500;
    const g = goal(run, "ambient-p99-vs-sidecars");
    expect(g.met).toBeNull();
    expect(g.detail).toContain("it ran at 500 req/s");
  });

  it("agrees with the goals stored in the sample (two met, two not met)", () => {
    const r = sample();
    expect(evaluateGoals(r)).toEqual(r.goals);
    expect(r.goals.map((g) => g.met)).toEqual([true, true, false, false]);
  });

  it("finalizeResults turns a draft into valid results with medians, ranges, ratios and goals", () => {
    const { schemaVersion: _v, ratios: _r, goals: _g, ...rest } = sample();
    const draft = { ...rest, results: rest.results.map(({ scenario, load, rounds }) => ({ scenario, load, rounds })) };
    const full = finalizeResults(draft);
    expect(validateResults(full)).toEqual({ ok: true });
    expect(full).toEqual(sample());
  });
});

// --- markdown ---------------------------------------------------------------------------------------------------

describe("renderMarkdown", () => {
  const md = renderMarkdown(sample());
  const rowOf = (text: string, heading: string, scenario: string) => {
    const start = text.indexOf(`### ${heading}\n`) + 1;
    const section = text.slice(start, text.indexOf("\n#", start));
    return section.split("\n").find((l) => l.startsWith(`| ${scenario} |`))!;
  };

  it("has the header: date, command, commit, machine, settings", () => {
    expect(md).toContain("- **Date:** 2025-11-20 09:14:03 UTC to 2025-11-20 10:02:47 UTC (48 min 44 s)");
    expect(md).toContain("- **Command:** `npm run bench`");
    expect(md).toContain("- **Commit:** `3d35134c5e0d2b7f6a9e1c4b8d0f2a6e9c7b5d31`");
    expect(md).toContain("2 CPUs (AMD EPYC 7B13), 7.7 GiB memory, Linux 6.8.0-1027-gcp, Node v24.11.1");
    expect(md).toContain("rounds 3, seconds 10, rate 1,000 req/s");
    expect(md).not.toContain("Quick run");
  });

  it("has one table per load with the medians, the p99 range, the achieved rate, errors and the comparisons", () => {
    const r = sample();
    const ambient = r.results.find((x) => x.scenario === "ambient" && x.load === "keepalive-16c")!;
    const l = ambient.median.latencyMs!;
    const row = rowOf(md, "keepalive-16c", "ambient");
    for (const v of [l.p50, l.p90, l.p999, l.max]) expect(row).toContain(`| ${v.toFixed(3)} |`);
    expect(row).toContain(`| ${l.p99.toFixed(3)} (${ambient.range.p99![0].toFixed(3)}–${ambient.range.p99![1].toFixed(3)}) |`);
    expect(row).toContain("| 999 of 1,000 | 0 | +0.934 ms | 0.95× |");
    expect(rowOf(md, "keepalive-16c", "direct")).toContain("| 0 | — | — |");
    expect(rowOf(md, "keepalive-16c", "sidecar")).toContain("| +0.999 ms | — |");
    expect(rowOf(md, "keepalive-64c", "ambient-waypoint")).toContain("| 3 | +2.093 ms |"); // errors summed over rounds
    expect(rowOf(md, "max-throughput", "ambient")).toContain("| 9,281 (9,182–9,342) | 36% | 0 |");
    expect(rowOf(md, "bulk-tcp", "nginx-sidecar")).toContain("| 1,035.3 (1,017.2–1,064.0) | 58% | 0 |");
    expect(rowOf(md, "grpc-unary", "nginx-sidecar")).toBeUndefined();
  });

  it("has resources, control plane, goals and errors", () => {
    expect(md).toContain("| sidecar | keepalive-16c | sidecar-client | 0.121 | 0.116–0.127 |");
    expect(md).toContain("| ambient-waypoint | keepalive-16c | waypoint | 58.3 | 57.1–59.6 |");
    expect(md).toContain("| sidecar | 465.3 (232.7) | 2,331.8 (1,165.9) | 4,655.1 (2,327.6) |");
    expect(md).toContain("| ambient | 4.2 | 10,000 |");
    expect(md).toContain("| whole run | 0.012 | 61.3 |");
    expect(md).toContain("| certificate issuances per second | 2,150 |");
    expect(md).toContain("| policy propagation p99, ms (10,000 pods, 20 nodes) | 388.0 |");
    expect(md).toMatch(/\(`ambient-p99-vs-sidecars`\) \| met \| .*ambient \+0\.934 ms, sidecar \+0\.999 ms, nginx-sidecar \+1\.801 ms/);
    expect(md).toMatch(/\(`agent-cpu-vs-sidecars`\) \| \*\*not met\*\* \| .*agents 0\.210, sidecar pair 0\.230, nginx pair 0\.091 \(2x: 0\.182\)/);
    expect(md).toContain("- `grpc-unary/nginx-sidecar`: skipped: the nginx sidecar's configuration proxies HTTP/1.1 only (no grpc\\_pass)");
  });

  it("is deterministic: the same bytes twice, and whatever order the run lists scenarios, results and resources in", () => {
    expect(renderMarkdown(sample())).toBe(md);
    const shuffled = sample();
    shuffled.scenarios.reverse();
    shuffled.results.reverse();
    shuffled.ratios.reverse();
    shuffled.resources.proxyCpu.reverse();
    shuffled.resources.proxyRss.reverse();
    shuffled.resources.meshMemory.reverse();
    shuffled.resources.perConnection.reverse();
    expect(renderMarkdown(shuffled)).toBe(md);
  });

  it("links charts, flags a quick run and a dirty checkout, and escapes table-breaking text", () => {
    const r = sample();
    r.quick = true;
    r.git.dirty = true;
    r.command = "ROUNDS=1 npm run bench -- --quick | tee `log`";
    r.scenarios[0]!.description = "a | b <script>";
    const text = renderMarkdown(r, { charts: { "keepalive-16c": "run-keepalive-16c.svg", memory: "run-memory.svg" } });
    expect(text).toContain("> **Quick run**");
    expect(text).toContain("with uncommitted changes");
    expect(text).toContain("- **Command:** `` ROUNDS=1 npm run bench -- --quick | tee `log` ``");
    expect(text).toContain("| direct | a \\| b \\<script\\> |");
    expect(text).toContain("![keepalive-16c latency](run-keepalive-16c.svg)");
    expect(text).toContain("![mesh memory per node](run-memory.svg)");
  });

  it("says what was not measured", () => {
    const r = sample();
    r.resources = { proxyCpu: [], proxyRss: [], meshMemory: [], perConnection: [] };
    r.controlPlane = {};
    r.errors = [];
    const text = renderMarkdown(r);
    expect(text).toContain("### Controller\n\nNot measured.");
    expect(text).toContain("## Control plane\n\nNot measured.");
    expect(text).toContain("## Errors\n\nNone.");
  });
});

// --- svg ---------------------------------------------------------------------------------------------------------

describe("SVG charts", () => {
  it("the well-formedness check itself refuses broken XML", () => {
    for (const broken of ["<svg><g></svg>", "<svg a=1/>", '<svg a="1" a="2"/>', "<svg>&nbsp;</svg>", "<svg/><svg/>", '<svg x="<"/>', "<svg>"])
      expect(checkXml(broken).ok, broken).toBe(false);
    expect(checkXml('<?xml version="1.0"?>\n<svg xmlns="x"><g a=\'1\'>&amp;&#38;&#x26;</g><!-- c --></svg>\n').ok).toBe(true);
  });

  it("draws each latency load of the sample as a standalone SVG with every scenario and percentile", () => {
    const r = sample();
    for (const load of ["keepalive-1c", "keepalive-16c", "connect-per-request", "grpc-unary"]) {
      const svg = latencyChartSvg(r, load);
      expectStandaloneSvg(svg);
      expect(svg).toContain(`Latency, ${load} (median of 3 rounds)`);
      for (const label of [">p50<", ">p90<", ">p99<", ">p99.9<", ">direct<", ">ambient-waypoint<", ">sidecar<"]) expect(svg).toContain(label);
    }
    expect(latencyChartSvg(r, "grpc-unary")).not.toContain(">nginx-sidecar<");
    expect(() => latencyChartSvg(r, "bulk-tcp")).toThrow(/no latency results/);
  });

  it("uses a log axis with labelled decades when values span more than 20x, linear otherwise or when asked", () => {
    const r = sample();
    const log = latencyChartSvg(r, "keepalive-16c");
    expect(log).toContain("latency, ms (log scale)");
    for (const tick of [">0.1<", ">0.2<", ">0.5<", ">1<", ">2<", ">5<", ">10<"]) expect(log).toContain(tick);
    const linear = latencyChartSvg(r, "keepalive-16c", { scale: "linear" });
    expectStandaloneSvg(linear);
    expect(linear).not.toContain("log scale");
    for (const tick of [">0<", ">1<", ">2<", ">3<", ">4<", ">5<"]) expect(linear).toContain(tick);
    expect(linearTicks(4.476)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(linearTicks(0.73)).toEqual([0, 0.2, 0.4, 0.6, 0.8]);
    expect(linearTicks(2327.6)).toEqual([0, 500, 1000, 1500, 2000, 2500]);
    expect(logTicks(0.207, 4.476)).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10]);
    expect(logTicks(0.05, 120)).toEqual([0.01, 0.1, 1, 10, 100, 1000]);
  });

  it("draws mesh memory per node against pods, one line per scenario", () => {
    const svg = memoryChartSvg(sample());
    expectStandaloneSvg(svg);
    expect(svg.match(/<polyline /g)).toHaveLength(4);
    expect(svg).toContain("sidecar: 2327.6 MiB per node at 100 enrolled pods");
    expect(svg).toContain(">MiB per node<");
    expect(svg).toContain(">enrolled pods<");
  });

  it("escapes text", () => {
    const svg = groupedBarChartSvg({ title: `<a & "b">`, yLabel: "ms", series: ["p'50"], groups: [{ label: "x<y", values: [1] }] });
    expectStandaloneSvg(svg);
    expect(svg).toContain("&lt;a &amp; &quot;b&quot;&gt;");
    expect(svg).toContain(">x&lt;y<");
    expect(svg).toContain(">p&apos;50<");
  });
});

// --- compare -----------------------------------------------------------------------------------------------------

describe("compareResults", () => {
  it("gives old, new and change in percent per scenario, load and metric", () => {
    const before = sample();
    const after = sample();
    const ambient = after.results.find((r) => r.scenario === "ambient" && r.load === "keepalive-16c")!;
    const oldP99 = ambient.median.latencyMs!.p99;
    ambient.median.latencyMs!.p99 = Number((oldP99 * 1.1).toFixed(4));
    ambient.range.p99 = [ambient.range.p99![0], Math.max(ambient.range.p99![1], ambient.median.latencyMs!.p99)];
    after.resources.proxyCpu.find((c) => c.scenario === "ambient" && c.proxy === "agent-client")!.vcpuPer1000Rps = { median: 0.1, min: 0.1, max: 0.1 };
    after.resources.proxyRss = after.resources.proxyRss.filter((e) => e.proxy !== "waypoint");
    const rows = compareResults(before, after);
    const row = (scenario: string, load: string, metric: string) => rows.find((r) => r.scenario === scenario && r.load === load && r.metric === metric)!;

    expect(row("ambient", "keepalive-16c", "p99Ms")).toMatchObject({ old: oldP99, changePct: 10, better: "lower" });
    expect(row("ambient", "keepalive-16c", "p50Ms").changePct).toBe(0);
    expect(row("ambient", "keepalive-16c", "vcpuPer1000Rps.agent-client")).toMatchObject({ old: 0.112, new: 0.1, changePct: -10.71 });
    expect(row("ambient-waypoint", "keepalive-16c", "rssMiB.waypoint")).toMatchObject({ old: 58.3, new: null, changePct: null });
    expect(row("direct", "max-throughput", "throughputRps").better).toBe("higher");
    expect(rows[0]).toMatchObject({ scenario: "direct", load: "keepalive-1c", metric: "p50Ms" });

    const text = renderComparison(rows);
    expect(text.split("\n")[0]).toMatch(/^scenario +load +metric +old +new +change$/);
    expect(text).toMatch(/ambient +keepalive-16c +p99Ms +1\.468 +1\.615 +\+10\.0% worse/);
    expect(text).toMatch(/agent-client +0\.112 +0\.100 +-10\.7% better/);
    expect(text).toMatch(/rssMiB\.waypoint +58\.3 +n\/a +gone/);
  });

  it("refuses runs of different schema versions, or of a version it does not read", () => {
    const other = { ...sample(), schemaVersion: 2 };
    expect(() => compareResults(sample(), other)).toThrow(/different formats: the old run has schemaVersion 1, the new one 2/);
    expect(() => compareResults(other, other)).toThrow(/reads schemaVersion 1 only/);
    expect(() => compareResults(sample(), { ...sample(), quick: "no" })).toThrow(/the new results do not match.*\n.*\/quick: must be boolean/);
  });
});

// --- write -------------------------------------------------------------------------------------------------------

describe("writeReport", () => {
  it("writes the JSON, the Markdown and one chart per latency load plus memory, named after the start time", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-bench-report-"));
    try {
      const written = await writeReport(sample(), { dir: path.join(dir, "results") });
      const stamp = path.join(dir, "results", "2025-11-20T09-14-03Z");
      expect(written).toEqual({
        json: `${stamp}.json`,
        markdown: `${stamp}.md`,
        charts: ["keepalive-1c", "keepalive-4c", "keepalive-16c", "keepalive-64c", "connect-per-request", "grpc-unary", "memory"].map(
          (c) => `${stamp}-${c}.svg`,
        ),
      });
      expect(JSON.parse(await fs.readFile(written.json, "utf8"))).toEqual(sample());
      const md = await fs.readFile(written.markdown, "utf8");
      expect(md).toBe(
        renderMarkdown(sample(), { charts: Object.fromEntries(written.charts.map((c) => [path.basename(c, ".svg").slice(21), path.basename(c)])) }),
      );
      expect(md).toContain("![keepalive-16c latency](2025-11-20T09-14-03Z-keepalive-16c.svg)");
      for (const chart of written.charts) expectStandaloneSvg(await fs.readFile(chart, "utf8"));

      const elsewhere = path.join(dir, "out", "run.json");
      expect((await writeReport(sample(), { dir: path.join(dir, "results"), outJson: elsewhere })).json).toBe(elsewhere);
      await fs.access(elsewhere);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it("writes nothing and says why when the results are invalid", async () => {
    const dir = path.join(os.tmpdir(), `ambit-bench-report-invalid-${process.pid}`);
    const r = sample() as unknown as Record<string, unknown>;
    delete r.command;
    await expect(writeReport(r as unknown as BenchResults, { dir })).rejects.toThrow(
      /bench results \(nothing written\) do not match the results format \(schemaVersion 1\):\n {2}\(root\): must have required property 'command'/,
    );
    await expect(fs.access(dir)).rejects.toThrow();
  });
});
