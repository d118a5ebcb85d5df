// Finds a running pod's network namespace as on any node: the runtime's netns directory, then /proc/*/ns/net, by pod IP.
import fs from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { run } from "../../host/exec.ts";

export interface PodNetnsFinderOptions {
  /** The node's netns directory (containerd and CRI-O keep /var/run/netns/cni-<id> there), mounted from the host. */
  netnsDir: string;
  /** /proc of the host's PID namespace (the agent runs with hostPID): processes of runtimes that keep no netns files. */
  procDir?: string;
  /** The addresses configured inside a netns; by default `ip -j addr` run in it. */
  addressesIn?(netnsPath: string): Promise<string[]>;
  log: Logger;
}

async function ipAddresses(netnsPath: string): Promise<string[]> {
  const { stdout } = await run("ip", ["-j", "addr", "show"], { netns: netnsPath, timeoutMs: 5_000 });
  const links = JSON.parse(stdout || "[]") as Array<{ ifname?: string; addr_info?: Array<{ local?: string }> }>;
  return links
    .filter((l) => l.ifname !== "lo")
    .flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? ""))
    .filter(Boolean);
}

/** dev:ino of a netns file: two paths to one namespace have the same; undefined when the file is gone. */
export const namespaceIdentity = async (file: string): Promise<string | undefined> => {
  try {
    const st = await fs.stat(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
};

/** Namespaces inspected at once during a scan: the first scan after a restart reads every pod's namespace. */
const SCAN_CONCURRENCY = 8;

type Source = "dir" | "proc";
interface Scanned {
  file: string;
  id: string;
  addresses: string[];
}

/**
 * After a restart the agent hears no CNI ADD for pods that already run, yet must capture them again. It looks for
 * the namespace that holds the pod's IP, first among the runtime's netns files, then among the namespaces of host
 * processes. Two namespaces holding the IP is ambiguous: nothing is returned rather than a guess (capturing the
 * wrong namespace would leave the pod uncaptured while reporting it captured).
 *
 * A restart asks for every pod of the node at once: lookups share scans (one in flight per source, and a caller
 * never gets one that began before it asked, so a namespace made just before it is seen), and a namespace's
 * addresses are read once (`ip` in it) and cached while it lives. A hundred pods cost a hundred `ip` runs, not
 * a hundred per pod.
 */
export class PodNetnsFinder {
  readonly #opts: PodNetnsFinderOptions;
  readonly #addressesIn: (netnsPath: string) => Promise<string[]>;
  /**
   * `source|path|dev:ino` -> the namespace's addresses (a pod's IP does not change while its namespace lives). The
   * path is part of the key because a freed namespace's inode is reused by the next one, which the runtime names anew.
   */
  readonly #addresses = new Map<string, string[]>();
  /** Per source, the scan callers join: `begun` false means it waits for the previous one and has not listed yet. */
  readonly #scans = new Map<Source, { begun: boolean; result: Promise<Scanned[]> }>();

  constructor(opts: PodNetnsFinderOptions) {
    this.#opts = opts;
    this.#addressesIn = opts.addressesIn ?? ipAddresses;
  }

  async find(podIps: readonly string[]): Promise<string | undefined> {
    if (podIps.length === 0) return undefined;
    const fromDir = this.#pick(await this.#scan("dir"), podIps);
    if (fromDir !== null) return fromDir;
    if (!this.#opts.procDir) return undefined;
    return this.#pick(await this.#scan("proc"), podIps) ?? undefined;
  }

  #scan(source: Source): Promise<Scanned[]> {
    const queued = this.#scans.get(source);
    if (queued && !queued.begun) return queued.result;
    const scan = { begun: false, result: Promise.resolve([] as Scanned[]) };
    scan.result = (async () => {
      if (queued) await queued.result.catch(() => undefined);
      scan.begun = true;
      return this.#read(source);
    })();
    this.#scans.set(source, scan);
    const done = () => {
      if (this.#scans.get(source) === scan) this.#scans.delete(source);
    };
    scan.result.then(done, done);
    return scan.result;
  }

  /** Every namespace of `source` with its addresses; cache entries of namespaces no longer there are dropped. */
  async #read(source: Source): Promise<Scanned[]> {
    const files = source === "dir" ? await this.#netnsFiles() : await this.#processNetns();
    const own = await namespaceIdentity("/proc/self/ns/net");
    const seen = new Set<string>();
    const byId = new Map<string, Promise<string[] | undefined>>();
    const scanned: Scanned[] = [];
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const file = files[next++]!;
        const id = await namespaceIdentity(file);
        if (!id || id === own) continue;
        const key = `${source}|${file}|${id}`;
        seen.add(key);
        let addresses = this.#addresses.get(key);
        if (!addresses) {
          // Many processes share one namespace: read it once per scan.
          let reading = byId.get(id);
          if (!reading) {
            reading = this.#addressesIn(file).catch(() => undefined);
            byId.set(id, reading);
          }
          addresses = await reading;
          if (!addresses) continue;
          this.#addresses.set(key, addresses);
        }
        scanned.push({ file, id, addresses });
      }
    };
    await Promise.all(Array.from({ length: SCAN_CONCURRENCY }, worker));
    for (const key of this.#addresses.keys()) if (key.startsWith(`${source}|`) && !seen.has(key)) this.#addresses.delete(key);
    return scanned;
  }

  async #netnsFiles(): Promise<string[]> {
    const names = await fs.readdir(this.#opts.netnsDir).catch(() => [] as string[]);
    return names.sort().map((n) => path.join(this.#opts.netnsDir, n));
  }

  async #processNetns(): Promise<string[]> {
    if (!this.#opts.procDir) return [];
    const pids = (await fs.readdir(this.#opts.procDir).catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
    return pids.map((pid) => path.join(this.#opts.procDir!, pid, "ns", "net"));
  }

  /** The one namespace among `scanned` with one of `ips`; null when none has it; undefined when several do. */
  #pick(scanned: Scanned[], ips: readonly string[]): string | null | undefined {
    const matches = new Map<string, string>();
    for (const { file, id, addresses } of scanned) if (addresses.some((a) => ips.includes(a)) && !matches.has(id)) matches.set(id, file);
    if (matches.size === 0) return null;
    if (matches.size > 1) {
      this.#opts.log.warn({ ips, netns: [...matches.values()] }, "several network namespaces hold the pod's address; not capturing it until CNI names one");
      return undefined;
    }
    return [...matches.values()][0]!;
  }
}
