// The results format of `npm run bench` (schemaVersion 1): its TypeScript types, its JSON Schema (draft-07) and validateResults.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";

/**
 * The version of the format below. It changes whenever a field is renamed, removed, retyped or given a new meaning;
 * readers (compareResults) refuse a version they were not written for rather than misread it.
 */
export const SCHEMA_VERSION = 1;

/** The deployments a run measures, in the order every table and chart lists them. */
export const SCENARIO_NAMES = ["direct", "ambient", "ambient-same-node", "ambient-waypoint", "sidecar", "nginx-sidecar"] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** What a load is judged by: latency at a fixed rate, requests per second in a closed loop, or bytes per second. */
export const LOAD_KINDS = ["latency", "throughput", "bulk"] as const;
export type LoadKind = (typeof LOAD_KINDS)[number];

/** The proxy processes whose CPU and memory a run reads, by role. */
export const PROXY_NAMES = ["agent-client", "agent-server", "sidecar-client", "sidecar-server", "waypoint", "nginx-client", "nginx-server"] as const;
export type ProxyName = (typeof PROXY_NAMES)[number];

/** Latency percentiles of one measurement, in milliseconds. `p999` is the 99.9th percentile. */
export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** One measurement of one load against one scenario: a round, or the medians across rounds. */
export interface Measurement {
  /** Latency of the answered requests (latency loads; throughput loads may report it too). */
  latencyMs?: LatencyMs;
  /** The rate the load generator aimed for (open-loop loads), requests per second. */
  targetRate?: number;
  /** Requests answered per second over the measured window (open-loop loads). */
  achievedRate?: number;
  /** Requests answered in the measured window. */
  requests?: number;
  /** Requests that failed (connection error, reset, non-2xx status, timeout). */
  errors: number;
  /** Requests answered per second in a closed loop (throughput loads). */
  throughputRps?: number;
  /** Payload megabytes (10^6 bytes) per second through one stream (bulk loads). */
  bulkMBps?: number;
  /** Length of the measured window in seconds (warm-up excluded). */
  durationS: number;
}

/** One round: the scenarios run one after another in each round, so round n of two scenarios were measured close in time. */
export interface RoundResult extends Measurement {
  /** 1-based round number, the same number in every scenario measured in that round. */
  round: number;
}

/** The fields of a measurement whose spread across rounds is kept: the latency percentiles and the rates. */
export const RANGE_FIELDS = ["p50", "p90", "p99", "p999", "max", "achievedRate", "throughputRps", "bulkMBps"] as const;
export type RangeField = (typeof RANGE_FIELDS)[number];
/** [lowest, highest] across rounds, for each field some round has. */
export type Ranges = Partial<Record<RangeField, [number, number]>>;

/** One load against one scenario: every round, the median of each field across rounds, and its range. */
export interface ScenarioLoadResult {
  scenario: ScenarioName;
  load: string;
  rounds: RoundResult[];
  /** Each field's median across the rounds that have it (each percentile on its own). */
  median: Measurement;
  range: Ranges;
}

/** A value measured once per round: its median, lowest and highest across rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** CPU time one proxy process spent per 1,000 requests answered, in vCPU (CPU seconds per second) per 1,000 req/s. */
export interface ProxyCpu {
  scenario: ScenarioName;
  /** The load it was measured under. */
  load: string;
  proxy: ProxyName;
  vcpuPer1000Rps: Spread;
}

/** A proxy process's resident set size at the end of a load, MiB. */
export interface ProxyRss {
  scenario: ScenarioName;
  load: string;
  proxy: ProxyName;
  rssMiB: Spread;
}

/** The memory of all the mesh's data-plane processes (agents, sidecars, waypoints) with `pods` pods enrolled. */
export interface MeshMemory {
  scenario: ScenarioName;
  /** Enrolled pods (10, 50 and 100 in `npm run bench`). */
  pods: number;
  /** Nodes the pods were spread over; `totalMiB / nodes` is the memory per node. */
  nodes: number;
  /** Sum of the resident set sizes, MiB. */
  totalMiB: number;
}

