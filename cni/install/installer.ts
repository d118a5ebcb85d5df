// Keeps Ambit installed on a node: the plugin binary in the CNI bin dir and Ambit chained in the primary network config.
import fs from "node:fs/promises";
import { watch } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { CniConfigError, primaryConfig, withAmbit, withoutAmbit } from "./conflist.ts";
import { type InClusterCredentials, PLUGIN_KUBECONFIG_FILE, pluginKubeconfig } from "./plugin-kubeconfig.ts";

export interface CniInstallerOptions {
  /** The node's CNI config dir, e.g. /etc/cni/net.d. */
  confDir: string;
  /** The node's CNI plugin dir, e.g. /opt/cni/bin. */
  binDir: string;
  /** The plugin executable to install (the single executable, so the node needs no Node). */
  pluginSource: string;
  /** Ambit's entry in the chain: agentSocket, kubeconfig, timeoutMs, excludeNamespaces. */
  ambitConfig: Record<string, unknown>;
  log: Logger;
  /** A rescan this often besides the directory watch, which can miss events (default 5 s). */
  rescanMs?: number;
  /**
   * Credentials to write into `<confDir>/ambit-cni.kubeconfig` for the plugin's lookups while no agent answers
   * (ambitConfig.kubeconfig must name that file); rewritten whenever the token on disk changes.
   */
  pluginCredentials?: InClusterCredentials;
  /** A file that exists exactly while Ambit is chained (the container's readiness). */
  readyFile?: string;
}

export type ChainState = "waiting-for-primary" | "chained" | "unchanged";

export const PLUGIN_FILE = "ambit-cni";

/** Write-then-rename in the same directory: a runtime reading the file sees the old or the new one, never half. */
async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  await fs.writeFile(tmp, text, { mode });
  await fs.rename(tmp, file);
}

export class CniInstaller {
  readonly #opts: CniInstallerOptions;

  constructor(opts: CniInstallerOptions) {
    this.#opts = opts;
  }

  /** Copies the plugin into the bin dir under a temporary name, then renames it: never a half-copied executable. */
  async installBinary(): Promise<void> {
    const target = path.join(this.#opts.binDir, PLUGIN_FILE);
    const tmp = path.join(this.#opts.binDir, `.${PLUGIN_FILE}.${process.pid}.tmp`);
    await fs.copyFile(this.#opts.pluginSource, tmp);
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, target);
  }

  /**
   * Chains Ambit into the primary config (the first .conflist/.conf/.json by name): appended last, a single-plugin
   * .conf turned into a .conflist of the same name. Waits, doing nothing, while no primary config exists yet.
   */
  async ensureChained(): Promise<ChainState> {
    const names = await fs.readdir(this.#opts.confDir).catch(() => [] as string[]);
    const primary = primaryConfig(names);
    if (!primary) return "waiting-for-primary";
    const file = path.join(this.#opts.confDir, primary);
    const text = await fs.readFile(file, "utf8");
    const next = withAmbit(text, primary, this.#opts.ambitConfig);
    const target = primary.endsWith(".conflist") ? file : file.replace(/\.(conf|json)$/, ".conflist");
    if (next === undefined && target === file) return "unchanged";
    await writeAtomic(target, next ?? text, 0o644);
    if (target !== file) await fs.rm(file, { force: true });
    this.#opts.log.info({ config: path.basename(target) }, "Ambit chained into the node's primary CNI network configuration");
    return "chained";
  }

  /** Writes the plugin's kubeconfig when its content (the token, above all) changed; mode 0600, it holds a token. */
  async refreshPluginKubeconfig(): Promise<boolean> {
    if (!this.#opts.pluginCredentials) return false;
    const file = path.join(this.#opts.confDir, PLUGIN_KUBECONFIG_FILE);
    const text = await pluginKubeconfig(this.#opts.pluginCredentials);
    if ((await fs.readFile(file, "utf8").catch(() => undefined)) === text) return false;
    await writeAtomic(file, text, 0o600);
    this.#opts.log.info({ file: PLUGIN_KUBECONFIG_FILE }, "wrote the plugin's kubeconfig");
    return true;
  }

  /** Takes Ambit out of the primary config and removes the plugin (uninstall). */
  async uninstall(): Promise<void> {
    const primary = primaryConfig(await fs.readdir(this.#opts.confDir).catch(() => [] as string[]));
    if (primary) {
      const file = path.join(this.#opts.confDir, primary);
      const next = withoutAmbit(await fs.readFile(file, "utf8"), primary);
      if (next !== undefined) await writeAtomic(file, next, 0o644);
    }
    // Then what the chain entry named: the kubeconfig, the plugin last.
    if (this.#opts.pluginCredentials) await fs.rm(path.join(this.#opts.confDir, PLUGIN_KUBECONFIG_FILE), { force: true });
    await fs.rm(path.join(this.#opts.binDir, PLUGIN_FILE), { force: true });
    this.#opts.log.info("Ambit removed from the node's CNI configuration");
  }

  /**
   * Installs the binary, then keeps Ambit chained until `signal` aborts: whenever the conf dir changes (another CNI
   * rewrote its config without Ambit, or the first config appeared) and every `rescanMs`. A config that cannot be
   * read is reported and left as it is; the next change is tried again.
   */
  async run(signal: AbortSignal): Promise<void> {
    await this.installBinary();
    let pending = Promise.resolve();
    const check = () => {
      pending = pending.then(async () => {
        let chained = false;
        try {
          // The kubeconfig first: the plugin may run as soon as the chain names it.
          await this.refreshPluginKubeconfig();
          const state = await this.ensureChained();
          chained = state !== "waiting-for-primary";
          if (!chained) this.#opts.log.info({ confDir: this.#opts.confDir }, "waiting for the cluster's CNI to write its network configuration");
        } catch (err) {
          if (!(err instanceof CniConfigError)) throw err;
          this.#opts.log.error({ code: err.code, err: err.message }, "cannot chain Ambit into the CNI configuration");
        }
        await this.#setReady(chained);
      });
      return pending;
    };
    await check();
    // Any other failure of a later check ends run() with it, as one of the first check does (not an unhandled rejection).
    const stopped = Promise.withResolvers<void>();
    signal.addEventListener("abort", () => stopped.resolve(), { once: true });
    const recheck = () => void check().catch(stopped.reject);
    const watcher = watch(this.#opts.confDir, recheck);
    const timer = setInterval(recheck, this.#opts.rescanMs ?? 5_000);
    try {
      await stopped.promise;
    } finally {
      clearInterval(timer);
      watcher.close();
    }
    await pending;
  }

  async #setReady(ready: boolean): Promise<void> {
    const file = this.#opts.readyFile;
    if (!file) return;
    if (ready) await fs.writeFile(file, "");
    else await fs.rm(file, { force: true });
  }
}
