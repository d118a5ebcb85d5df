// The sandbox kubelet's container logs: runs of one file, --tail, --timestamps, --since and --limit-bytes as kubectl asks for them.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ContainerLog, type LogRun, logTimestamp, readRun } from "../../sandbox/kubelet/logs.ts";

let dir: string;
let n = 0;
const newLog = () => new ContainerLog(path.join(dir, `c${++n}.log`));
const write = (run: LogRun, text: string) => new Promise<void>((resolve) => (run.write(Buffer.from(text)) ? resolve() : run.onceDrained(resolve)));
async function flushed(run: LogRun, bytes: number): Promise<void> {
  while (run.end < run.start + bytes) await new Promise((r) => setTimeout(r, 5));
}
async function read(run: LogRun, opts: Parameters<typeof readRun>[1] = { follow: false, timestamps: false }): Promise<string> {
  let out = "";
  for await (const chunk of readRun(run, opts)) out += (chunk as Buffer).toString();
  return out;
}
const plain = { follow: false, timestamps: false };

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-logs-"));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("container log runs", () => {
  it("every run appends to the one file; each is read on its own, the file holds them all", async () => {
    const log = newLog();
    const first = log.startRun();
    await write(first, "one\n");
    await first.finish();
    const second = log.startRun();
    await write(second, "two\n");
    await second.finish();
    const third = log.startRun();
    await write(third, "three\n");
    await third.finish();
    expect(await read(log.latest!)).toBe("three\n");
    expect(await read(log.previous!)).toBe("two\n");
    expect(await fs.readFile(log.file, "utf8")).toBe("one\ntwo\nthree\n");
  });

  it("--tail counts lines from the end, a final line without newline included", async () => {
    const log = newLog();
    const run = log.startRun();
    await write(run, "a\nb\nc\n");
    await flushed(run, 6);
    expect(await read(run, { ...plain, tailLines: 2 })).toBe("b\nc\n");
    expect(await read(run, { ...plain, tailLines: 10 })).toBe("a\nb\nc\n");
    expect(await read(run, { ...plain, tailLines: 0 })).toBe("");
    await write(run, "partial");
    await run.finish();
    expect(await read(run, { ...plain, tailLines: 2 })).toBe("c\npartial");
  });

  it("--tail finds lines across read blocks of a large run", async () => {
    const run = newLog().startRun();
    const line = "x".repeat(999) + "\n";
    for (let i = 0; i < 300; i++) await write(run, line);
    await run.finish();
    expect(await read(run, { ...plain, tailLines: 150 })).toBe(line.repeat(150));
  });

  it("--timestamps prefixes each line with the time its first byte was written, as RFC 3339", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const run = newLog().startRun();
    vi.setSystemTime(Date.parse("2026-01-02T03:04:05.100Z"));
    await write(run, "first li");
    vi.setSystemTime(Date.parse("2026-01-02T03:04:06Z"));
    await write(run, "ne\nsecond\n");
    await run.finish();
    expect(await read(run, { ...plain, timestamps: true })).toBe("2026-01-02T03:04:05.1Z first line\n2026-01-02T03:04:06Z second\n");
    // --since: the lines written from then on.
    expect(await read(run, { ...plain, sinceMs: Date.parse("2026-01-02T03:04:05.500Z") })).toBe("second\n");
    expect(await read(run, { ...plain, sinceMs: Date.parse("2026-01-02T03:04:07Z") })).toBe("");
  });

  it("--limit-bytes cuts the output, timestamps included", async () => {
    const run = newLog().startRun();
    await write(run, "0123456789\n");
    await run.finish();
    expect(await read(run, { ...plain, limitBytes: 4 })).toBe("0123");
    expect((await read(run, { ...plain, timestamps: true, limitBytes: 5 })).length).toBe(5);
  });

  it("-f follows a run to its end; a reader destroyed while the run is quiet ends at once", async () => {
    const run = newLog().startRun();
    await write(run, "before\n");
    const follow = read(run, { follow: true, timestamps: false });
    await write(run, "after\n");
    await new Promise((r) => setTimeout(r, 50));
    await write(run, "end\n");
    await run.finish();
    expect(await follow).toBe("before\nafter\nend\n");

    const quiet = newLog().startRun();
    const reader = readRun(quiet, { follow: true, timestamps: false });
    reader.resume();
    await new Promise((r) => setTimeout(r, 50));
    expect(quiet.listenerCount("appended")).toBe(1);
    const closed = new Promise((r) => reader.once("close", r));
    reader.destroy();
    await closed;
    expect(quiet.listenerCount("appended")).toBe(0);
  });

  it("timestamps print as Go's RFC3339Nano does: trailing zeros of the fraction trimmed", () => {
    expect(logTimestamp(Date.parse("2026-05-01T12:00:00.120Z"))).toBe("2026-05-01T12:00:00.12Z");
    expect(logTimestamp(Date.parse("2026-05-01T12:00:00Z"))).toBe("2026-05-01T12:00:00Z");
    expect(logTimestamp(Date.parse("2026-05-01T12:00:00.007Z"))).toBe("2026-05-01T12:00:00.007Z");
  });
});
