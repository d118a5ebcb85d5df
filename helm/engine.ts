// Renders a Helm chart the way `helm template` does: values merged, templates executed with Helm's functions.
import { createHash } from "node:crypto";
import { stringify as yamlStringify } from "yaml";
import { validateValues } from "./schema.ts";
import {
  BUILTINS,
  Executor,
  type Node,
  Receiver,
  type TemplateFunc,
  TemplateError,
  type Value,
  formatValue,
  isMap,
  parseTemplate,
  truth,
} from "./template/index.ts";

export interface ChartFiles {
  /** Chart.yaml, parsed. */
  metadata: { name: string; version: string; appVersion?: string; [key: string]: unknown };
  /** values.yaml, parsed. */
  values: Record<string, Value>;
  /** templates/<name> -> text; names starting with "_" only define templates (helpers). */
  templates: Record<string, string>;
  /** values.schema.json, parsed: the merged values must meet it before anything renders. */
  schema?: unknown;
  /** The chart's other files by path (crds/x.yaml, dashboards/y.json): what templates read through .Files. */
  files?: Record<string, string | Uint8Array>;
}

export interface RenderOptions {
  /** Values given at install (`--set`, `-f`): merged over the chart's. */
  values?: Record<string, Value>;
  release?: { name?: string; namespace?: string; revision?: number; isInstall?: boolean };
  kubeVersion?: { major: string; minor: string };
}

/** Helm's coalescing: maps merge key by key, anything else given replaces the default, null deletes it. */
export function mergeValues(base: Record<string, Value>, over: Record<string, Value>): Record<string, Value> {
  const out: Record<string, Value> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isMap(v) && isMap(out[k])) out[k] = mergeValues(out[k] as Record<string, Value>, v);
    else out[k] = v;
  }
  return out;
}