/** Memory the mesh holds per open, idle connection through it. */
export interface PerConnection {
  scenario: ScenarioName;
  kibPerConnection: number;
  /** Connections held open while measuring. */
  connections?: number;
}

/** The controller over the whole run. */
export interface ControllerUsage {
  /** Average CPU use, vCPU. */
  cpuVcpu: number;
  /** Resident set size at the end of the run, MiB. */
  rssMiB: number;
}

export interface Resources {
  proxyCpu: ProxyCpu[];
  proxyRss: ProxyRss[];
  meshMemory: MeshMemory[];
  perConnection: PerConnection[];
  controller?: ControllerUsage;
}

export interface ControlPlane {
  /** Workload certificates the CA signs per second. */
  certIssuancesPerSec?: number;
  /** From a policy change at the API server to its enforcement on every node, ms, over `pods` pods on `nodes` nodes. */
  policyPropagationMs?: { p50: number; p99: number; pods: number; nodes: number };
}

/** A scenario's latency against a reference scenario, paired round by round. */
export interface LatencyDelta {
  /** Median over paired rounds of (scenario p50 - reference p50), ms. */
  addedP50Ms: number;
  /** Median over paired rounds of (scenario p99 - reference p99), ms. */
  addedP99Ms: number;
  /** Median over paired rounds of (scenario p99 / reference p99). */
  p99Ratio: number;
  /** Rounds in which both were measured. */
  rounds: number;
}

export interface Ratio {
  scenario: ScenarioName;
  load: string;
  vsDirect: LatencyDelta;
  /** Absent for the sidecar scenario itself and when sidecar was not measured under this load. */
  vsSidecar?: LatencyDelta;
}

/** One of the project's targets, judged from this run's numbers. */
export interface Goal {
  id: string;
  text: string;
  /** null: the run lacks data the goal needs (`detail` says which). */
  met: boolean | null;
  detail: string;
}

/** A step that failed; the run went on and its results lack that step's numbers. */
export interface RunError {
  step: string;
  message: string;
}

/** Knobs the run used. `rounds`, `seconds` and `rate` always; any other scalar a harness wants to record. */
export interface Settings {
  rounds: number;
  seconds: number;
  rate: number;
  [setting: string]: number | string | boolean;
}

export interface BenchResults {
  schemaVersion: typeof SCHEMA_VERSION;
  /** ISO 8601, UTC (`Z`). */
  startedAt: string;
  finishedAt: string;
  /** The command line as typed, e.g. `npm run bench -- --quick`. */
  command: string;
  quick: boolean;
  git: { commit: string | null; dirty: boolean };
  machine: { cpus: number; cpuModel: string; memoryGiB: number; kernel: string; node: string };
  settings: Settings;
  scenarios: Array<{ name: ScenarioName; description: string }>;
  loads: Array<{ name: string; description: string; kind: LoadKind }>;
  results: ScenarioLoadResult[];
  resources: Resources;
  controlPlane: ControlPlane;
  ratios: Ratio[];
  goals: Goal[];
  errors: RunError[];
}

// --- JSON Schema -----------------------------------------------------------------------------------------------

type Schema = Record<string, unknown>;

const describe = (description: string, schema: Schema): Schema => ({ description, ...schema });
const number = (description: string, minimum?: number): Schema => ({ type: "number", description, ...(minimum === undefined ? {} : { minimum }) });
const integer = (description: string, minimum: number): Schema => ({ type: "integer", description, minimum });
const string = (description: string): Schema => ({ type: "string", description, minLength: 1 });
/** An object with exactly these properties; `optional` lists the ones that may be absent. */
function object(description: string, properties: Record<string, Schema>, optional: readonly string[] = []): Schema {
  return {
    type: "object",
    description,
    additionalProperties: false,
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
    properties,
  };
}
const array = (description: string, items: Schema, minItems = 0): Schema => ({ type: "array", description, items, ...(minItems ? { minItems } : {}) });

