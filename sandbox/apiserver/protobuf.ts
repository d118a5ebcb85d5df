// Decodes Kubernetes protobuf request bodies (kubectl's generators) into the JSON objects the API server works with.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { ApiError } from "./types.ts";

export const PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf";
/** Every Kubernetes protobuf body starts with these 4 bytes, then a runtime.Unknown. */
const MAGIC = Buffer.from("k8s\0", "latin1");
const PROTO_DIR = fileURLToPath(new URL("./proto/", import.meta.url));
/** The top-level files; each pulls in the apimachinery files it imports. */
const PROTO_FILES = ["core", "apps", "batch", "autoscaling", "rbac", "policy", "authentication"].map((p) => `k8s.io/api/${p}/v1/generated.proto`);
const META = "k8s.io.apimachinery.pkg.apis.meta.v1";
const UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown";

/** API group -> the k8s.io/api package holding its types. */
function packageOf(group: string): string {
  return group === "" ? "core" : group.split(".")[0]!;
}

/** Per message, what differs from "JSON name = proto name, zero scalars omitted" (see proto/README.md). */
export interface FieldRules {
  inline?: string[];
  json?: Record<string, string>;
  keepZero?: string[];
}

interface Loaded {
  root: protobuf.Root;
  rules: Record<string, FieldRules>;
}

let loaded: Loaded | undefined;

/** Parsed on first use: about 600 KB of .proto text that most API server runs never need. */
function load(): Loaded {
  if (loaded) return loaded;
  const root = new protobuf.Root();
  // Imports name paths under the proto root ("k8s.io/apimachinery/..."), as protoc -I resolves them.
  root.resolvePath = (_origin, target) => PROTO_DIR + target;
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  const rules = JSON.parse(fs.readFileSync(PROTO_DIR + "json-fields.json", "utf8")) as Record<string, FieldRules>;
  loaded = { root, rules };
  return loaded;
}

/** The loaded definitions and field rules (tests encode with the same definitions). */
export function kubernetesProtos(): { root: protobuf.Root; rules: Record<string, FieldRules> } {
  return load();
}

type Decoded = Record<string, unknown>;

const isLong = (v: unknown): v is { toString(): string } => typeof v === "object" && v !== null && "low" in v && "high" in v;
const toNumber = (v: unknown): number => (typeof v === "number" ? v : isLong(v) ? Number(v.toString()) : Number(v ?? 0));

/** Go's time.RFC3339 (metav1.Time has second precision), or with microseconds (metav1.MicroTime). */
function timestamp(m: Decoded, micro: boolean): string | undefined {
  // A zero time is written as an empty message: Go's JSON for it is null, which the API server's objects omit.
  if (!Object.hasOwn(m, "seconds")) return undefined;
  const at = new Date(toNumber(m.seconds) * 1000);
  if (Number.isNaN(at.getTime())) throw new ApiError(400, "BadRequest", `the protobuf body holds a time out of range (${String(m.seconds)} seconds)`);
  const date = at.toISOString();
  if (!micro) return date.replace(/\.\d{3}Z$/, "Z");
  const micros = Math.floor(toNumber(m.nanos) / 1000);
  return date.replace(/\.\d{3}Z$/, `.${String(micros).padStart(6, "0")}Z`);
}

/** Go's time.Duration.String(), which metav1.Duration's JSON is: "1h2m3.5s", "500ms", "0s". */
export function goDuration(nanos: number): string {
  if (nanos === 0) return "0s";
  const sign = nanos < 0 ? "-" : "";
  let n = Math.abs(nanos);
  if (n < 1e9) {
    const [unit, size] = n < 1e3 ? ["ns", 1] : n < 1e6 ? ["µs", 1e3] : ["ms", 1e6];
    return `${sign}${trimFraction(n / size)}${unit}`;
  }
  const hours = Math.floor(n / 3.6e12);
  n -= hours * 3.6e12;
  const minutes = Math.floor(n / 6e10);
  n -= minutes * 6e10;
  const seconds = `${trimFraction(n / 1e9)}s`;
  return sign + (hours ? `${hours}h${minutes}m${seconds}` : minutes ? `${minutes}m${seconds}` : seconds);
}

const trimFraction = (x: number) => String(Number(x.toFixed(9)));

function jsonBytes(raw: unknown, what: string): unknown {
  const bytes = raw instanceof Uint8Array ? Buffer.from(raw) : Buffer.alloc(0);
  if (bytes.length === 0) return undefined;
  if (bytes.subarray(0, 4).equals(MAGIC)) return decodeProtobufObject(bytes);
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new ApiError(400, "BadRequest", `the protobuf body's ${what} holds neither JSON nor a protobuf object`);
  }
}

/** Types whose JSON is not an object of their fields: what their Go MarshalJSON writes; undefined means "omit". */
const SPECIAL: Record<string, (m: Decoded) => unknown> = {
  [`${META}.Time`]: (m) => timestamp(m, false),
  [`${META}.MicroTime`]: (m) => timestamp(m, true),
  [`${META}.Duration`]: (m) => goDuration(toNumber(m.duration)),
  [`${META}.FieldsV1`]: (m) => jsonBytes(m.Raw, "managedFields"),
  [`${META}.Verbs`]: (m) => m.items,
  "k8s.io.apimachinery.pkg.runtime.RawExtension": (m) => jsonBytes(m.raw, "embedded object"),
  "k8s.io.apimachinery.pkg.api.resource.Quantity": (m) => (typeof m.string === "string" && m.string !== "" ? m.string : "0"),
  "k8s.io.apimachinery.pkg.util.intstr.IntOrString": (m) => (toNumber(m.type) === 1 ? String(m.strVal ?? "") : toNumber(m.intVal)),
  "k8s.io.api.authentication.v1.ExtraValue": (m) => m.items,
};

