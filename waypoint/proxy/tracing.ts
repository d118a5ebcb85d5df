// Trace context across the waypoint as one hop: W3C traceparent and B3 continued with a new span, x-request-id kept or made.
import { randomBytes, randomUUID } from "node:crypto";

/** Where new ids come from; tests pass fixed ones. */
export interface TraceRandom {
  /** `bytes` random bytes as lowercase hex. */
  hex(bytes: number): string;
  uuid(): string;
}

/** Random bytes are drawn 4 KiB at a time: one system call per request for 16 bytes showed in the waypoint's profile. */
let pool = Buffer.alloc(0);
let offset = 0;
function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const hex = pool.toString("hex", offset, offset + bytes);
  offset += bytes;
  return hex;
}

export const cryptoRandom: TraceRandom = { hex: randomHex, uuid: randomUUID };

/**
 * A trace the waypoint starts is sampled: Envoy's default `random_sampling` is 100 %. (Istio lowers it to 1 % in
 * its mesh config; a knob for that belongs to the waypoint's config when there is one.)
 */
export const NEW_TRACE_SAMPLED = true;

/** W3C Trace Context, `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header). */
export interface TraceParent {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

const HEX = /^[0-9a-f]+$/;
const isId = (value: string, length: number) => value.length === length && HEX.test(value) && !/^0+$/.test(value);

/**
 * Parses `traceparent` as the spec's section 3.2 (and 4.3 for versions after 00) says: lowercase hex only, an
 * all-zero trace-id or parent-id invalid, version `ff` invalid, a later version read as 00 for its first 55
 * characters when what follows starts with `-`.
 */
export function parseTraceparent(value: string | string[] | undefined): TraceParent | undefined {
  if (typeof value !== "string") return undefined;
  const v = value.trim();
  const version = v.slice(0, 2);
  if (version.length !== 2 || !HEX.test(version) || version === "ff") return undefined;
  if (version === "00" ? v.length !== 55 : v.length < 55 || (v.length > 55 && v[55] !== "-")) return undefined;
  const [, traceId = "", parentId = "", flags = ""] = v.slice(0, 55).split("-");
  if (v[2] !== "-" || v[35] !== "-" || v[52] !== "-") return undefined;
  if (!isId(traceId, 32) || !isId(parentId, 16) || flags.length !== 2 || !HEX.test(flags)) return undefined;
  return { traceId, parentId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** Version 00, the only one this hop writes; of the flags only `sampled` is defined there, so only it is set. */
export const formatTraceparent = (t: TraceParent): string => `00-${t.traceId}-${t.parentId}-${t.sampled ? "01" : "00"}`;

/** A B3 context (https://github.com/openzipkin/b3-propagation): 64- or 128-bit trace id, 64-bit span id. */
export interface B3Context {
  traceId: string;
  spanId: string;
  /** `1` sampled, `0` not, `d` debug; undefined when the sender deferred the decision. */
  sampling: "0" | "1" | "d" | undefined;
}

const isB3TraceId = (v: string) => isId(v, 32) || isId(v, 16);

/** B3 accepts `true`/`false` from tracers that predate its spec, and `x-b3-flags: 1` means debug. */
function b3Sampling(sampled: string | undefined, flags?: string): B3Context["sampling"] | null {
  if (flags === "1" || sampled === "d") return "d";
  if (sampled === undefined) return undefined;
  if (sampled === "1" || sampled === "true") return "1";
  if (sampled === "0" || sampled === "false") return "0";
  return null;
}

/** The single `b3` header: `{traceId}-{spanId}[-{sampling}[-{parentSpanId}]]`, or only a sampling decision. */
export function parseB3Single(value: string | string[] | undefined): B3Context | { sampling: "0" | "1" | "d" } | undefined {
  if (typeof value !== "string") return undefined;
  const parts = value.trim().split("-");
  if (parts.length === 1) {
    const sampling = b3Sampling(parts[0]);
    return sampling ? { sampling } : undefined;
  }
  const [traceId = "", spanId = "", sampled, parent] = parts;
  if (parts.length > 4 || !isB3TraceId(traceId) || !isId(spanId, 16) || (parent !== undefined && !isId(parent, 16))) return undefined;
  const sampling = b3Sampling(sampled);
  return sampling === null ? undefined : { traceId, spanId, sampling };
}

type Headers = Record<string, string | string[] | undefined>;

/** The `x-b3-*` headers; both ids are required for a context. */
export function parseB3Multi(headers: Headers): B3Context | undefined {
  const { "x-b3-traceid": traceId, "x-b3-spanid": spanId, "x-b3-sampled": sampled, "x-b3-flags": flags } = headers;
  if (typeof traceId !== "string" || typeof spanId !== "string" || !isB3TraceId(traceId) || !isId(spanId, 16)) return undefined;
  const sampling = b3Sampling(typeof sampled === "string" ? sampled : undefined, typeof flags === "string" ? flags : undefined);
  return sampling === null ? undefined : { traceId, spanId, sampling };
}

/** What the waypoint's hop adds to a request: the headers to set upstream, and the ids its access line carries. */
export interface TraceHop {
  /** The trace the request belongs to (W3C's if it came with one, else B3's, else a new one). */
  traceId: string;
  /** The waypoint's span: upstream sees it as the parent. */
  spanId: string;
  /** The span the request arrived with, when it arrived with one. */
  parentSpanId: string | undefined;
  requestId: string;
  /** Set on the upstream request, replacing what came. */
  set: Record<string, string>;
  /** Removed from the upstream request: B3 headers that no longer describe the hop. */
  remove: string[];
}

/**
 * Continues each trace format that arrived valid, with one new span id whose parent is the incoming span
 * (Envoy's behaviour as a hop); with none, starts a trace in both W3C and B3 multi-header form so either kind of
 * tracer in the backend continues it. `tracestate` and `x-b3-flags` are left as they came.
 */
export function traceHop(headers: Headers, random: TraceRandom = cryptoRandom): TraceHop {
  const requestId = typeof headers["x-request-id"] === "string" && headers["x-request-id"] !== "" ? headers["x-request-id"] : random.uuid();
  const spanId = random.hex(8);
  const set: Record<string, string> = { "x-request-id": requestId };
  const remove: string[] = [];
  const w3c = parseTraceparent(headers.traceparent);
  const single = parseB3Single(headers.b3);
  const multi = parseB3Multi(headers);
  const singleContext = single && "traceId" in single ? single : undefined;

  if (w3c) set.traceparent = formatTraceparent({ traceId: w3c.traceId, parentId: spanId, sampled: w3c.sampled });
  const defaultSampling = NEW_TRACE_SAMPLED ? "1" : "0";
  if (singleContext) set.b3 = `${singleContext.traceId}-${spanId}-${singleContext.sampling ?? defaultSampling}-${singleContext.spanId}`;
  if (multi) {
    Object.assign(set, { "x-b3-traceid": multi.traceId, "x-b3-spanid": spanId, "x-b3-parentspanid": multi.spanId });
    if (multi.sampling !== "d") set["x-b3-sampled"] = multi.sampling ?? defaultSampling;
  }
  const incoming = w3c ? { traceId: w3c.traceId, spanId: w3c.parentId } : (singleContext ?? multi);
  if (incoming) return { traceId: incoming.traceId, spanId, parentSpanId: incoming.spanId, requestId, set, remove };

  // No valid context: a new trace. A sampling-only `b3` is the caller's decision and is kept; any other trace
  // header that failed to parse is replaced or removed, so no reader continues a broken context.
  const traceId = random.hex(16);
  const sampled = single ? single.sampling !== "0" : NEW_TRACE_SAMPLED;
  set.traceparent = formatTraceparent({ traceId, parentId: spanId, sampled });
  Object.assign(set, { "x-b3-traceid": traceId, "x-b3-spanid": spanId, "x-b3-sampled": sampled ? "1" : "0" });
  remove.push("x-b3-parentspanid");
  if (headers.b3 !== undefined && !single) remove.push("b3");
  return { traceId, spanId, parentSpanId: undefined, requestId, set, remove };
}

/** The upstream request's headers with the hop's trace context. */
export function withTrace<T extends string | string[]>(headers: Record<string, T>, hop: TraceHop): Record<string, T | string> {
  const out: Record<string, T | string> = { ...headers };
  for (const name of hop.remove) delete out[name];
  return Object.assign(out, hop.set);
}