const ISO_UTC = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?Z$";
/** A load's name is also part of its chart's file name. */
const LOAD_NAME = { type: "string", pattern: "^[a-z0-9][a-z0-9.-]*$", description: "a load's name, as in `loads` (lower case, digits, '-' and '.')" };
const SCENARIO = { enum: [...SCENARIO_NAMES], description: "a scenario's name, as in `scenarios`" };
const PROXY = { enum: [...PROXY_NAMES], description: "the proxy process, by role" };

const latencyMs = object("latency percentiles, ms", {
  p50: number("50th percentile, ms", 0),
  p90: number("90th percentile, ms", 0),
  p99: number("99th percentile, ms", 0),
  p999: number("99.9th percentile, ms", 0),
  max: number("slowest request, ms", 0),
});

const measurementProperties = {
  latencyMs,
  targetRate: number("rate the load aimed for, req/s", 0),
  achievedRate: number("requests answered per second over the window", 0),
  requests: number("requests answered in the window", 0),
  errors: number("failed requests", 0),
  throughputRps: number("requests answered per second, closed loop", 0),
  bulkMBps: number("payload MB (10^6 bytes) per second", 0),
  durationS: number("measured window, seconds", 0),
};
const MEASUREMENT_OPTIONAL = ["latencyMs", "targetRate", "achievedRate", "requests", "throughputRps", "bulkMBps"];

const round = object(
  "one round",
  { round: integer("1-based round number", 1), ...measurementProperties, errors: integer("failed requests", 0), requests: integer("requests answered", 0) },
  MEASUREMENT_OPTIONAL,
);

const pair = { type: "array", items: { type: "number" }, minItems: 2, maxItems: 2, description: "[lowest, highest] across rounds" };
const spread = (description: string): Schema =>
  object(description, { median: number("median across rounds", 0), min: number("lowest round", 0), max: number("highest round", 0) });

const latencyDelta = (reference: string): Schema =>
  object(`against ${reference}, paired round by round`, {
    addedP50Ms: number(`median over paired rounds of (p50 - ${reference}'s p50), ms`),
    addedP99Ms: number(`median over paired rounds of (p99 - ${reference}'s p99), ms`),
    p99Ratio: number(`median over paired rounds of (p99 / ${reference}'s p99)`, 0),
    rounds: integer("rounds in which both were measured", 1),
  });

