// Go text/template syntax, parsed into a tree: text, actions with trim markers, pipelines, control structures, defines.
import { AmbitError } from "../../contract/errors.ts";
import type { CHART_ERRORS } from "../../contract/error-codes.ts";

type TemplateErrorCode = (typeof CHART_ERRORS.code)["templateParse" | "templateExec"];

export class TemplateError extends AmbitError<TemplateErrorCode> {
  constructor(code: TemplateErrorCode, message: string) {
    super(code, message);
    this.name = "TemplateError";
  }
}

/** An operand: what a command's words are. Integers are bigint (Go's int); other numbers float64 (JS number). */
export type Arg =
  | { kind: "dot"; fields: string[] }
  | { kind: "field"; fields: string[] }
  | { kind: "var"; name: string; fields: string[] }
  | { kind: "func"; name: string }
  | { kind: "literal"; value: string | number | bigint | boolean | null }
  | { kind: "pipe"; pipe: Pipe; fields: string[] };

export interface Command {
  args: Arg[];
}

export interface Pipe {
  /** Variables declared (`:=`) or assigned (`=`) by the pipeline. */
  decl: string[];
  assign: boolean;
  cmds: Command[];
  line: number;
}

export type Node =
  | { kind: "text"; text: string }
  | { kind: "action"; pipe: Pipe }
  | { kind: "if" | "with"; pipe: Pipe; list: Node[]; elseList: Node[] | undefined }
  | { kind: "range"; pipe: Pipe; list: Node[]; elseList: Node[] | undefined }
  | { kind: "template"; name: string; pipe: Pipe | undefined; line: number }
  | { kind: "break" | "continue" };

/** A parsed file: its main tree and the templates it defines (`define`, `block`). */
export interface Parsed {
  root: Node[];
  defines: Map<string, Node[]>;
}

type Tok = { t: "word" | "string" | "number" | "char" | "op"; v: string };

const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\r" || c === "\n";

