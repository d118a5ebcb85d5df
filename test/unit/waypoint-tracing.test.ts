// The waypoint's trace context as a hop: W3C Trace Context and B3 parsed by their specs' examples, continued with a new span.
import { describe, expect, it } from "vitest";
import { type TraceRandom, parseB3Multi, parseB3Single, parseTraceparent, traceHop, withTrace } from "../../waypoint/proxy/index.ts";

/** Fixed ids, so a test can tell which ones the hop made. */
const fixed: TraceRandom = { hex: (bytes) => (bytes === 8 ? "1111111111111111" : "22222222222222222222222222222222"), uuid: () => "req-new" };

// Examples from W3C Trace Context Level 1 (https://www.w3.org/TR/trace-context/), sections 3.2 and 3.3.
const W3C_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const W3C_PARENT_ID = "00f067aa0ba902b7";
const W3C_SAMPLED = `00-${W3C_TRACE_ID}-${W3C_PARENT_ID}-01`;
const W3C_TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
// Examples from the B3 propagation spec (https://github.com/openzipkin/b3-propagation, README "Single Header" and "Multiple Headers").
const B3_TRACE_ID = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_SPAN_ID = "e457b5a2e4d86bd1";
const B3_PARENT_ID = "05e3ac9a4f6e3b90";

describe("traceparent (W3C Trace Context, section 3.2)", () => {
  it("reads the spec's sampled and unsampled examples", () => {
    expect(parseTraceparent(W3C_SAMPLED)).toEqual({ traceId: W3C_TRACE_ID, parentId: W3C_PARENT_ID, sampled: true });
    expect(parseTraceparent(`00-${W3C_TRACE_ID}-${W3C_PARENT_ID}-00`)).toEqual({ traceId: W3C_TRACE_ID, parentId: W3C_PARENT_ID, sampled: false });
  });

  it.each([
    ["an all-zero trace-id (3.2.2.3)", `00-${"0".repeat(32)}-${W3C_PARENT_ID}-01`],
    ["an all-zero parent-id (3.2.2.4)", `00-${W3C_TRACE_ID}-${"0".repeat(16)}-01`],
    ["version ff (3.2.2.2)", `ff-${W3C_TRACE_ID}-${W3C_PARENT_ID}-01`],
    ["uppercase hex (HEXDIGLC)", `00-${W3C_TRACE_ID.toUpperCase()}-${W3C_PARENT_ID}-01`],
    ["version 00 with more after it", `${W3C_SAMPLED}-extra`],
    ["a short trace-id", `00-${W3C_TRACE_ID.slice(1)}-${W3C_PARENT_ID}-01`],
    ["two headers joined", `${W3C_SAMPLED}, ${W3C_SAMPLED}`],
  ])("refuses %s", (_why, value) => expect(parseTraceparent(value)).toBeUndefined());

  it("reads a later version by its first 55 characters when a dash follows them (3.2.4)", () => {
    expect(parseTraceparent(`cc-${W3C_TRACE_ID}-${W3C_PARENT_ID}-01-what-the-future-will-be-like`)).toMatchObject({ traceId: W3C_TRACE_ID });
    expect(parseTraceparent(`cc-${W3C_TRACE_ID}-${W3C_PARENT_ID}-01.what-the-future-will-be-like`)).toBeUndefined();
  });
});

describe("B3", () => {
  it("reads the spec's single-header example and a sampling-only header", () => {
    expect(parseB3Single(`${B3_TRACE_ID}-${B3_SPAN_ID}-1-${B3_PARENT_ID}`)).toEqual({ traceId: B3_TRACE_ID, spanId: B3_SPAN_ID, sampling: "1" });
    expect(parseB3Single("0")).toEqual({ sampling: "0" });
    expect(parseB3Single(`${B3_TRACE_ID}-${B3_SPAN_ID}`)).toEqual({ traceId: B3_TRACE_ID, spanId: B3_SPAN_ID, sampling: undefined });
    expect(parseB3Single(`${B3_TRACE_ID}-nothex`)).toBeUndefined();
  });

  it("reads the multi-header example, a 64-bit trace id, and the legacy true/false", () => {
    const headers = { "x-b3-traceid": B3_TRACE_ID, "x-b3-spanid": B3_SPAN_ID, "x-b3-parentspanid": B3_PARENT_ID, "x-b3-sampled": "1" };
    expect(parseB3Multi(headers)).toEqual({ traceId: B3_TRACE_ID, spanId: B3_SPAN_ID, sampling: "1" });
    expect(parseB3Multi({ ...headers, "x-b3-traceid": "a3ce929d0e0e4736", "x-b3-sampled": "true" })).toMatchObject({ sampling: "1" });
    expect(parseB3Multi({ ...headers, "x-b3-flags": "1" })).toMatchObject({ sampling: "d" });
    expect(parseB3Multi({ "x-b3-traceid": B3_TRACE_ID })).toBeUndefined();
  });
});

