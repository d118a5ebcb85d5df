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

/**
 * After a restart the agent hears no CNI ADD for pods that already run, yet must capture them again. It looks for
 * the namespace that holds the pod's IP, first among the runtime's netns files, then among the namespaces of host
 * processes. Two namespaces holding the IP is ambiguous: nothing is returned rather than a guess (capturing the
 * wrong namespace would leave the pod uncaptured while reporting it captured). Addresses are cached per namespace.
 */
export class PodNetnsFinder {
  readonly #opts: PodNetnsFinderOptions;
  readonly #addressesIn: (netnsPath: string) => Promise<string[]>;
  /**
   * `path|dev:ino` -> the namespace's addresses (a pod's IP does not change while its namespace lives). The path is
   * part of the key because a freed namespace's inode is reused by the next one, which the runtime names anew.
   */
  readonly #addresses = new Map<string, string[]>();

  constructor(opts: PodNetnsFinderOptions) {
    this.#opts = opts;
    this.#addressesIn = opts.addressesIn ?? ipAddresses;
  }

  async find(podIps: readonly string[]): Promise<string | undefined> {
    if (podIps.length === 0) return undefined;
    const seen = new Set<string>();
    try {
      const fromDir = await this.#search(await this.#netnsFiles(), podIps, seen);
      if (fromDir !== null) return fromDir;
      return (await this.#search(await this.#processNetns(), podIps, seen)) ?? undefined;
    } finally {
      // A namespace that is gone may see its inode reused by a new one: forget what was cached for it.
      for (const key of this.#addresses.keys()) if (!seen.has(key)) this.#addresses.delete(key);
    }
  }

  async #netnsFiles(): Promise<string[]> {
    const names = await fs.readdir(this.#opts.netnsDir).catch(() => [] as string[]);
    return names.map((n) => path.join(this.#opts.netnsDir, n));
  }

  async #processNetns(): Promise<string[]> {
    if (!this.#opts.procDir) return [];
    const pids = (await fs.readdir(this.#opts.procDir).catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
    return pids.map((pid) => path.join(this.#opts.procDir!, pid, "ns", "net"));
  }

  /** The one namespace among `files` with one of `ips`; null when none has it; undefined when several do. */
  async #search(files: string[], ips: readonly string[], seen: Set<string>): Promise<string | null | undefined> {
    const own = await namespaceIdentity("/proc/self/ns/net");
    const matches = new Map<string, string>();
    for (const file of files) {
      const id = await namespaceIdentity(file);
      if (!id || id === own) continue;
      const key = `${file}|${id}`;
      seen.add(key);
      let addresses = this.#addresses.get(key);
      if (!addresses) {
        addresses = await this.#addressesIn(file).catch(() => undefined);
        if (!addresses) continue;
        this.#addresses.set(key, addresses);
      }
      if (addresses.some((a) => ips.includes(a)) && !matches.has(id)) matches.set(id, file);
    }
    if (matches.size === 0) return null;
    if (matches.size > 1) {
      this.#opts.log.warn({ ips, netns: [...matches.values()] }, "several network namespaces hold the pod's address; not capturing it until CNI names one");
      return undefined;
    }
    return [...matches.values()][0]!;
  }
}