function scalar(field: protobuf.Field, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (isLong(v)) return toNumber(v);
  if (field.resolvedType instanceof protobuf.Enum) return toNumber(v);
  return v;
}

function value(field: protobuf.Field, v: unknown): unknown {
  const type = field.resolvedType;
  if (!(type instanceof protobuf.Type)) return scalar(field, v);
  const special = SPECIAL[type.fullName.slice(1)];
  return special ? special(v as Decoded) : toJson(type, v as Decoded);
}

const isZero = (v: unknown) => v === "" || v === 0 || v === false;

/** A decoded message as the JSON object Go's encoding/json would write for the same Go struct. */
function toJson(type: protobuf.Type, m: Decoded): Decoded {
  const rules = load().rules[type.fullName.slice(1)] ?? {};
  const out: Decoded = {};
  for (const field of type.fieldsArray) {
    // proto2: a field the sender did not write is not an own property of the decoded message.
    if (!Object.hasOwn(m, field.name)) continue;
    const raw = m[field.name];
    let v: unknown;
    if (field.map) {
      const entries = Object.entries((raw ?? {}) as Decoded);
      if (entries.length === 0) continue;
      v = Object.fromEntries(entries.map(([k, x]) => [k, value(field, x)]));
    } else if (field.repeated) {
      const items = (raw ?? []) as unknown[];
      if (items.length === 0) continue;
      v = items.map((x) => value(field, x));
    } else {
      v = value(field, raw);
    }
    if (v === undefined) continue;
    if (rules.inline?.includes(field.name)) {
      Object.assign(out, v);
      continue;
    }
    if (!field.resolvedType && isZero(v) && !rules.keepZero?.includes(field.name)) continue;
    out[rules.json?.[field.name] ?? field.name] = v;
  }
  return out;
}

function unsupported(what: string): ApiError {
  return new ApiError(
    415,
    "UnsupportedMediaType",
    `the sandbox API server cannot decode ${what} from protobuf (it has the definitions of core/v1, apps/v1, batch/v1, autoscaling/v1, rbac/v1, policy/v1 and authentication/v1); send it as JSON, e.g. with kubectl create -f or kubectl apply -f`,
  );
}

/**
 * Decodes a body sent as application/vnd.kubernetes.protobuf: the 4-byte magic "k8s\0", then a runtime.Unknown whose
 * typeMeta names the kind and whose raw bytes are that kind's message. Returns the object as JSON, apiVersion and kind
 * included. Malformed input is a 400, a kind without definitions here a 415; nothing else escapes.
 */
export function decodeProtobufObject(body: Buffer): Decoded {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ApiError(
      400,
      "BadRequest",
      `the request body is not a Kubernetes protobuf message: it must start with the 4 bytes "k8s\\x00" (6b 38 73 00), got ${body.subarray(0, 4).toString("hex") || "an empty body"}`,
    );
  }
  const { root } = load();
  let envelope: Decoded;
  try {
    envelope = root.lookupType(UNKNOWN).decode(body.subarray(MAGIC.length)) as unknown as Decoded;
  } catch (err) {
    throw new ApiError(400, "BadRequest", `the protobuf envelope (runtime.Unknown) cannot be decoded: ${(err as Error).message}`);
  }
  const typeMeta = (envelope.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const apiVersion = typeMeta.apiVersion ?? "";
  const kind = typeMeta.kind ?? "";
  if (!apiVersion || !kind) throw new ApiError(400, "BadRequest", "the protobuf envelope does not name the object's apiVersion and kind");
  if (envelope.contentEncoding) throw unsupported(`a body with content encoding "${String(envelope.contentEncoding)}"`);
  if (envelope.contentType && envelope.contentType !== PROTOBUF_CONTENT_TYPE) throw unsupported(`an envelope holding ${String(envelope.contentType)}`);
  const [group, version] = apiVersion.includes("/") ? (apiVersion.split("/") as [string, string]) : ["", apiVersion];
  if (!/^[a-z0-9.-]*$/.test(group) || !/^v\d+(?:(?:alpha|beta)\d+)?$/.test(version) || !/^[A-Z][A-Za-z0-9]*$/.test(kind))
    throw unsupported(`${apiVersion} ${kind}`);
  const found = root.lookup(`k8s.io.api.${packageOf(group)}.${version}.${kind}`);
  if (!(found instanceof protobuf.Type)) throw unsupported(`${apiVersion} ${kind}`);
  let message: Decoded;
  try {
    message = found.decode((envelope.raw as Uint8Array | undefined) ?? new Uint8Array()) as unknown as Decoded;
  } catch (err) {
    throw new ApiError(400, "BadRequest", `the protobuf body cannot be decoded as ${apiVersion} ${kind}: ${(err as Error).message}`);
  }
  return { apiVersion, kind, ...toJson(found, message) };
}