describe("traceHop", () => {
  it("continues a W3C trace: same trace id, a new parent-id, flags and tracestate kept", () => {
    const hop = traceHop({ traceparent: W3C_SAMPLED, tracestate: W3C_TRACESTATE, "x-request-id": "req-1" }, fixed);
    expect(hop).toMatchObject({ traceId: W3C_TRACE_ID, spanId: "1111111111111111", parentSpanId: W3C_PARENT_ID, requestId: "req-1" });
    const upstream = withTrace({ traceparent: W3C_SAMPLED, tracestate: W3C_TRACESTATE, "x-request-id": "req-1" }, hop);
    expect(upstream).toEqual({ traceparent: `00-${W3C_TRACE_ID}-1111111111111111-01`, tracestate: W3C_TRACESTATE, "x-request-id": "req-1" });
  });

  it("keeps an unsampled W3C trace unsampled", () => {
    expect(traceHop({ traceparent: `00-${W3C_TRACE_ID}-${W3C_PARENT_ID}-00` }, fixed).set.traceparent).toBe(`00-${W3C_TRACE_ID}-1111111111111111-00`);
  });

  it("continues B3 multi headers: the incoming span becomes the parent of a new span", () => {
    const incoming = { "x-b3-traceid": B3_TRACE_ID, "x-b3-spanid": B3_SPAN_ID, "x-b3-parentspanid": B3_PARENT_ID, "x-b3-sampled": "0" };
    expect(withTrace(incoming, traceHop(incoming, fixed))).toMatchObject({
      "x-b3-traceid": B3_TRACE_ID,
      "x-b3-spanid": "1111111111111111",
      "x-b3-parentspanid": B3_SPAN_ID,
      "x-b3-sampled": "0",
    });
  });

  it("continues a single b3 header in its own form", () => {
    const hop = traceHop({ b3: `${B3_TRACE_ID}-${B3_SPAN_ID}-1-${B3_PARENT_ID}` }, fixed);
    expect(hop.traceId).toBe(B3_TRACE_ID);
    expect(hop.set.b3).toBe(`${B3_TRACE_ID}-1111111111111111-1-${B3_SPAN_ID}`);
    expect(hop.set.traceparent).toBeUndefined();
  });

  it("starts a sampled trace in W3C and B3 form when none arrives, and makes a request id", () => {
    const hop = traceHop({}, fixed);
    expect(hop).toMatchObject({ traceId: "22222222222222222222222222222222", parentSpanId: undefined, requestId: "req-new" });
    expect(hop.set).toEqual({
      "x-request-id": "req-new",
      traceparent: "00-22222222222222222222222222222222-1111111111111111-01",
      "x-b3-traceid": "22222222222222222222222222222222",
      "x-b3-spanid": "1111111111111111",
      "x-b3-sampled": "1",
    });
  });

  it("restarts a trace whose headers are invalid, replacing them, and follows a sampling-only b3 decision", () => {
    const broken = { traceparent: `00-${"0".repeat(32)}-${W3C_PARENT_ID}-01`, b3: "garbage", "x-b3-parentspanid": B3_PARENT_ID };
    const upstream = withTrace(broken, traceHop(broken, fixed));
    expect(upstream.traceparent).toBe("00-22222222222222222222222222222222-1111111111111111-01");
    expect(upstream.b3).toBeUndefined();
    expect(upstream["x-b3-parentspanid"]).toBeUndefined();
    expect(traceHop({ b3: "0" }, fixed).set.traceparent).toMatch(/-00$/);
  });

  it("makes random ids of the right length by default", () => {
    const hop = traceHop({});
    expect(hop.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(hop.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(hop.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});
