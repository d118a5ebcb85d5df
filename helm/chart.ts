// A chart directory read from disk and rendered to Kubernetes objects, as `helm template` followed by an apply.
import fs from "node:fs/promises";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { type ChartFiles, type RenderOptions, renderChart } from "./engine.ts";

export interface KubeManifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

async function filesUnder(dir: string, prefix = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) Object.assign(out, await filesUnder(path.join(dir, entry.name), rel));
    else out[rel] = await fs.readFile(path.join(dir, entry.name), "utf8");
  }
  return out;
}

/** Chart.yaml, values.yaml and templates/ of a chart directory. */
export async function loadChart(dir: string): Promise<ChartFiles> {
  const metadata = parse(await fs.readFile(path.join(dir, "Chart.yaml"), "utf8")) as ChartFiles["metadata"];
  const values = (parse(await fs.readFile(path.join(dir, "values.yaml"), "utf8").catch(() => "")) ?? {}) as ChartFiles["values"];
  return { metadata, values, templates: await filesUnder(path.join(dir, "templates")) };
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
  for (const [name, text] of Object.entries(await filesUnder(path.join(dir, "crds"))).sort()) if (/\.ya?ml$/.test(name)) crds.push(...documents(text, `crds/${name}`));
  const objects: KubeManifest[] = [];
  let notes = "";
  for (const [name, text] of [...rendered].sort(([a], [b]) => a.localeCompare(b))) {
    if (name.endsWith("NOTES.txt")) notes = text;
    else if (/\.ya?ml$/.test(name)) objects.push(...documents(text, name));
  }
  return { crds, objects, notes };
}
