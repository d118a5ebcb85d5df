// Executes a parsed Go template against JSON-like data, with Go's rules for truth, fields, variables and printing.
import { type Arg, type Command, type Node, type Parsed, type Pipe, TemplateError } from "./parse.ts";

export type Value = unknown;
/** A template function: gets evaluated arguments, returns a value or throws (the error stops execution). */
export type TemplateFunc = (...args: Value[]) => Value;

class BreakSignal {}
class ContinueSignal {}

const fail = (message: string): never => {
  throw new TemplateError("AMBIT_E_TEMPLATE_EXEC", message);
};

/**
 * A Go value with methods, such as Helm's .Files: a field of a chain that names one of its methods calls it, the
 * last field of the chain with the command's arguments and the piped value, as Go's text/template does.
 */
export class Receiver {
  /** Go's name of the type, for error messages. */
  readonly typeName: string;
  readonly methods: Readonly<Record<string, TemplateFunc>>;
  constructor(typeName: string, methods: Readonly<Record<string, TemplateFunc>>) {
    this.typeName = typeName;
    this.methods = methods;
  }
}

/** A JSON object (Go's map[string]interface{}). */
export const isMap = (v: Value): v is Record<string, Value> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Receiver);

/**
 * Go's float64 %v (strconv 'g' with the shortest digits): %e form when the exponent is below -4 or at least 6, so
 * 1000000 from a values file prints 1e+06 in real Helm, and here.
 */
function formatFloat(f: number): string {
  if (Number.isNaN(f)) return "NaN";
  if (!Number.isFinite(f)) return f > 0 ? "+Inf" : "-Inf";
  if (f === 0) return Object.is(f, -0) ? "-0" : "0";
  const [mantissa, e] = f.toExponential().split("e") as [string, string];
  const exp = Number(e);
  if (exp < -4 || exp >= 6) return `${mantissa}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  return String(f);
}

/** fmt's %v for the values JSON and YAML produce (maps print with sorted keys, as Go's fmt does). */
export function formatValue(v: Value): string {
  if (v === undefined) return "<no value>";
  if (v === null) return "<nil>";
  if (typeof v === "string") return v;
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return formatFloat(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined || x === null ? "<nil>" : formatValue(x))).join(" ")}]`;
  if (isMap(v))
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${v[k] === null || v[k] === undefined ? "<nil>" : formatValue(v[k])}`)
      .join(" ")}]`;
  if (typeof v === "function") return "<func>";
  // Go prints a []byte (Helm's .Files.GetBytes) as its numbers.
  if (v instanceof Uint8Array) return `[${v.join(" ")}]`;
  if (v instanceof Receiver) return `<${v.typeName}>`;
  return String(v);
}

/** Go's truth: false, 0, nil, and empty strings, slices and maps are false. */
export function truth(v: Value): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === 0n || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

interface Scope {
  vars: Array<{ name: string; value: Value }>;
}

export interface ExecOptions {
  funcs: Record<string, TemplateFunc>;
  /** Named templates (`define`) visible to `template` and to functions such as Helm's `include`. */
  templates: Map<string, Node[]>;
  /** Go's missingkey option: "default" prints <no value>, "error" (Helm's strict mode) fails on a missing map key. */
  missingKey?: "default" | "error";
  /** Nesting bound for `template` calls (Go allows 100000; a recursive define would otherwise never end). */
  maxDepth?: number;
}

export class Executor {
  readonly #opts: ExecOptions;
  #depth = 0;

  constructor(opts: ExecOptions) {
    this.#opts = opts;
  }

  /** Renders `nodes` with `dot` as `.` and `$`. */
  render(nodes: Node[], dot: Value): string {
    const out: string[] = [];
    this.#walk(nodes, dot, { vars: [{ name: "$", value: dot }] }, out);
    return out.join("");
  }

