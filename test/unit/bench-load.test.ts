// The load generator's pure parts (bench/tools/load): the open-loop schedule on a fake clock, percentiles, the HTTP/1.1 response parser, gRPC framing.
import { describe, expect, it } from "vitest";
import {
  EARLY_MS,
  Fifo,
  ResponseParser,
  Samples,
  dueTime,
  grpcFrame,
  grpcMessageLengths,
  parseTarget,
  percentileOfSorted,
  protoBytesMessage,
  runSchedule,
  type Released,
} from "../../bench/tools/load/index.ts";

describe("open-loop schedule", () => {
  /** A clock that moves only when the schedule sleeps; `stallAfter` makes one sleep last `stallMs` longer. */
  const fakeClock = (stallAfter = -1, stallMs = 0) => {
    let t = 1000;
    let sleeps = 0;
    return {
      now: () => t,
      sleep: async (ms: number) => {
        t += ms + (sleeps++ === stallAfter ? stallMs : 0.3);
      },
    };
  };

  it("releases request i at start + i / rate, measured from its due time", async () => {
    const clock = fakeClock();
    const released: Released[] = [];
    const r = await runSchedule({ rate: 100, count: 50, ...clock }, (x) => released.push(x));
    expect(r.released).toBe(50);
    expect(released.map((x) => x.index)).toEqual([...Array(50).keys()]);
    released.forEach((x, i) => {
      expect(x.due).toBeCloseTo(dueTime(r.start, i, 100), 9);
      // Never counted from later than due; at most EARLY_MS before it when released early.
      expect(x.intended).toBeLessThanOrEqual(x.due);
      expect(x.due - x.intended).toBeLessThanOrEqual(EARLY_MS);
    });
  });

  it("after the generator itself stalls, releases every overdue request at once, each counted from its own due time", async () => {
    const clock = fakeClock(5, 100);
    const released: Array<Released & { at: number }> = [];
    const r = await runSchedule({ rate: 1000, count: 300, ...clock }, (x) => released.push({ ...x, at: clock.now() }));
    expect(r.released).toBe(300);
    const burst = released.filter((x) => x.at - x.due > EARLY_MS);
    // ~100 requests fell due during the 100 ms stall: none dropped, none re-timed to when it finally went.
    expect(burst.length).toBeGreaterThanOrEqual(90);
    for (const x of burst) expect(x.intended).toBe(x.due);
    expect(r.lateness.percentile(100)).toBeGreaterThanOrEqual(99);
  });
});

describe("latency samples", () => {
  it("nearest-rank percentiles, exact", () => {
    const s = new Samples();
    for (let i = 1000; i >= 1; i--) s.add(i);
    expect(s.summary()).toEqual({ p50Ms: 500, p90Ms: 900, p99Ms: 990, p999Ms: 999, maxMs: 1000, meanMs: 500.5 });
    expect(s.countAtLeast(991)).toBe(10);
    expect(percentileOfSorted([], 50)).toBeNaN();
    expect(percentileOfSorted([7], 99.9)).toBe(7);
    // Grows past its initial capacity.
    for (let i = 0; i < 10_000; i++) s.add(0.5);
    expect(s.count).toBe(11_000);
    expect(s.percentile(50)).toBe(0.5);
  });

  it("FIFO keeps order across its compaction", () => {
    const q = new Fifo<number>();
    for (let i = 0; i < 5000; i++) q.push(i);
    const out: number[] = [];
    for (let i = 0; i < 3000; i++) out.push(q.shift()!);
    for (let i = 5000; i < 6000; i++) q.push(i);
    while (q.length) out.push(q.shift()!);
    expect(out).toEqual([...Array(6000).keys()]);
    expect(q.shift()).toBeUndefined();
  });
});

describe("HTTP/1.1 response parser", () => {
  const head = (extra: string, status = "200 OK") => `HTTP/1.1 ${status}\r\n${extra}\r\n`;

  it("frames by content-length across arbitrary splits, several responses per read", () => {
    const one = head("content-length: 5\r\n") + "hello";
    const wire = Buffer.from(one + one + one);
    for (let split = 1; split < wire.length; split++) {
      const p = new ResponseParser();
      const got = [...p.push(wire.subarray(0, split)), ...p.push(wire.subarray(split))];
      expect(got).toEqual([1, 2, 3].map(() => ({ status: 200, bodyBytes: 5, close: false })));
      expect(p.midResponse).toBe(false);
    }
  });

  it("chunked bodies with trailers, 1xx skipped, 204 without body, close-delimited bodies, connection: close", () => {
    const p = new ResponseParser();
    const chunked = head("transfer-encoding: chunked\r\n") + "3\r\nabc\r\n10;x=y\r\n0123456789abcdef\r\n0\r\nx-t: 1\r\n\r\n";
    const wire =
      head("", "100 Continue") +
      chunked +
      head("content-length: 9\r\n", "204 No Content") +
      head("connection: close\r\ncontent-length: 2\r\n", "503 Busy") +
      "no";
    const got: unknown[] = [];
    for (const byte of Buffer.from(wire)) got.push(...p.push(Buffer.from([byte])));
    expect(got).toEqual([
      { status: 200, bodyBytes: 19, close: false },
      { status: 204, bodyBytes: 0, close: false },
      { status: 503, bodyBytes: 2, close: true },
    ]);
    const legacy = new ResponseParser();
    expect(legacy.push(Buffer.from("HTTP/1.0 200 OK\r\n\r\nuntil the end"))).toEqual([]);
    expect(legacy.end()).toEqual({ status: 200, bodyBytes: 13, close: true });
    expect(() => new ResponseParser().push(Buffer.from("SSH-2.0-x\r\n\r\n"))).toThrow(/bad status line/);
  });
});

describe("gRPC framing and targets", () => {
  it("messages of exact size, length-prefixed", () => {
    for (const size of [0, 2, 3, 64, 129, 130, 1024, 16_386, 20_000]) expect(protoBytesMessage(size).length).toBe(size);
    expect(() => protoBytesMessage(1)).toThrow();
    expect([...protoBytesMessage(1024).subarray(0, 3)]).toEqual([0x0a, 0xfd, 0x07]); // field 1, length 1021
    const body = Buffer.concat([grpcFrame(protoBytesMessage(1024)), grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.from("abc")).subarray(0, 6)]);
    expect(grpcMessageLengths(body)).toEqual({ lengths: [1024, 0], rest: 6 });
  });

  it("host:port targets", () => {
    expect(parseTarget("server.bench:8080")).toEqual({ host: "server.bench", port: 8080 });
    expect(parseTarget("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(() => parseTarget("localhost")).toThrow(/host:port/);
  });
});
