// Go text/template's predefined functions, with Go's rules for the JSON-like values Helm gives templates.
import { type TemplateFunc, type Value, formatValue, isMap, truth } from "./exec.ts";

/** Go's basic kind of a value, for comparisons: bigint is Go's int, a JS number float64. */
function kind(v: Value): "int" | "float" | "string" | "bool" | "nil" | "other" {
  if (typeof v === "bigint") return "int";
  if (typeof v === "number") return "float";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (v === null || v === undefined) return "nil";
  return "other";
}

function comparable(a: Value, b: Value, ordered: boolean): void {
  const [ka, kb] = [kind(a), kind(b)];
  if (ka === "other" || kb === "other") throw new Error(ordered ? "invalid type for comparison" : "non-comparable type");
  if (ordered && (ka === "bool" || ka === "nil")) throw new Error("invalid type for comparison");
  if (ka !== kb) throw new Error("incompatible types for comparison");
}

function less(a: Value, b: Value): boolean {
  comparable(a, b, true);
  return (a as number | bigint | string) < (b as number | bigint | string);
}

/** fmt.Sprint: a space between operands when neither side is a string. */
function sprint(args: Value[]): string {
  let out = "";
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== "string" && typeof args[i - 1] !== "string") out += " ";
    out += a === undefined || a === null ? "<nil>" : formatValue(a);
  });
  return out;
}

/** fmt's verbs that templates use: %s %v %d %q %x %X %f %g %e %t %%, with flags, width and precision. */
export function sprintf(format: string, args: Value[]): string {
  let argi = 0;
  const out = format.replace(
    /%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])/g,
    (_m, flags: string, width: string | undefined, prec: string | undefined, verb: string) => {
      if (verb === "%") return "%";
      if (argi >= args.length) return `%!${verb}(MISSING)`;
      const a = args[argi++];
      let s: string;
      const bad = () =>
        `%!${verb}(${kind(a) === "int" ? "int" : kind(a) === "float" ? "float64" : kind(a) === "string" ? "string" : kind(a) === "bool" ? "bool" : "<nil>"}=${formatValue(a)})`;
      switch (verb) {
        case "v":
        case "s":
          if (verb === "s" && typeof a !== "string" && !Array.isArray(a) && !isMap(a)) return bad();
          s = a === undefined || a === null ? "<nil>" : formatValue(a);
          if (prec !== undefined && verb === "s") s = s.slice(0, Number(prec));
          break;
        case "q":
          if (typeof a !== "string") return bad();
          s = flags.includes("#") && !a.includes("`") ? `\`${a}\`` : JSON.stringify(a);
          break;
        case "d":
          if (typeof a !== "bigint") return bad();
          s = (a < 0n ? "-" : flags.includes("+") ? "+" : flags.includes(" ") ? " " : "") + (a < 0n ? -a : a).toString();
          break;
        case "x":
        case "X":
          if (typeof a === "bigint") s = (a < 0n ? "-" : "") + (a < 0n ? -a : a).toString(16);
          else if (typeof a === "string") s = Buffer.from(a, "utf8").toString("hex");
          else return bad();
          if (verb === "X") s = s.toUpperCase();
          break;
        case "t":
          if (typeof a !== "boolean") return bad();
          s = String(a);
          break;
        case "f":
        case "e":
        case "g": {
          if (typeof a !== "number") return bad();
          const p = prec === undefined ? undefined : Number(prec);
          if (verb === "f") s = a.toFixed(p ?? 6);
          else if (verb === "e") s = a.toExponential(p ?? 6).replace(/e([+-])(\d)$/, "e$10$2");
          else s = p === undefined ? formatValue(a) : String(Number(a.toPrecision(p)));
          if (flags.includes("+") && a >= 0) s = `+${s}`;
          break;
        }
        default:
          return `%!${verb}(${formatValue(a)})`;
      }
      const w = width === undefined ? 0 : Number(width);
      if (s.length >= w) return s;
      if (flags.includes("-")) return s.padEnd(w);
      if (flags.includes("0") && /[dxXfeg]/.test(verb)) {
        const sign = /^[+-]/.test(s) ? s.slice(0, 1) : "";
        return sign + s.slice(sign.length).padStart(w - sign.length, "0");
      }
      return s.padStart(w);
    },
  );
  return argi < args.length
    ? `${out}%!(EXTRA ${args
        .slice(argi)
        .map((a) => `${kind(a) === "int" ? "int" : kind(a) === "float" ? "float64" : "string"}=${formatValue(a)}`)
        .join(", ")})`
    : out;
}

function index(item: Value, ...keys: Value[]): Value {
  let cur = item;
  for (const k of keys) {
    if (cur === undefined || cur === null) throw new Error("index of untyped nil");
    if (Array.isArray(cur) || typeof cur === "string") {
      if (typeof k !== "bigint") throw new Error(`cannot index slice/array with type ${kind(k) === "float" ? "float64" : kind(k)}`);
      if (k < 0n || k >= BigInt(cur.length)) throw new Error(`index out of range: ${k}`);
      cur = typeof cur === "string" ? BigInt(Buffer.from(cur)[Number(k)]!) : cur[Number(k)];
    } else if (isMap(cur)) {
      if (typeof k !== "string") throw new Error(`value has type ${kind(k) === "int" ? "int" : kind(k)}; should be string`);
      cur = cur[k];
    } else throw new Error(`can't index item of type ${kind(cur)}`);
  }
  return cur;
}

const HTML: Record<string, string> = { "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\uFFFD" };

export const BUILTINS: Record<string, TemplateFunc> = {
  not: (a) => !truth(a),
  len: (a) => {
    if (typeof a === "string") return BigInt(Buffer.byteLength(a));
    if (Array.isArray(a)) return BigInt(a.length);
    if (isMap(a)) return BigInt(Object.keys(a).length);
    throw new Error(`len of ${a === undefined || a === null ? "nil pointer" : `type ${kind(a)}`}`);
  },
  index,
  eq: (a, ...bs) => {
    if (bs.length === 0) throw new Error("missing argument for comparison");
    return bs.some((b) => {
      if (kind(a) === "nil" && kind(b) === "nil") return true;
      comparable(a, b, false);
      return a === b;
    });
  },
  ne: (a, b) => {
    comparable(a, b, false);
    return a !== b;
  },
  lt: (a, b) => less(a, b),
  le: (a, b) => less(a, b) || (comparable(a, b, false), a === b),
  gt: (a, b) => !less(a, b) && a !== b,
  ge: (a, b) => !less(a, b),
  print: (...args) => sprint(args),
  println: (...args) => `${args.map((a) => (a === undefined || a === null ? "<nil>" : formatValue(a))).join(" ")}\n`,
  printf: (format, ...args) => {
    if (typeof format !== "string") throw new Error(`wrong type for value; expected string; got ${kind(format)}`);
    return sprintf(format, args);
  },
  html: (...args) => sprint(args).replace(/[<>&'"\0]/g, (c) => HTML[c]!),
  js: (...args) =>
    // eslint-disable-next-line no-control-regex -- control characters are exactly what JavaScript strings must escape
    sprint(args).replace(/[\\'"<>&=]|[\u0000-\u001f]/g, (c) => {
      if (c === "\\" || c === "'" || c === '"') return `\\${c}`;
      if (c === "<" || c === ">" || c === "&" || c === "=") return `\\u00${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`;
      return `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
    }),
  urlquery: (...args) =>
    encodeURIComponent(sprint(args))
      .replace(/%20/g, "+")
      .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
};
