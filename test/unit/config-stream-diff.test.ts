// Config stream logic without sockets: stable hashing, per-node diffs, resume from bounded history, reconnect backoff.
import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../agent/config-client/index.ts";
import { NdjsonLineSplitter, type Resource, parseServerMessage, resourceId } from "../../contract/stream.ts";
import { NodeView, contentHash, stableStringify } from "../../controller/stream/view.ts";

const wl = (key: string, value: unknown): Resource => ({ type: "workload", key, value });
const ids = (rs: Array<{ type: string; key: string }>) => rs.map(resourceId).sort();

describe("stableStringify", () => {
  it("does not depend on key order and drops undefined like JSON does", () => {
    expect(stableStringify({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } })).toBe('{"a":{"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(contentHash({ a: 1, b: 2 })).toBe(contentHash({ b: 2, a: 1 }));
    expect(contentHash({ a: 1 })).not.toBe(contentHash({ a: "1" }));
  });
});

describe("NodeView", () => {
  const view = () => new NodeView({ maxVersions: 3, maxRefs: 100 });

  it("starts at version 1 even when empty, and bumps only on real changes", () => {
    const v = view();
    expect(v.update([])).toEqual({ upserts: [], removes: [] });
    expect(v.version).toBe(1);
    expect(v.update([])).toBeUndefined();
    v.update([wl("a", { ip: "10.0.0.1", port: 80 })]);
    expect(v.update([wl("a", { port: 80, ip: "10.0.0.1" })])).toBeUndefined();
    expect(v.version).toBe(2);
  });

  it("reports only upserts and removes", () => {
    const v = view();
    v.update([wl("a", 1), wl("b", 1), wl("c", 1)]);
    const change = v.update([wl("a", 2), wl("c", 1), wl("d", 1)]);
    expect(ids(change!.upserts)).toEqual(["workload/a", "workload/d"]);
    expect(change!.removes).toEqual([{ type: "workload", key: "b" }]);
  });

  it("merges the versions since a resume point into one delta at current values", () => {
    const v = view();
    v.update([wl("a", 1), wl("b", 1)]); // 1
    v.update([wl("a", 2), wl("b", 1), wl("c", 1)]); // 2
    v.update([wl("a", 3), wl("c", 1)]); // 3
    v.update([wl("a", 3), wl("c", 1), wl("b", 9)]); // 4
    const since2 = v.changesSince(2)!;
    expect([...since2.upserts].sort((x, y) => resourceId(x).localeCompare(resourceId(y)))).toEqual([wl("a", 3), wl("b", 9)]);
    expect(since2.removes).toEqual([]);
    expect(v.changesSince(3)).toEqual({ upserts: [wl("b", 9)], removes: [] });
    expect(v.changesSince(4)).toEqual({ upserts: [], removes: [] });
  });

  it("refuses to resume from versions it no longer has (or never had)", () => {
    const v = view();
    for (let i = 1; i <= 5; i++) v.update([wl("a", i)]);
    // Three versions of history (3, 4, 5) reach back to an agent at version 2, not 1.
    expect(v.changesSince(2)).toEqual({ upserts: [wl("a", 5)], removes: [] });
    expect(v.changesSince(1)).toBeUndefined();
    expect(v.changesSince(6)).toBeUndefined();
  });

  it("drops history beyond its resource budget", () => {
    const v = new NodeView({ maxVersions: 100, maxRefs: 3 });
    v.update([wl("a", 1), wl("b", 1)]);
    v.update([wl("a", 2), wl("b", 2)]);
    v.update([wl("a", 3), wl("b", 3)]);
    expect(v.changesSince(2)).toBeDefined();
    expect(v.changesSince(1)).toBeUndefined();
  });
});

describe("wire parsing", () => {
  it("splits NDJSON across chunk boundaries, even inside a UTF-8 character", () => {
    const s = new NdjsonLineSplitter(1024);
    const bytes = Buffer.from('{"kind":"ping"}\n{"kind":"snapshot","epoch":"é","version":1,"resources":[]}\n');
    const cut = bytes.indexOf(0xc3) + 1;
    expect(s.push(bytes.subarray(0, cut))).toEqual(['{"kind":"ping"}']);
    expect(s.push(bytes.subarray(cut)).map(parseServerMessage)).toEqual([{ kind: "snapshot", epoch: "é", version: 1, resources: [] }]);
  });

  it("refuses oversized lines and malformed messages with a stable code", () => {
    expect(() => new NdjsonLineSplitter(8).push(Buffer.from("0123456789"))).toThrow(expect.objectContaining({ code: "AMBIT_E_CONFIG_STREAM_PROTOCOL" }));
    expect(() => parseServerMessage('{"kind":"delta","epoch":"e","version":2,"fromVersion":1,"upserts":[{"type":"w"}],"removes":[]}')).toThrow(
      /non-empty string type and key/,
    );
    expect(() => parseServerMessage("[1]")).toThrow(expect.objectContaining({ code: "AMBIT_E_CONFIG_STREAM_PROTOCOL" }));
  });
});

describe("backoffDelay", () => {
  const policy = { initialMs: 500, maxMs: 150_000, jitter: 0.2 };

  it("doubles from initialMs up to maxMs", () => {
    const noJitter = () => 0;
    expect([0, 1, 2, 3, 8, 9, 100, 5000].map((a) => backoffDelay(a, policy, noJitter))).toEqual([500, 1000, 2000, 4000, 128_000, 150_000, 150_000, 150_000]);
  });

  it("shortens each delay by up to the jitter fraction, never lengthens it", () => {
    expect(backoffDelay(1, policy, () => 0.999999)).toBe(800);
    expect(backoffDelay(1, policy, () => 0.5)).toBe(900);
    expect(backoffDelay(20, policy, () => 1)).toBe(120_000);
  });
});
