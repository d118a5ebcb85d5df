// A chart directory read from disk and rendered to Kubernetes objects, as `helm template` followed by an apply.
import fs from "node:fs/promises";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { type ChartFiles, type RenderOptions, renderChart } from "./engine.ts";
import { ValuesError } from "./schema.ts";
import { AmbitError } from "../contract/errors.ts";
import { CHART_ERRORS } from "../contract/error-codes.ts";

export interface KubeManifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

async function filesUnder(dir: string, prefix?: string): Promise<Record<string, string>>;
async function filesUnder(dir: string, prefix: string, raw: true): Promise<Record<string, Uint8Array>>;
async function filesUnder(dir: string, prefix = "", raw = false): Promise<Record<string, string | Uint8Array>> {
  const out: Record<string, string | Uint8Array> = {};
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) Object.assign(out, await filesUnder(path.join(dir, entry.name), rel, raw as true));
    else out[rel] = raw ? new Uint8Array(await fs.readFile(path.join(dir, entry.name))) : await fs.readFile(path.join(dir, entry.name), "utf8");
  }
  return out;
}

/** What Helm's loader takes out of a chart's files; everything else is .Files (crds/ included, as in Helm). */
const NOT_FILES = /^(Chart\.yaml|Chart\.lock|values\.yaml|values\.schema\.json|requirements\.(yaml|lock)|\.helmignore|(templates|charts)\/.*)$/;

/** Chart.yaml, values.yaml, values.schema.json, templates/ and the other files (.Files) of a chart directory. */
export async function loadChart(dir: string): Promise<ChartFiles> {
  const metadata = parse(await fs.readFile(path.join(dir, "Chart.yaml"), "utf8")) as ChartFiles["metadata"];
  const values = (parse(await fs.readFile(path.join(dir, "values.yaml"), "utf8").catch(() => "")) ?? {}) as ChartFiles["values"];
  const all = await filesUnder(dir, "", true);
  // Helm leaves out what .helmignore names (from .Files and from the package); without that here, .Files would
  // differ from Helm's in silence.
  if (all[".helmignore"])
    throw new AmbitError(CHART_ERRORS.code.unsupported, `${metadata.name}/.helmignore: not supported by this renderer; .Files would hold files Helm ignores`);
  const schemaBytes = all["values.schema.json"];
  let schema: unknown;
  if (schemaBytes) {
    try {
      schema = JSON.parse(Buffer.from(schemaBytes).toString("utf8"));
    } catch (err) {
      throw new ValuesError("AMBIT_E_VALUES_SCHEMA", `${metadata.name}/values.schema.json is not valid JSON: ${(err as Error).message}`);
    }
  }
  const files = Object.fromEntries(Object.entries(all).filter(([name]) => !NOT_FILES.test(name)));
  return { metadata, values, templates: await filesUnder(path.join(dir, "templates")), ...(schema === undefined ? {} : { schema }), files };
}

function documents(text: string, source: string): KubeManifest[] {
  const out: KubeManifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: the rendered YAML is invalid: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as KubeManifest | null;
    if (obj && typeof obj === "object" && obj.kind) out.push(obj);
  }
  return out;
}

/**
 * `helm template` of a chart directory: the CRDs of crds/ (installed first and never templated, as Helm does) and
 * the objects its templates render, in file order. NOTES.txt is returned apart.
 */
export async function renderChartDir(dir: string, opts: RenderOptions = {}): Promise<{ crds: KubeManifest[]; objects: KubeManifest[]; notes: string }> {
  const chart = await loadChart(dir);
  const rendered = renderChart(chart, opts);
  const crds: KubeManifest[] = [];
  for (const [name, text] of Object.entries(await filesUnder(path.join(dir, "crds"))).sort())
    if (/\.ya?ml$/.test(name)) crds.push(...documents(text, `crds/${name}`));
  const objects: KubeManifest[] = [];
  let notes = "";
  for (const [name, text] of [...rendered].sort(([a], [b]) => a.localeCompare(b))) {
    if (name.endsWith("NOTES.txt")) notes = text;
    else if (/\.ya?ml$/.test(name)) objects.push(...documents(text, name));
  }
  return { crds, objects, notes };
}