/** The JSON Schema (draft-07) of a results file, schemaVersion 1. */
export const RESULTS_SCHEMA: Schema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  $id: "https://ambit.dev/schemas/bench-results-v1.json",
  title: "Ambit benchmark results",
  ...object("what `npm run bench` measured in one run", {
    schemaVersion: { const: SCHEMA_VERSION, description: "the version of this format" },
    startedAt: { type: "string", pattern: ISO_UTC, description: "start of the run, ISO 8601 UTC" },
    finishedAt: { type: "string", pattern: ISO_UTC, description: "end of the run, ISO 8601 UTC" },
    command: string("the command line as typed"),
    quick: { type: "boolean", description: "a --quick run: fewer rounds, shorter loads" },
    git: object("the checkout that ran", {
      commit: { type: ["string", "null"], pattern: "^[0-9a-f]{7,64}$", description: "HEAD's commit, null outside a git checkout" },
      dirty: { type: "boolean", description: "uncommitted changes to tracked files" },
    }),
    machine: object("the machine that ran", {
      cpus: integer("logical CPUs", 1),
      cpuModel: { type: "string", description: "CPU model name" },
      memoryGiB: number("total memory, GiB", 0),
      kernel: { type: "string", description: "kernel release (uname -r)" },
      node: { type: "string", description: "Node.js version (process.version)" },
    }),
    settings: {
      type: "object",
      description: "knobs the run used: rounds, seconds and rate always, other scalars as the harness records them",
      required: ["rounds", "seconds", "rate"],
      properties: {
        rounds: integer("rounds per scenario and load", 1),
        seconds: number("measured seconds per load", 0),
        rate: number("open-loop request rate, req/s", 0),
      },
      additionalProperties: { type: ["number", "string", "boolean"] },
    },
    scenarios: array(
      "the scenarios measured",
      object("a scenario", { name: { enum: [...SCENARIO_NAMES], description: "scenario name" }, description: string("what it deploys") }),
    ),
    loads: array("the loads applied", object("a load", { name: LOAD_NAME, description: string("what it sends"), kind: { enum: [...LOAD_KINDS] } })),
    results: array(
      "one entry per scenario and load measured",
      object("one load against one scenario", {
        scenario: SCENARIO,
        load: LOAD_NAME,
        rounds: array("every round", round, 1),
        median: object("each field's median across rounds", measurementProperties, MEASUREMENT_OPTIONAL),
        range: object("[lowest, highest] across rounds per field", Object.fromEntries(RANGE_FIELDS.map((f) => [f, pair])), RANGE_FIELDS),
      }),
    ),
    resources: object(
      "CPU and memory of the mesh's processes",
      {
        proxyCpu: array(
          "CPU per 1,000 req/s per proxy process",
          object("a proxy under a load", { scenario: SCENARIO, load: LOAD_NAME, proxy: PROXY, vcpuPer1000Rps: spread("vCPU per 1,000 req/s") }),
        ),
        proxyRss: array(
          "resident memory per proxy process at the end of a load",
          object("a proxy under a load", { scenario: SCENARIO, load: LOAD_NAME, proxy: PROXY, rssMiB: spread("RSS, MiB") }),
        ),
        meshMemory: array(
          "memory of all data-plane processes against enrolled pods",
          object("a scenario with a number of pods", {
            scenario: SCENARIO,
            pods: integer("enrolled pods", 1),
            nodes: integer("nodes the pods were spread over", 1),
            totalMiB: number("sum of RSS, MiB", 0),
          }),
        ),
        perConnection: array(
          "memory per open idle connection",
          object("a scenario", { scenario: SCENARIO, kibPerConnection: number("KiB per connection"), connections: integer("connections held", 1) }, [
            "connections",
          ]),
        ),
        controller: object("the controller over the run", { cpuVcpu: number("average vCPU", 0), rssMiB: number("RSS, MiB", 0) }),
      },
      ["controller"],
    ),
    controlPlane: object(
      "control-plane figures",
      {
        certIssuancesPerSec: number("certificates signed per second", 0),
        policyPropagationMs: object("policy change to enforcement on every node", {
          p50: number("p50, ms", 0),
          p99: number("p99, ms", 0),
          pods: integer("pods", 0),
          nodes: integer("nodes", 1),
        }),
      },
      ["certIssuancesPerSec", "policyPropagationMs"],
    ),
    ratios: array(
      "latency of each scenario against direct and sidecar",
      object("a scenario under a latency load", { scenario: SCENARIO, load: LOAD_NAME, vsDirect: latencyDelta("direct"), vsSidecar: latencyDelta("sidecar") }, [
        "vsSidecar",
      ]),
    ),
    goals: array(
      "the project's targets judged on this run",
      object("a goal", {
        id: string("stable identifier"),
        text: string("the goal"),
        met: { type: ["boolean", "null"], description: "null when the run lacks the data" },
        detail: { type: "string", description: "the numbers compared, or what is missing" },
      }),
    ),
    errors: array("steps that failed", object("a failed step", { step: string("which step"), message: describe("what went wrong", { type: "string" }) })),
  }),
};

// --- validation ----------------------------------------------------------------------------------------------

let compiled: ValidateFunction | undefined;
function validator(): ValidateFunction {
  compiled ??= new Ajv({ allErrors: true, allowUnionTypes: true, strict: true }).compile(RESULTS_SCHEMA);
  return compiled;
}

