// A chart's values.schema.json checked against the merged values before rendering, as `helm install/template` do.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { isMap } from "./template/index.ts";
import { AmbitError } from "../contract/errors.ts";
import type { CHART_ERRORS } from "../contract/error-codes.ts";

/**
 * AMBIT_E_VALUES_INVALID: the values break the chart's schema (the user's mistake: a key, a type, a range).
 * AMBIT_E_VALUES_SCHEMA: the schema itself cannot be used (the chart's mistake).
 */
type ValuesErrorCode = (typeof CHART_ERRORS.code)["valuesInvalid" | "valuesSchema"];

export class ValuesError extends AmbitError<ValuesErrorCode> {
  /** Each violation: the key path as `--set` spells it (`agent.image.pullPolicy`) and what is wrong there. */
  readonly problems: ReadonlyArray<{ path: string; message: string }>;
  constructor(code: ValuesErrorCode, message: string, problems: ReadonlyArray<{ path: string; message: string }> = []) {
    super(code, message);
    this.name = "ValuesError";
    this.problems = problems;
  }
}

/**
 * Draft-07, the one draft every Helm 3 reads: up to 3.17 Helm validates with gojsonschema (drafts 4, 6 and 7 only),
 * from 3.18 with santhosh-tekuri/jsonschema (7 up to 2020-12). A schema declaring another draft is refused here
 * rather than read with draft-07's rules, which would be a silent difference.
 */
const DRAFT_07 = new Set([
  "http://json-schema.org/draft-07/schema#",
  "http://json-schema.org/draft-07/schema",
  "https://json-schema.org/draft-07/schema#",
  "https://json-schema.org/draft-07/schema",
]);

const compiled = new WeakMap<object, ValidateFunction>();

function compile(chartName: string, schema: unknown): ValidateFunction {
  if (!isMap(schema)) throw new ValuesError("AMBIT_E_VALUES_SCHEMA", `${chartName}/values.schema.json must hold a JSON object (a JSON Schema)`);
  const cached = compiled.get(schema);
  if (cached) return cached;
  const declared = schema.$schema;
  if (declared !== undefined && !(typeof declared === "string" && DRAFT_07.has(declared))) {
    throw new ValuesError(
      "AMBIT_E_VALUES_SCHEMA",
      `${chartName}/values.schema.json declares $schema ${JSON.stringify(declared)}: only draft-07 (http://json-schema.org/draft-07/schema#) is read by every Helm 3, and by this renderer`,
    );
  }
  const ajv = new Ajv({
    allErrors: true,
    verbose: true,
    allowUnionTypes: true,
    // Helm's validators ignore keywords they do not know (x-*, $comment, ...); so does this one. Helm checks
    // formats, which ajv cannot without ajv-formats: a format is refused below, not skipped in silence.
    strict: false,
    logger: {
      log: () => {},
      error: () => {},
      warn: (...args: unknown[]) => {
        const message = args.map(String).join(" ");
        if (message.startsWith("unknown format"))
          throw new ValuesError("AMBIT_E_VALUES_SCHEMA", `${chartName}/values.schema.json: ${message}: the "format" keyword is not supported by this renderer`);
      },
    },
  });
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    if (err instanceof ValuesError) throw err;
    throw new ValuesError("AMBIT_E_VALUES_SCHEMA", `${chartName}/values.schema.json is not a valid JSON Schema: ${(err as Error).message}`);
  }
  compiled.set(schema, validate);
  return validate;
}

/** `agent.image.pullPolicy` from `/agent/image/pullPolicy`; list items as `[i]`, the whole document as `(root)`. */
function keyPath(pointer: string, child?: string): string {
  const parts =
    pointer === ""
      ? []
      : pointer
          .slice(1)
          .split("/")
          .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  if (child !== undefined) parts.push(child);
  let out = "";
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || "(root)";
}

const typeOf = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "number" ? (Number.isInteger(v) ? "integer" : "number") : typeof v;
const shown = (v: unknown): string => (isMap(v) || Array.isArray(v) ? typeOf(v) : JSON.stringify(v));

/** One ajv error as a line naming the key and what it must be, with the value given when that helps. */
function describe(e: ErrorObject): { path: string; message: string } {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "additionalProperties": {
      const known = isMap(e.parentSchema) && isMap(e.parentSchema.properties) ? Object.keys(e.parentSchema.properties) : [];
      return {
        path: keyPath(e.instancePath, String(p.additionalProperty)),
        message: `unknown key${known.length ? ` (${keyPath(e.instancePath) === "(root)" ? "the top level" : keyPath(e.instancePath)} takes ${known.join(", ")})` : ""}`,
      };
    }
    case "required":
      return { path: keyPath(e.instancePath, String(p.missingProperty)), message: "is required (set it, or leave the chart's default: null deletes it)" };
    case "enum":
      return { path: keyPath(e.instancePath), message: `must be one of ${(p.allowedValues as unknown[]).map(String).join(", ")}, not ${shown(e.data)}` };
    case "type":
      return {
        path: keyPath(e.instancePath),
        message: `must be ${String(p.type).replaceAll(",", " or ")}, not ${typeOf(e.data)}${isMap(e.data) || Array.isArray(e.data) ? "" : ` (${shown(e.data)})`}`,
      };
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return { path: keyPath(e.instancePath), message: `must be ${String(p.comparison)} ${String(p.limit)}, not ${shown(e.data)}` };
    case "pattern":
      return { path: keyPath(e.instancePath), message: `must match ${String(p.pattern)}, not ${shown(e.data)}` };
    default:
      return { path: keyPath(e.instancePath), message: e.message ?? e.keyword };
  }
}

/** Values as Helm hands them to the validator (JSON): Go ints, here bigints, become JSON numbers. */
const asJson = (v: unknown): unknown =>
  typeof v === "bigint" ? Number(v) : Array.isArray(v) ? v.map(asJson) : isMap(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asJson(x)])) : v;

/**
 * Helm's ValidateAgainstSchema: the merged values against the chart's schema, every violation listed under the
 * chart's name, in Helm's words. Throws ValuesError; returns nothing when the values are valid.
 */
export function validateValues(chartName: string, schema: unknown, values: Record<string, unknown>): void {
  const validate = compile(chartName, schema);
  if (validate(asJson(values))) return;
  const seen = new Set<string>();
  const problems: Array<{ path: string; message: string }> = [];
  for (const e of validate.errors ?? []) {
    const d = describe(e);
    const line = `${d.path}: ${d.message}`;
    if (seen.has(line)) continue;
    seen.add(line);
    problems.push(d);
  }
  const list = problems.map((d) => `- ${d.path}: ${d.message}`).join("\n");
  throw new ValuesError(
    "AMBIT_E_VALUES_INVALID",
    `values don't meet the specifications of the schema(s) in the following chart(s):\n${chartName}:\n${list}`,
    problems,
  );
}
