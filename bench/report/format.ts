// Number and text formatting shared by the Markdown, SVG and comparison renderers: fixed decimals, thousands separators, no locale.
import { SCENARIO_NAMES } from "./schema.ts";

/** x with `decimals` decimals and "," between thousands; "n/a" for a missing or non-finite value. Never "-0". */
export function num(x: number | undefined | null, decimals = 0): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return "n/a";
  let text = Math.abs(x).toFixed(decimals);
  const negative = x < 0 && Number(text) !== 0;
  const [whole, fraction] = text.split(".") as [string, string | undefined];
  let grouped = "";
  for (let i = 0; i < whole.length; i++) {
    if (i > 0 && (whole.length - i) % 3 === 0) grouped += ",";
    grouped += whole[i];
  }
  text = fraction === undefined ? grouped : `${grouped}.${fraction}`;
  return negative ? `-${text}` : text;
}

/** As num, with a "+" before positive values (a difference). */
export function signed(x: number | undefined | null, decimals = 0): string {
  const text = num(x, decimals);
  return text !== "n/a" && !text.startsWith("-") && Number(text.replaceAll(",", "")) !== 0 ? `+${text}` : text;
}

/** A scenario's position in the canonical order (unknown names last, by name). */
export function scenarioOrder(a: string, b: string): number {
  const ia = (SCENARIO_NAMES as readonly string[]).indexOf(a);
  const ib = (SCENARIO_NAMES as readonly string[]).indexOf(b);
  return (ia < 0 ? Infinity : ia) - (ib < 0 ? Infinity : ib) || (a < b ? -1 : a > b ? 1 : 0);
}

const XML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Text for XML content and attribute values: markup characters escaped, control characters XML forbids dropped. */
export function escapeXml(s: string): string {
  let out = "";
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) continue;
    out += XML_ESCAPES[ch] ?? ch;
  }
  return out;
}