function formatAjvError(e: ErrorObject): string {
  const where = e.instancePath || "(root)";
  const params = e.params as Record<string, unknown>;
  if (e.keyword === "additionalProperties") return `${where}: unknown property "${String(params.additionalProperty)}"`;
  if (e.keyword === "enum") return `${where}: must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
  return `${where}: ${e.message ?? e.keyword}`;
}

/** What the JSON Schema cannot say: names refer to declared scenarios and loads, no duplicates, ordered percentiles and ranges. */
function consistencyErrors(r: BenchResults): string[] {
  const errors: string[] = [];
  const duplicates = (names: string[], where: string) => {
    const seen = new Set<string>();
    for (const [i, n] of names.entries()) {
      if (seen.has(n)) errors.push(`${where}/${i}: duplicate "${n}"`);
      seen.add(n);
    }
  };
  duplicates(
    r.scenarios.map((s) => s.name),
    "/scenarios",
  );
  duplicates(
    r.loads.map((l) => l.name),
    "/loads",
  );
  const scenarios = new Set<string>(r.scenarios.map((s) => s.name));
  const loads = new Set(r.loads.map((l) => l.name));
  const refer = (where: string, entry: { scenario: string; load?: string }) => {
    if (!scenarios.has(entry.scenario)) errors.push(`${where}/scenario: "${entry.scenario}" is not in /scenarios`);
    if (entry.load !== undefined && !loads.has(entry.load)) errors.push(`${where}/load: "${entry.load}" is not in /loads`);
  };
  const ordered = (where: string, l: LatencyMs | undefined) => {
    if (!l) return;
    const order = [l.p50, l.p90, l.p99, l.p999, l.max];
    if (order.some((v, i) => i > 0 && v < order[i - 1]!)) errors.push(`${where}/latencyMs: percentiles must not decrease (p50 <= p90 <= p99 <= p999 <= max)`);
  };
  duplicates(
    r.results.map((x) => `${x.scenario}/${x.load}`),
    "/results",
  );
  for (const [i, x] of r.results.entries()) {
    const where = `/results/${i}`;
    refer(where, x);
    duplicates(
      x.rounds.map((rd) => String(rd.round)),
      `${where}/rounds`,
    );
    for (const [j, rd] of x.rounds.entries()) ordered(`${where}/rounds/${j}`, rd.latencyMs);
    ordered(`${where}/median`, x.median.latencyMs);
    for (const [field, [min, max]] of Object.entries(x.range)) if (min > max) errors.push(`${where}/range/${field}: ${min} > ${max}`);
  }
  for (const [key, list] of [
    ["proxyCpu", r.resources.proxyCpu.map((e) => ({ ...e, spread: e.vcpuPer1000Rps }))],
    ["proxyRss", r.resources.proxyRss.map((e) => ({ ...e, spread: e.rssMiB }))],
  ] as const) {
    for (const [i, e] of list.entries()) {
      refer(`/resources/${key}/${i}`, e);
      if (!(e.spread.min <= e.spread.median && e.spread.median <= e.spread.max)) errors.push(`/resources/${key}/${i}: must have min <= median <= max`);
    }
  }
  for (const [i, e] of r.resources.meshMemory.entries()) refer(`/resources/meshMemory/${i}`, e);
  for (const [i, e] of r.resources.perConnection.entries()) refer(`/resources/perConnection/${i}`, e);
  for (const [i, e] of r.ratios.entries()) refer(`/ratios/${i}`, e);
  duplicates(
    r.goals.map((g) => g.id),
    "/goals",
  );
  if (Date.parse(r.finishedAt) < Date.parse(r.startedAt)) errors.push("/finishedAt: before /startedAt");
  return errors;
}

/** Checks a parsed results file against RESULTS_SCHEMA, then the cross-references the schema cannot express. */
export function validateResults(json: unknown): { ok: true } | { ok: false; errors: string[] } {
  const validate = validator();
  if (!validate(json)) return { ok: false, errors: (validate.errors ?? []).map(formatAjvError) };
  const errors = consistencyErrors(json as unknown as BenchResults);
  return errors.length ? { ok: false, errors } : { ok: true };
}

/** validateResults as an assertion: throws one Error listing every problem. */
export function assertValidResults(json: unknown, what = "bench results"): asserts json is BenchResults {
  const v = validateResults(json);
  if (!v.ok) throw new Error(`${what} do not match the results format (schemaVersion ${SCHEMA_VERSION}):\n${v.errors.map((e) => `  ${e}`).join("\n")}`);
}