/** JSON as Go's encoding/json writes it: map keys sorted, no spaces. */
function toJson(v: Value): string {
  if (v === undefined || v === null) return "null";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return Number.isFinite(v) ? JSON.stringify(v) : "null";
  if (typeof v === "string" || typeof v === "boolean") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(toJson).join(",")}]`;
  if (isMap(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${toJson(v[k])}`)
      .join(",")}}`;
  return JSON.stringify(String(v));
}

/** Plain data for the YAML writer: bigints become numbers. */
const plain = (v: Value): Value =>
  typeof v === "bigint" ? Number(v) : Array.isArray(v) ? v.map(plain) : isMap(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;

/** toYaml as Helm writes it (sigs.k8s.io/yaml): keys sorted, two-space indents, no trailing newline. */
function toYaml(v: Value): string {
  if (v === undefined || v === null) return "null";
  return yamlStringify(plain(v), { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, "");
}

/** Sprig's strval: a []byte is its text. */
const str = (v: Value): string =>
  v === undefined || v === null ? "" : typeof v === "string" ? v : v instanceof Uint8Array ? Buffer.from(v).toString("utf8") : formatValue(v);

/** Sprig's `empty` and `default` rely on Go's zero values. */
const empty = (v: Value) => !truth(v);

function toInt(v: Value): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return BigInt(Math.trunc(v));
  if (typeof v === "string" && /^-?\d+$/.test(v.trim())) return BigInt(v.trim());
  if (typeof v === "boolean") return v ? 1n : 0n;
  return 0n;
}

/** The Sprig functions and Helm's own that the chart may use; each behaves as its Go original on JSON-like values. */
function helmFuncs(engine: { include(name: string, dot: Value): string; tpl(text: string, dot: Value): string }): Record<string, TemplateFunc> {
  return {
    ...BUILTINS,
    include: (name, dot) => engine.include(str(name), dot),
    tpl: (text, dot) => engine.tpl(str(text), dot),
    required: (message, value) => {
      if (value === undefined || value === null || value === "") throw new TemplateError("AMBIT_E_TEMPLATE_EXEC", str(message));
      return value;
    },
    fail: (message) => {
      throw new TemplateError("AMBIT_E_TEMPLATE_EXEC", str(message));
    },
    toYaml,
    toJson,
    fromJson: (text) => JSON.parse(str(text)) as Value,
    default: (dflt, ...rest) => (rest.length === 0 || empty(rest[0]) ? dflt : rest[0]),
    empty: (v) => empty(v),
    coalesce: (...vs) => vs.find((v) => !empty(v)) ?? null,
    ternary: (a, b, cond) => (truth(cond) ? a : b),
    quote: (...vs) =>
      vs
        .filter((v) => v !== undefined && v !== null)
        .map((v) => JSON.stringify(str(v)))
        .join(" "),
    squote: (...vs) =>
      vs
        .filter((v) => v !== undefined && v !== null)
        .map((v) => `'${str(v)}'`)
        .join(" "),
    upper: (s) => str(s).toUpperCase(),
    lower: (s) => str(s).toLowerCase(),
    title: (s) => str(s).replace(/(^|[^\p{L}\p{N}'])(\p{L})/gu, (_m, sep: string, c: string) => sep + c.toUpperCase()),
    trim: (s) => str(s).trim(),
    trimSuffix: (suffix, s) => (str(s).endsWith(str(suffix)) && str(suffix) ? str(s).slice(0, -str(suffix).length) : str(s)),
    trimPrefix: (prefix, s) => (str(s).startsWith(str(prefix)) ? str(s).slice(str(prefix).length) : str(s)),
    trunc: (n, s) => {
      const i = Number(toInt(n));
      return i >= 0 ? str(s).slice(0, i) : str(s).slice(i);
    },
    indent: (n, s) =>
      str(s)
        .split("\n")
        .map((l) => " ".repeat(Number(toInt(n))) + l)
        .join("\n"),
    nindent: (n, s) =>
      "\n" +
      str(s)
        .split("\n")
        .map((l) => " ".repeat(Number(toInt(n))) + l)
        .join("\n"),
    replace: (from, to, s) => str(s).split(str(from)).join(str(to)),
    repeat: (n, s) => str(s).repeat(Math.max(0, Number(toInt(n)))),
    contains: (sub, s) => str(s).includes(str(sub)),
    hasPrefix: (prefix, s) => str(s).startsWith(str(prefix)),
    hasSuffix: (suffix, s) => str(s).endsWith(str(suffix)),
    join: (sep, list) => (Array.isArray(list) ? list.map(str).join(str(sep)) : str(list)),
    list: (...vs) => vs,
    dict: (...kv) => Object.fromEntries(Array.from({ length: Math.floor(kv.length / 2) }, (_, i) => [str(kv[2 * i]), kv[2 * i + 1]])),
    hasKey: (m, k) => isMap(m) && str(k) in m,
    keys: (...ms) => ms.flatMap((m) => (isMap(m) ? Object.keys(m) : [])),
    toString: (v: Value) => str(v),
    int: (v) => toInt(v),
    int64: (v) => toInt(v),
    b64enc: (s) => Buffer.from(str(s), "utf8").toString("base64"),
    sha256sum: (s) => createHash("sha256").update(str(s)).digest("hex"),
  };
}

/** Go's error for a method called with the wrong number of arguments. */
function arity(name: string, want: number, args: Value[]): void {
  if (args.length !== want) throw new TemplateError("AMBIT_E_TEMPLATE_EXEC", `wrong number of args for ${name}: want ${want} got ${args.length}`);
}

/**
 * Helm's .Files (pkg/engine/files.go): the chart's files outside templates/ and Chart.yaml, values.yaml and
 * values.schema.json. Get, GetBytes and Lines as Helm has them; its other methods are refused, not approximated.
 */
function filesObject(files: Record<string, string | Uint8Array>): Receiver {
  const bytes = (name: Value): Uint8Array => {
    const f = files[str(name)];
    return f === undefined ? new Uint8Array() : typeof f === "string" ? new Uint8Array(Buffer.from(f, "utf8")) : f;
  };
  const unsupported = (name: string) => () => {
    throw new TemplateError("AMBIT_E_TEMPLATE_EXEC", `.Files.${name} is not supported by this renderer (Get, GetBytes and Lines are)`);
  };
  return new Receiver("engine.files", {
    // A missing file is "", as in Helm.
    Get: (...args) => (arity("Get", 1, args), str(bytes(args[0]))),
    GetBytes: (...args) => (arity("GetBytes", 1, args), bytes(args[0])),
    // Helm drops one trailing newline, then splits; a missing file has no lines.
    Lines: (...args) => {
      arity("Lines", 1, args);
      if (files[str(args[0])] === undefined) return [];
      const text = str(bytes(args[0]));
      return (text.endsWith("\n") ? text.slice(0, -1) : text).split("\n");
    },
    Glob: unsupported("Glob"),
    AsConfig: unsupported("AsConfig"),
    AsSecrets: unsupported("AsSecrets"),
  });
}

/**
 * `helm template`: every template outside `_` files, rendered with .Values, .Release, .Chart, .Capabilities and
 * .Template; "<no value>" is written as nothing, as Helm does. Named templates of all files are visible to all.
 */
export function renderChart(chart: ChartFiles, opts: RenderOptions = {}): Map<string, string> {
  const values = mergeValues(chart.values, opts.values ?? {});
  // As Helm's ToRenderValues: the coalesced values meet the schema, or nothing is rendered.
  if (chart.schema !== undefined) validateValues(chart.metadata.name, chart.schema, values);
  const files = filesObject(chart.files ?? {});
  const parsed = new Map(Object.entries(chart.templates).map(([name, text]) => [name, parseTemplate(text, `${chart.metadata.name}/templates/${name}`)]));
  const defines = new Map<string, Node[]>();
  for (const p of parsed.values()) for (const [n, body] of p.defines) defines.set(n, body);
  const funcs: Record<string, TemplateFunc> = {};
  const executor = new Executor({ funcs, templates: defines });
  Object.assign(
    funcs,
    helmFuncs({
      include: (name, dot) => executor.renderNamed(name, dot),
      tpl: (text, dot) => {
        const p = parseTemplate(text, "tpl");
        for (const [n, body] of p.defines) defines.set(n, body);
        return executor.render(p.root, dot);
      },
    }),
  );
  const top = (name: string) => ({
    Values: values,
    Release: {
      Name: opts.release?.name ?? "release-name",
      Namespace: opts.release?.namespace ?? "default",
      Revision: BigInt(opts.release?.revision ?? 1),
      IsInstall: opts.release?.isInstall ?? true,
      IsUpgrade: !(opts.release?.isInstall ?? true),
      Service: "Helm",
    },
    Chart: { ...chart.metadata, Name: chart.metadata.name, Version: chart.metadata.version, AppVersion: chart.metadata.appVersion ?? "" },
    Capabilities: {
      KubeVersion: {
        Major: opts.kubeVersion?.major ?? "1",
        Minor: opts.kubeVersion?.minor ?? "32",
        Version: `v${opts.kubeVersion?.major ?? "1"}.${opts.kubeVersion?.minor ?? "32"}.0`,
      },
    },
    Template: { Name: `${chart.metadata.name}/templates/${name}`, BasePath: `${chart.metadata.name}/templates` },
    Files: files,
  });
  const out = new Map<string, string>();
  for (const [name, p] of parsed) {
    if (name.split("/").at(-1)!.startsWith("_")) continue;
    out.set(`${chart.metadata.name}/templates/${name}`, executor.render(p.root, top(name)).replaceAll("<no value>", ""));
  }
  return out;
}
