// Finding a running pod's netns by IP: the runtime's directory first, /proc as fallback, never a guess between two.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PodNetnsFinder } from "../../agent/inpod/index.ts";

describe("PodNetnsFinder", () => {
  let dir: string;
  const addresses = new Map<string, string[]>();
  let lookups = 0;
  const finder = (over: { proc?: boolean } = {}) =>
    new PodNetnsFinder({
      netnsDir: path.join(dir, "netns"),
      ...(over.proc ? { procDir: path.join(dir, "proc") } : {}),
      addressesIn: async (p) => {
        lookups++;
        const a = addresses.get(p);
        if (!a) throw new Error(`not a netns: ${p}`);
        return a;
      },
      log: pino({ level: "silent" }),
    });
  const netnsFile = async (file: string, ips: string[]) => {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, "");
    addresses.set(file, ips);
    return file;
  };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-netns-"));
    await netnsFile(path.join(dir, "netns", "cni-aaa"), ["10.244.1.5"]);
    await netnsFile(path.join(dir, "netns", "cni-bbb"), ["10.244.1.6", "fd00::6"]);
    await netnsFile(path.join(dir, "proc", "4242", "ns", "net"), ["10.244.1.9"]);
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it("finds the runtime's netns file holding the pod's IP, IPv4 or IPv6, and caches what it read", async () => {
    const f = finder();
    expect(await f.find(["10.244.1.5"])).toBe(path.join(dir, "netns", "cni-aaa"));
    lookups = 0;
    expect(await f.find(["fd00::6"])).toBe(path.join(dir, "netns", "cni-bbb"));
    expect(lookups).toBe(0);
    expect(await f.find(["10.244.1.77"])).toBeUndefined();
    expect(await f.find([])).toBeUndefined();
  });

  it("falls back to the namespaces of host processes when the runtime keeps no file for the pod", async () => {
    expect(await finder().find(["10.244.1.9"])).toBeUndefined();
    expect(await finder({ proc: true }).find(["10.244.1.9"])).toBe(path.join(dir, "proc", "4242", "ns", "net"));
  });

  it("refuses to guess when two namespaces hold the address", async () => {
    const twin = await netnsFile(path.join(dir, "netns", "cni-twin"), ["10.244.1.5"]);
    try {
      expect(await finder().find(["10.244.1.5"])).toBeUndefined();
    } finally {
      await fs.rm(twin);
    }
    expect(await finder().find(["10.244.1.5"])).toBe(path.join(dir, "netns", "cni-aaa"));
  });

  it("skips files that are not namespaces, and forgets namespaces that are gone", async () => {
    await fs.writeFile(path.join(dir, "netns", "junk"), "");
    const f = finder();
    expect(await f.find(["10.244.1.6"])).toBe(path.join(dir, "netns", "cni-bbb"));
    const gone = await netnsFile(path.join(dir, "netns", "cni-gone"), ["10.244.1.30"]);
    expect(await f.find(["10.244.1.30"])).toBe(gone);
    await fs.rm(gone);
    const reborn = await netnsFile(path.join(dir, "netns", "cni-new"), ["10.244.1.31"]);
    expect(await f.find(["10.244.1.30"])).toBeUndefined();
    expect(await f.find(["10.244.1.31"])).toBe(reborn);
  });

  it("answers a restart's lookups for every pod at once with one read of each namespace", async () => {
    const many = path.join(dir, "many");
    const files = await Promise.all(Array.from({ length: 60 }, (_, i) => netnsFile(path.join(many, `cni-${i}`), [`10.250.0.${i + 1}`])));
    let reads = 0;
    const f = new PodNetnsFinder({
      netnsDir: many,
      addressesIn: async (p) => {
        reads++;
        await new Promise((r) => setTimeout(r, 2));
        return addresses.get(p)!;
      },
      log: pino({ level: "silent" }),
    });
    const found = await Promise.all(files.map((_, i) => f.find([`10.250.0.${i + 1}`])));
    expect(found).toEqual(files);
    expect(reads).toBe(60);
    // A namespace made after a scan began is still found by a lookup that asked after it was made.
    const late = await netnsFile(path.join(many, "cni-late"), ["10.250.1.1"]);
    const [, lateFound] = await Promise.all([f.find(["10.250.0.1"]), f.find(["10.250.1.1"])]);
    expect(lateFound).toBe(late);
    expect(reads).toBe(61);
  });
});