/** Splits the inside of one action into tokens. */
function tokenize(src: string, line: number): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const fail = (m: string) => {
    throw new TemplateError("AMBIT_E_TEMPLATE_PARSE", `line ${line}: ${m}`);
  };
  while (i < src.length) {
    const c = src[i]!;
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === "\\" ? 2 : 1;
      if (j >= src.length) fail("unterminated quoted string");
      out.push({
        t: "string",
        v: JSON.parse(
          src.slice(i, j + 1).replace(/\\([abfnrtv\\"'])/g, (m, e: string) => (e === "a" ? "\\u0007" : e === "v" ? "\\u000b" : e === "'" ? "'" : m)),
        ) as string,
      });
      i = j + 1;
    } else if (c === "`") {
      const j = src.indexOf("`", i + 1);
      if (j < 0) fail("unterminated raw quoted string");
      out.push({ t: "string", v: src.slice(i + 1, j) });
      i = j + 1;
    } else if (c === ":" && src[i + 1] === "=") {
      out.push({ t: "op", v: ":=" });
      i += 2;
    } else if ("|()=,".includes(c)) {
      out.push({ t: "op", v: c });
      i++;
    } else if (/[0-9]/.test(c) || ("+-.".includes(c) && /[0-9]/.test(src[i + 1] ?? ""))) {
      const m = /^[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)/.exec(src.slice(i))!;
      out.push({ t: "number", v: m[0] });
      i += m[0].length;
    } else {
      const m = /^[$.]?[\p{L}_\d.$]*/u.exec(src.slice(i))!;
      if (m[0] === "") fail(`unexpected "${c}" in operand`);
      out.push({ t: "word", v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

function numberLiteral(text: string, line: number): number | bigint {
  const clean = text.replace(/_/g, "");
  if (/^[+-]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|\d+)$/.test(clean)) {
    const neg = clean.startsWith("-");
    const body = clean.replace(/^[+-]/, "");
    const value = BigInt(body);
    const signed = neg ? -value : value;
    if (signed > 2n ** 63n - 1n || signed < -(2n ** 63n)) throw new TemplateError("AMBIT_E_TEMPLATE_PARSE", `line ${line}: number ${text} overflows int`);
    return signed;
  }
  const n = Number(clean);
  if (!Number.isFinite(n)) throw new TemplateError("AMBIT_E_TEMPLATE_PARSE", `line ${line}: bad number syntax: "${text}"`);
  return n;
}

/** Field chain of a word like `.a.b` or `$x.a.b`: the parts after the head. */
const chain = (word: string) => word.split(".").slice(1);

function parsePipe(toks: Tok[], line: number, allowDecl: boolean, rangeDecl = false): Pipe {
  let at = 0;
  const fail = (m: string): never => {
    throw new TemplateError("AMBIT_E_TEMPLATE_PARSE", `line ${line}: ${m}`);
  };
  const decl: string[] = [];
  let assign = false;
  // `$x :=`, `$x =`, and for range `$i, $v :=`.
  const isVar = (t: Tok | undefined) => t?.t === "word" && /^\$[\p{L}_\d]*$/u.test(t.v);
  if (allowDecl && isVar(toks[0]) && (toks[1]?.v === ":=" || toks[1]?.v === "=" || (rangeDecl && toks[1]?.v === ","))) {
    decl.push(toks[0]!.v);
    at = 1;
    if (toks[at]?.v === ",") {
      if (!isVar(toks[at + 1])) fail("range can only initialize variables");
      decl.push(toks[at + 1]!.v);
      at += 2;
    }
    if (toks[at]?.v === "=") assign = true;
    else if (toks[at]?.v !== ":=") fail("expected := or =");
    at++;
  }
  const cmds: Command[] = [];
  let args: Arg[] = [];
  const operand = (): Arg => {
    const t = toks[at++]!;
    if (t.t === "op" && t.v === "(") {
      let depth = 1;
      const start = at;
      while (at < toks.length && depth > 0) {
        if (toks[at]!.v === "(" && toks[at]!.t === "op") depth++;
        else if (toks[at]!.v === ")" && toks[at]!.t === "op") depth--;
        at++;
      }
      if (depth !== 0) fail("unclosed left paren");
      const inner = parsePipe(toks.slice(start, at - 1), line, false);
      // `(pipeline).Field`: a word right after the paren that starts with a dot.
      const next = toks[at];
      const fields = next?.t === "word" && next.v.startsWith(".") && next.v !== "." ? (at++, chain(next.v)) : [];
      return { kind: "pipe", pipe: inner, fields };
    }
    if (t.t === "string") return { kind: "literal", value: t.v };
    if (t.t === "number") return { kind: "literal", value: numberLiteral(t.v, line) };
    if (t.t === "op") return fail(`unexpected "${t.v}" in operand`);
    const w = t.v;
    if (w === ".") return { kind: "dot", fields: [] };
    if (w.startsWith(".")) return { kind: "field", fields: chain(w) };
    if (w.startsWith("$")) {
      const [name = "$"] = w.split(".");
      return { kind: "var", name, fields: chain(w) };
    }
    if (w === "true" || w === "false") return { kind: "literal", value: w === "true" };
    if (w === "nil") return { kind: "literal", value: null };
    const [fname = "", ...fields] = w.split(".");
    if (!/^[\p{L}_][\p{L}_\d]*$/u.test(fname) || fields.some((f) => f === "")) fail(`bad identifier "${w}"`);
    // `fn.Field`: the function's result, then its fields.
    return fields.length
      ? { kind: "pipe", pipe: { decl: [], assign: false, cmds: [{ args: [{ kind: "func", name: fname }] }], line }, fields }
      : { kind: "func", name: fname };
  };
  while (at < toks.length) {
    const t = toks[at]!;
    if (t.t === "op" && t.v === "|") {
      if (args.length === 0) fail("missing command before |");
      cmds.push({ args });
      args = [];
      at++;
      continue;
    }
    if (t.t === "op" && (t.v === ")" || t.v === "=" || t.v === ":=" || t.v === ",")) fail(`unexpected "${t.v}" in command`);
    args.push(operand());
  }
  if (args.length) cmds.push({ args });
  else if (cmds.length) fail("missing command after |");
  if (cmds.length === 0) fail("missing value for command");
  for (const [i, c] of cmds.entries()) {
    if (i > 0 && c.args[0]!.kind === "literal") fail("non executable command in pipeline stage " + (i + 1));
  }
  return { decl, assign, cmds, line };
}

interface Frame {
  kind: "root" | "if" | "with" | "range" | "define" | "block";
  list: Node[];
  node?: Node & { list: Node[]; elseList: Node[] | undefined };
  inElse: boolean;
  /** `else if` / `else with` open a nested frame that the same `end` closes. */
  chained: boolean;
  name?: string;
}

/** Parses one template text. Defines go to `defines`; a `block` is both defined and called where it stands. */
export function parseTemplate(src: string, name = "template"): Parsed {
  const defines = new Map<string, Node[]>();
  const root: Frame = { kind: "root", list: [], inElse: false, chained: false };
  const stack: Frame[] = [root];
  const top = () => stack.at(-1)!;
  const emit = (n: Node) => top().list.push(n);
  let i = 0;
  let line = 1;
  let trimNext = false;
  const fail = (m: string): never => {
    throw new TemplateError("AMBIT_E_TEMPLATE_PARSE", `template: ${name}:${line}: ${m}`);
  };
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    let text = src.slice(i, open < 0 ? src.length : open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, "");
    trimNext = false;
    if (open < 0) {
      if (text) emit({ kind: "text", text });
      break;
    }
    const trimLeft = src[open + 2] === "-" && isSpace(src[open + 3]);
    if (trimLeft) text = text.replace(/[ \t\r\n]+$/, "");
    if (text) emit({ kind: "text", text });
    line += (src.slice(i, open).match(/\n/g) ?? []).length;
    const bodyStart = open + (trimLeft ? 4 : 2);
    // A comment starts right after the delimiter (and its trim marker): {{/* ... */}} or {{- /* ... */ -}}.
    if (src.startsWith("/*", bodyStart)) {
      const end = src.indexOf("*/", bodyStart + 2);
      if (end < 0) fail("unclosed comment");
      let k = end + 2;
      if (isSpace(src[k]) && src[k + 1] === "-" && src.startsWith("}}", k + 2)) {
        trimNext = true;
        k += 4;
      } else if (src.startsWith("}}", k)) k += 2;
      else fail("comment ends before closing delimiter");
      line += (src.slice(open, k).match(/\n/g) ?? []).length;
      i = k;
      continue;
    }
    // Find the closing delimiter outside of quoted strings.
    let j = bodyStart;
    let quote: string | undefined;
    while (j < src.length) {
      const c = src[j]!;
      if (quote) {
        if (c === "\\" && quote === '"') j++;
        else if (c === quote) quote = undefined;
      } else if (c === '"' || c === "`") quote = c;
      else if (src.startsWith("}}", j)) break;
      j++;
    }
    if (j >= src.length) fail("unclosed action");
    let body = src.slice(bodyStart, j);
    const trimRight = body.length >= 2 && body.endsWith("-") && isSpace(body[body.length - 2]);
    if (trimRight) body = body.slice(0, -1);
    trimNext = trimRight;
    const actionLine = line;
    line += (src.slice(open, j + 2).match(/\n/g) ?? []).length;
    i = j + 2;
    const toks = tokenize(body, actionLine);
    if (toks.length === 0) fail("missing value for command");
    const head = toks[0]!.t === "word" ? toks[0]!.v : "";
    const openControl = (kind: "if" | "with" | "range", rest: Tok[], chained = false) => {
      const pipe = parsePipe(rest, actionLine, true, kind === "range");
      if (rest.length === 0) fail(`missing value for ${kind}`);
      const node = { kind, pipe, list: [] as Node[], elseList: undefined } as Node & { list: Node[]; elseList: Node[] | undefined };
      emit(node);
      stack.push({ kind, list: node.list, node, inElse: false, chained });
    };
    switch (head) {
      case "if":
      case "with":
      case "range":
        openControl(head, toks.slice(1));
        break;
      case "else": {
        const f = top();
        if (f.kind !== "if" && f.kind !== "with" && f.kind !== "range") fail("unexpected {{else}}");
        if (f.inElse) fail("expected end; found {{else}}");
        f.inElse = true;
        f.node!.elseList = [];
        f.list = f.node!.elseList;
        const next = toks[1]?.t === "word" ? toks[1].v : "";
        if (next === "if" || next === "with") {
          if (next !== f.kind) fail(`{{else ${next}}} inside {{${f.kind}}}`);
          openControl(next, toks.slice(2), true);
        } else if (toks.length > 1) fail("unexpected tokens after else");
        break;
      }
      case "end": {
        if (toks.length > 1) fail("unexpected tokens after end");
        let f = stack.pop()!;
        if (f.kind === "root") fail("unexpected {{end}}");
        while (f.chained) f = stack.pop()!;
        if (f.kind === "define" || f.kind === "block") defines.set(f.name!, f.list);
        break;
      }
      case "define":
      case "block": {
        if (toks[1]?.t !== "string") fail(`${head} needs a quoted name`);
        const tname = toks[1]!.v;
        if (head === "define") {
          if (toks.length > 2) fail("unexpected tokens after define name");
          if (stack.length > 1) fail("define is only allowed at the top level");
        } else {
          emit({ kind: "template", name: tname, pipe: toks.length > 2 ? parsePipe(toks.slice(2), actionLine, false) : undefined, line: actionLine });
        }
        stack.push({ kind: head, list: [], inElse: false, chained: false, name: tname });
        break;
      }
      case "template":
        if (toks[1]?.t !== "string") fail("template needs a quoted name");
        emit({ kind: "template", name: toks[1]!.v, pipe: toks.length > 2 ? parsePipe(toks.slice(2), actionLine, false) : undefined, line: actionLine });
        break;
      case "break":
      case "continue":
        if (!stack.some((f) => f.kind === "range")) fail(`{{${head}}} outside {{range}}`);
        emit({ kind: head });
        break;
      default:
        emit({ kind: "action", pipe: parsePipe(toks, actionLine, true) });
    }
  }
  if (stack.length > 1) fail(`unexpected EOF: {{${top().kind}}} has no {{end}}`);
  return { root: root.list, defines };
}