  /** Renders the named template (Helm's `include`). */
  renderNamed(name: string, dot: Value): string {
    const t = this.#opts.templates.get(name);
    if (!t) fail(`template: no template "${name}" associated with template`);
    if (++this.#depth > (this.#opts.maxDepth ?? 1000)) fail(`template: exceeded maximum template depth (${this.#opts.maxDepth ?? 1000})`);
    try {
      return this.render(t!, dot);
    } finally {
      this.#depth--;
    }
  }

  #walk(nodes: Node[], dot: Value, scope: Scope, out: string[]): void {
    const mark = scope.vars.length;
    try {
      for (const n of nodes) {
        switch (n.kind) {
          case "text":
            out.push(n.text);
            break;
          case "action": {
            const v = this.#pipe(n.pipe, dot, scope);
            // A nil value printed by an action is Go's "<no value>" (inside a list it is "<nil>").
            if (n.pipe.decl.length === 0) out.push(v === null ? "<no value>" : formatValue(v));
            break;
          }
          case "if":
          case "with": {
            const innerScope = scope;
            const innerMark = innerScope.vars.length;
            const v = this.#pipe(n.pipe, dot, innerScope);
            try {
              if (truth(v)) this.#walk(n.list, n.kind === "with" ? v : dot, innerScope, out);
              else if (n.elseList) this.#walk(n.elseList, dot, innerScope, out);
            } finally {
              innerScope.vars.length = innerMark;
            }
            break;
          }
          case "range":
            this.#range(n, dot, scope, out);
            break;
          case "template": {
            const arg = n.pipe ? this.#pipe(n.pipe, dot, scope) : undefined;
            out.push(this.renderNamed(n.name, arg === undefined && !n.pipe ? null : arg));
            break;
          }
          case "break":
            throw new BreakSignal();
          case "continue":
            throw new ContinueSignal();
        }
      }
    } finally {
      scope.vars.length = mark;
    }
  }

