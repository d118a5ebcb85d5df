// Wire contract of the controller→agent configuration stream: NDJSON messages both ways over one HTTP/2 POST.
import { StringDecoder } from "node:string_decoder";
import { AmbitError, type CodeOf } from "./errors.ts";
import { CONFIG_STREAM_ERRORS } from "./error-codes.ts";

export const CONFIG_STREAM_PATH = "/v1/config/stream";
export const NDJSON_CONTENT_TYPE = "application/x-ndjson";

/** One piece of configuration; `key` is unique within `type` (e.g. "workload", "service", "authorization"). */
export interface Resource {
  type: string;
  key: string;
  value: unknown;
}

export interface ResourceRef {
  type: string;
  key: string;
}

/** The id a view is keyed by: `type + "/" + key`. */
export const resourceId = (r: ResourceRef): string => `${r.type}/${r.key}`;

/**
 * Agent → server. `hello` is the first line; with the epoch and version it last applied it asks to resume. `node` is
 * the agent's node; a waypoint names its Gateway there as `<namespace>/<name>` (no node name holds a '/').
 */
export type AgentMessage =
  { kind: "hello"; node: string; epoch?: string; version?: number } | { kind: "ack"; version: number } | { kind: "nack"; version: number; error: string };

/**
 * Server → agent. `epoch` names one server process's version history; `version` increases per node. A delta
 * applies only to a view at exactly `fromVersion` of the same epoch.
 */
export type ServerMessage =
  | { kind: "snapshot"; epoch: string; version: number; resources: Resource[] }
  | { kind: "delta"; epoch: string; version: number; fromVersion: number; upserts: Resource[]; removes: ResourceRef[] }
  | { kind: "ping" };

/** Stable codes for every way the stream can fail; the error body of a non-200 answer is `{ code, message }`. */
export const ConfigStreamErrorCode = CONFIG_STREAM_ERRORS.code;
export type ConfigStreamErrorCode = CodeOf<typeof CONFIG_STREAM_ERRORS>;

export class ConfigStreamError extends AmbitError<ConfigStreamErrorCode> {
  /** The HTTP status the server answered, when the error is a refusal. */
  readonly status: number | undefined;
  constructor(code: ConfigStreamErrorCode, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(code, message, options);
    this.name = "ConfigStreamError";
    this.status = options.status;
  }
}

const protocolError = (message: string) => new ConfigStreamError(ConfigStreamErrorCode.protocol, message);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isVersion = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function parseLine(line: string): Record<string, unknown> {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch (err) {
    throw new ConfigStreamError(ConfigStreamErrorCode.protocol, `a config stream line is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(msg) || typeof msg.kind !== "string") throw protocolError("a config stream message must be a JSON object with a string `kind`");
  return msg;
}

function checkRef(r: unknown, what: string): asserts r is ResourceRef {
  if (!isObject(r) || typeof r.type !== "string" || typeof r.key !== "string" || r.type === "" || r.key === "") {
    throw protocolError(`${what} needs a non-empty string type and key`);
  }
}

function checkResources(list: unknown, what: string): asserts list is Resource[] {
  if (!Array.isArray(list)) throw protocolError(`${what} must be an array`);
  for (const r of list) {
    checkRef(r, `each of ${what}`);
    if (!("value" in r)) throw protocolError(`${resourceId(r)} in ${what} has no value`);
  }
}

/** Validates one line sent by an agent; the server refuses the stream on anything else. */
export function parseAgentMessage(line: string): AgentMessage {
  const m = parseLine(line);
  switch (m.kind) {
    case "hello": {
      if (typeof m.node !== "string" || m.node === "") throw protocolError("hello needs the agent's node name");
      if (m.epoch !== undefined && typeof m.epoch !== "string") throw protocolError("hello.epoch must be a string");
      if (m.version !== undefined && !isVersion(m.version)) throw protocolError("hello.version must be a non-negative integer");
      return { kind: "hello", node: m.node, ...(m.epoch === undefined ? {} : { epoch: m.epoch }), ...(m.version === undefined ? {} : { version: m.version }) };
    }
    case "ack":
      if (!isVersion(m.version)) throw protocolError("ack.version must be a non-negative integer");
      return { kind: "ack", version: m.version };
    case "nack":
      if (!isVersion(m.version) || typeof m.error !== "string") throw protocolError("nack needs an integer version and a string error");
      return { kind: "nack", version: m.version, error: m.error };
    default:
      throw protocolError(`unknown agent message kind "${String(m.kind)}"`);
  }
}

/** Validates one line sent by the server; the agent drops the connection (and keeps its view) on anything else. */
export function parseServerMessage(line: string): ServerMessage {
  const m = parseLine(line);
  switch (m.kind) {
    case "ping":
      return { kind: "ping" };
    case "snapshot":
      if (typeof m.epoch !== "string" || !isVersion(m.version)) throw protocolError("snapshot needs a string epoch and an integer version");
      checkResources(m.resources, "snapshot.resources");
      return { kind: "snapshot", epoch: m.epoch, version: m.version, resources: m.resources };
    case "delta": {
      if (typeof m.epoch !== "string" || !isVersion(m.version) || !isVersion(m.fromVersion)) {
        throw protocolError("delta needs a string epoch and integer version and fromVersion");
      }
      checkResources(m.upserts, "delta.upserts");
      const removes = m.removes;
      if (!Array.isArray(removes)) throw protocolError("delta.removes must be an array");
      for (const r of removes) checkRef(r, "each of delta.removes");
      return { kind: "delta", epoch: m.epoch, version: m.version, fromVersion: m.fromVersion, upserts: m.upserts, removes: removes as ResourceRef[] };
    }
    default:
      throw protocolError(`unknown server message kind "${String(m.kind)}"`);
  }
}

export const encodeMessage = (msg: AgentMessage | ServerMessage): string => `${JSON.stringify(msg)}\n`;

/** Splits a byte stream into lines, refusing a line longer than `maxLineBytes` so a peer cannot exhaust memory. */
export class NdjsonLineSplitter {
  readonly #decoder = new StringDecoder("utf8");
  readonly #maxLineBytes: number;
  #partial = "";

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  push(chunk: Buffer): string[] {
    const text = this.#partial + this.#decoder.write(chunk);
    const lines = text.split("\n");
    this.#partial = lines.pop() ?? "";
    // Counted in UTF-16 units rather than bytes: a cheap bound, which is all the limit is for.
    if (this.#partial.length > this.#maxLineBytes || lines.some((l) => l.length > this.#maxLineBytes)) {
      throw protocolError(`a config stream line exceeds ${this.#maxLineBytes} bytes`);
    }
    return lines.filter((l) => l.trim() !== "");
  }
}
