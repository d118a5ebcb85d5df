// Output of the operator commands: kubectl-style aligned tables, or the stable JSON/YAML documents cli/README.md describes.
import YAML from "yaml";

export type OutputFormat = "table" | "wide" | "json" | "yaml";
export const OUTPUT_FORMATS: readonly OutputFormat[] = ["table", "wide", "json", "yaml"];

/** Every document the CLI prints as JSON or YAML names its schema, so scripts can tell versions apart. */
export const CLI_API_VERSION = "ambit.dev/cli/v1";

export interface Table {
  headers: string[];
  rows: string[][];
  /** Columns shown only with `-o wide` (indexes into `headers`). */
  wideOnly?: number[];
}

/**
 * Aligned like kubectl's: uppercase headers, each column as wide as its widest cell, two spaces between columns,
 * no trailing spaces.
 */
export function formatTable(table: Table, wide = false): string {
  const keep = table.headers.map((_, i) => wide || !table.wideOnly?.includes(i));
  const pick = (cells: string[]) => cells.filter((_, i) => keep[i]);
  const headers = pick(table.headers).map((h) => h.toUpperCase());
  const rows = table.rows.map(pick);
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** The document as `-o json` or `-o yaml` prints it; tables go through `formatTable`. */
export function formatDocument(doc: unknown, format: "json" | "yaml"): string {
  return format === "json" ? JSON.stringify(doc, null, 2) + "\n" : YAML.stringify(doc, { lineWidth: 0 });
}

/** `3d4h`, `5m12s`, `40s`: how kubectl prints ages. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? `${m % 60}m` : ""}`;
  const d = Math.floor(h / 24);
  return `${d}d${h % 24 ? `${h % 24}h` : ""}`;
}

/** Byte counts as kubectl-adjacent tools print them: 512B, 1.5KiB, 12MiB. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}