  #range(n: Extract<Node, { kind: "range" }>, dot: Value, scope: Scope, out: string[]): void {
    const mark = scope.vars.length;
    const pipe: Pipe = { ...n.pipe, decl: [] };
    const v = this.#pipe(pipe, dot, scope);
    const entries: Array<[Value, Value]> = Array.isArray(v)
      ? v.map((x, i) => [BigInt(i), x])
      : isMap(v)
        ? Object.keys(v)
            .sort()
            .map((k) => [k, v[k]])
        : typeof v === "bigint"
          ? Array.from({ length: Number(v) }, (_, i) => [BigInt(i), BigInt(i)])
          : v === undefined || v === null
            ? []
            : fail(`range can't iterate over ${formatValue(v)}`);
    if (entries.length === 0) {
      if (n.elseList) this.#walk(n.elseList, dot, scope, out);
      return;
    }
    for (const [key, value] of entries) {
      if (n.pipe.decl.length === 1) scope.vars.push({ name: n.pipe.decl[0]!, value });
      if (n.pipe.decl.length === 2) scope.vars.push({ name: n.pipe.decl[0]!, value: key }, { name: n.pipe.decl[1]!, value });
      try {
        this.#walk(n.list, value, scope, out);
      } catch (signal) {
        if (signal instanceof BreakSignal) break;
        if (!(signal instanceof ContinueSignal)) throw signal;
      } finally {
        scope.vars.length = mark;
      }
    }
  }

  #pipe(p: Pipe, dot: Value, scope: Scope): Value {
    let value: Value = undefined;
    let has = false;
    for (const cmd of p.cmds) {
      value = this.#command(cmd, dot, scope, has ? [value] : []);
      has = true;
    }
    if (p.decl.length) {
      const name = p.decl[0]!;
      if (p.assign) {
        const slot = [...scope.vars].reverse().find((x) => x.name === name);
        if (!slot) fail(`undefined variable: ${name}`);
        slot!.value = value;
      } else scope.vars.push({ name, value });
    }
    return value;
  }

  #command(cmd: Command, dot: Value, scope: Scope, piped: Value[]): Value {
    const [first, ...rest] = cmd.args;
    if (first!.kind === "func") {
      const name = first!.name;
      const args = rest.map((a) => this.#arg(a, dot, scope));
      // and/or short-circuit and return the deciding argument, as Go's do.
      if (name === "and" || name === "or") {
        const all = [...args, ...piped];
        if (all.length === 0) fail(`wrong number of args for ${name}: want at least 1 got 0`);
        for (const a of all.slice(0, -1)) if (truth(a) === (name === "or")) return a;
        return all.at(-1);
      }
      const fn = this.#opts.funcs[name];
      if (!fn) fail(`function "${name}" not defined`);
      try {
        return fn!(...args, ...piped);
      } catch (err) {
        if (err instanceof TemplateError) throw err;
        return fail(`error calling ${name}: ${(err as Error).message}`);
      }
    }
    if (first!.kind === "literal" && first!.value === null) fail("nil is not a command");
    // A chain ending in a method of a Receiver (`.Files.Get "x"`) calls it with the arguments, as Go does.
    if ((first!.kind === "field" || first!.kind === "var" || first!.kind === "pipe") && first!.fields.length > 0 && (rest.length > 0 || piped.length > 0)) {
      const base = first!.kind === "field" ? dot : this.#arg({ ...first!, fields: [] }, dot, scope);
      const receiver = this.#fields(base, first!.fields.slice(0, -1));
      if (receiver instanceof Receiver) return this.#method(receiver, first!.fields.at(-1)!, [...rest.map((a) => this.#arg(a, dot, scope)), ...piped]);
    }
    if (rest.length > 0 || piped.length > 0) {
      const what = first!.kind === "literal" ? `can't give argument to non-function ${formatValue(first!.value)}` : `can't give argument to non-function`;
      fail(what);
    }
    return this.#arg(first!, dot, scope);
  }

  #arg(a: Arg, dot: Value, scope: Scope): Value {
    switch (a.kind) {
      case "literal":
        return a.value;
      case "dot":
        return dot;
      case "field":
        return this.#fields(dot, a.fields);
      case "var": {
        const slot = [...scope.vars].reverse().find((x) => x.name === a.name);
        if (!slot) fail(`undefined variable: ${a.name}`);
        return this.#fields(slot!.value, a.fields);
      }
      case "pipe":
        return this.#fields(this.#pipe(a.pipe, dot, { vars: scope.vars }), a.fields);
      case "func":
        return this.#command({ args: [a] }, dot, scope, []);
    }
  }

  #method(receiver: Receiver, name: string, args: Value[]): Value {
    const m = receiver.methods[name];
    if (!m) fail(`can't evaluate field ${name} in type ${receiver.typeName}`);
    try {
      return m!(...args);
    } catch (err) {
      if (err instanceof TemplateError) throw err;
      return fail(`error calling ${name}: ${(err as Error).message}`);
    }
  }

  #fields(v: Value, fields: string[]): Value {
    let cur = v;
    for (const f of fields) {
      if (cur === undefined || cur === null) fail(`nil pointer evaluating interface {}.${f}`);
      // A method named in the middle of a chain, or at its end without arguments, is called with none.
      if (cur instanceof Receiver) {
        cur = this.#method(cur, f, []);
        continue;
      }
      if (!isMap(cur)) fail(`can't evaluate field ${f} in type ${Array.isArray(cur) ? "[]interface {}" : typeof cur}`);
      const m = cur as Record<string, Value>;
      if (!(f in m) && this.#opts.missingKey === "error") fail(`map has no entry for key "${f}"`);
      cur = m[f];
    }
    return cur;
  }
}

/** Renders `parsed` with `data`; its defines (plus `extra`) are the named templates. */
export function execute(parsed: Parsed, data: Value, funcs: Record<string, TemplateFunc>, extra?: Map<string, Node[]>): string {
  const templates = new Map([...(extra ?? []), ...parsed.defines]);
  return new Executor({ funcs, templates }).render(parsed.root, data);
}
