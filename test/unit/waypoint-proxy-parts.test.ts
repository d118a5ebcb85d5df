// The waypoint proxy's pure pieces: protocol detection from the first bytes, and retry backoff.
import { describe, expect, it } from "vitest";
import { backoffMs, classify } from "../../waypoint/proxy/index.ts";

describe("waypoint protocol detection", () => {
  it.each([
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http2"],
    ["PRI * HT", "http2"],
    ["GET / HTTP/1.1\r\n", "http1"],
    ["DELETE /x HTTP/1.0\r\n", "http1"],
    ["\x16\x03\x01\x02\x00", "tcp"],
    ["SSH-2.0-OpenSSH", "tcp"],
    ["get / HTTP/1.1", "tcp"],
  ])("%j is %s", (first, expected) => expect(classify(Buffer.from(first, "latin1"))).toBe(expected));
});

describe("waypoint retry backoff", () => {
  it("doubles from the base within jitter, capped at ten times the base", () => {
    expect(backoffMs(25, 1, () => 0)).toBe(12.5);
    expect(backoffMs(25, 1, () => 1)).toBe(25);
    expect(backoffMs(25, 3, () => 1)).toBe(100);
    expect(backoffMs(25, 10, () => 1)).toBe(250);
  });
});
