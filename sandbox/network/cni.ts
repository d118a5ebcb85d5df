// A CNI runtime with libcni's semantics: runs a network list's plugins (ADD in order, CHECK, DEL in reverse) and caches results.
import fs from "node:fs/promises";
import path from "node:path";
import { SandboxCommandError, run } from "../../host/exec.ts";
import { AmbitError } from "../../contract/errors.ts";
import { SANDBOX_ERRORS } from "../../contract/error-codes.ts";

/** One entry of a conflist's `plugins`: `type` names the binary, the rest is the plugin's own config. */
export interface CniPluginConfig {
  type: string;
  [key: string]: unknown;
}

/** A parsed `.conflist` file. */
export interface CniNetworkList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: CniPluginConfig[];
}

/** Per-attachment arguments, what libcni calls RuntimeConf. */
export interface CniRuntimeConf {
  containerId: string;
  /** Path of the container's netns file. */
  netns: string;
  ifName: string;
  /** Key/value pairs passed in CNI_ARGS, in this order. */
  args: ReadonlyArray<readonly [string, string]>;
}

export interface CniRunnerOptions {
  /** Directories searched, in order, for plugin binaries; also passed as CNI_PATH. */
  binDirs: string[];
  /** Where ADD results are cached for DEL and CHECK. */
  cacheDir: string;
  /** Netns the plugin processes run in (the "host" side of the attachment); default: the caller's. */
  pluginNetns?: string;
  timeoutMs?: number;
  /**
   * Directories bound over their host paths, in a mount namespace of the plugin's own, before it runs: a sandbox node's
   * dirs (its agent's socket, its CNI dirs) at the paths plugins on a real node see them. Each target must exist.
   */
  hostMounts?: ReadonlyArray<{ source: string; target: string }>;
}

// $1.. are (source, target) pairs up to "--", then the plugin. A slave mount namespace: the binds never reach the host.
const HOST_VIEW_SHELL = 'while [ "$1" != "--" ]; do mount --rbind "$1" "$2"; shift 2; done; shift; exec "$@"';

/** A plugin's result object, passed through untouched (in the cniVersion the plugin answered with). */
export type CniResult = Record<string, unknown>;

/** A CNI operation failed; `cniCode`/`details` come from the plugin's error JSON when it printed one. */
export class CniError extends AmbitError<typeof SANDBOX_ERRORS.code.cni> {
  readonly plugin: string;
  readonly cniCode: number | undefined;
  readonly details: string | undefined;

  constructor(plugin: string, message: string, opts: { cniCode?: number; details?: string; cause?: unknown } = {}) {
    super(SANDBOX_ERRORS.code.cni, `CNI plugin "${plugin}": ${message}`, { cause: opts.cause });
    this.name = "CniError";
    this.plugin = plugin;
    this.cniCode = opts.cniCode;
    this.details = opts.details;
  }
}

type CniCommand = "ADD" | "CHECK" | "DEL";

interface CacheEntry {
  kind: "cniCacheV1";
  containerId: string;
  ifName: string;
  networkName: string;
  config: CniNetworkList;
  cniArgs: ReadonlyArray<readonly [string, string]>;
  result: CniResult;
}

/** Parses and validates conflist text; `source` names it in errors. */
export function parseNetworkList(text: string, source: string): CniNetworkList {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CniError("", `${source} is not valid JSON`, { cause: err });
  }
  const list = parsed as Partial<CniNetworkList>;
  if (typeof list.name !== "string" || list.name === "") throw new CniError("", `${source} has no "name"`);
  if (typeof list.cniVersion !== "string") throw new CniError("", `${source} has no "cniVersion"`);
  if (!Array.isArray(list.plugins) || list.plugins.length === 0) throw new CniError("", `${source} has no "plugins"`);
  for (const plugin of list.plugins) {
    if (typeof plugin?.type !== "string" || plugin.type === "") throw new CniError("", `${source} has a plugin without "type"`);
  }
  return list as CniNetworkList;
}

export async function readNetworkList(file: string): Promise<CniNetworkList> {
  return parseNetworkList(await fs.readFile(file, "utf8"), file);
}

/** `KEY=value;KEY=value`, as libcni builds CNI_ARGS. */
export function formatCniArgs(args: ReadonlyArray<readonly [string, string]>): string {
  return args.map(([key, value]) => `${key}=${value}`).join(";");
}

const versionAtLeast = (version: string, minimum: string): boolean => {
  const parts = (v: string) => v.split(".").map(Number);
  const [a, b] = [parts(version), parts(minimum)];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff > 0;
  }
  return true;
};

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function validateRuntime(rt: CniRuntimeConf): void {
  if (!CONTAINER_ID.test(rt.containerId)) throw new CniError("", `invalid container id "${rt.containerId}"`);
  if (rt.ifName === "" || rt.ifName.length > 15 || /[/:\s]/.test(rt.ifName) || rt.ifName === "." || rt.ifName === "..") {
    throw new CniError("", `invalid interface name "${rt.ifName}"`);
  }
}

export class CniRunner {
  readonly #opts: CniRunnerOptions;

  constructor(opts: CniRunnerOptions) {
    this.#opts = opts;
  }

  /** Runs ADD for every plugin in order, each getting the previous one's result; caches and returns the last result. */
  async add(list: CniNetworkList, rt: CniRuntimeConf): Promise<CniResult> {
    validateRuntime(rt);
    let prevResult: CniResult | undefined;
    for (const plugin of list.plugins) {
      prevResult = await this.#exec("ADD", list, plugin, rt, prevResult);
      if (prevResult === undefined) throw new CniError(plugin.type, "ADD printed no result");
    }
    const result = prevResult as CniResult;
    const entry: CacheEntry = {
      kind: "cniCacheV1",
      containerId: rt.containerId,
      ifName: rt.ifName,
      networkName: list.name,
      config: list,
      cniArgs: rt.args,
      result,
    };
    const file = this.#cacheFile(list.name, rt);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await fs.writeFile(`${file}.tmp`, JSON.stringify(entry) + "\n", { mode: 0o600 });
    await fs.rename(`${file}.tmp`, file);
    return result;
  }

  /** Runs CHECK for every plugin in order against the cached ADD result. */
  async check(list: CniNetworkList, rt: CniRuntimeConf): Promise<void> {
    validateRuntime(rt);
    if (!versionAtLeast(list.cniVersion, "0.4.0") || list.disableCheck) return;
    const cached = (await this.cached(list.name, rt))?.result;
    if (!cached) throw new CniError(list.plugins[0]?.type ?? "", `no cached result for ${list.name}/${rt.containerId}/${rt.ifName}: was ADD run?`);
    for (const plugin of list.plugins) await this.#exec("CHECK", list, plugin, rt, cached);
  }

  /**
   * Runs DEL for every plugin in reverse order, each getting the cached ADD result, then drops the cache.
   * Safe to repeat: the reference plugins treat a missing interface, address or netns as already deleted.
   */
  async del(list: CniNetworkList, rt: CniRuntimeConf): Promise<void> {
    validateRuntime(rt);
    const cached = versionAtLeast(list.cniVersion, "0.4.0") ? (await this.cached(list.name, rt))?.result : undefined;
    for (const plugin of [...list.plugins].reverse()) await this.#exec("DEL", list, plugin, rt, cached);
    await fs.rm(this.#cacheFile(list.name, rt), { force: true });
  }

  /** What the last successful ADD of this attachment ran with and returned, if it is cached. */
  async cached(networkName: string, rt: CniRuntimeConf): Promise<Pick<CacheEntry, "config" | "result"> | undefined> {
    try {
      return JSON.parse(await fs.readFile(this.#cacheFile(networkName, rt), "utf8")) as CacheEntry;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  #cacheFile(networkName: string, rt: CniRuntimeConf): string {
    return path.join(this.#opts.cacheDir, `${networkName}-${rt.containerId}-${rt.ifName}.json`);
  }

  async #findPlugin(type: string): Promise<string> {
    if (type.includes("/")) throw new CniError(type, "plugin type must be a file name");
    for (const dir of this.#opts.binDirs) {
      const candidate = path.join(dir, type);
      try {
        await fs.access(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // not in this directory
      }
    }
    throw new CniError(type, `failed to find plugin in path [${this.#opts.binDirs.join(" ")}]`);
  }

  async #exec(
    command: CniCommand,
    list: CniNetworkList,
    plugin: CniPluginConfig,
    rt: CniRuntimeConf,
    prevResult: CniResult | undefined,
  ): Promise<CniResult | undefined> {
    const binary = await this.#findPlugin(plugin.type);
    const stdin: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
    if (prevResult !== undefined) stdin.prevResult = prevResult;
    const env: Record<string, string> = {};
    // Inherit everything (plugins such as ptp with ipMasq run iptables from PATH) except stale CNI_ variables.
    for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith("CNI_")) env[key] = value;
    Object.assign(env, {
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifName,
      CNI_ARGS: formatCniArgs(rt.args),
      CNI_PATH: this.#opts.binDirs.join(":"),
    });
    let stdout: string;
    try {
      const mounts = this.#opts.hostMounts ?? [];
      const [file, args] =
        mounts.length === 0
          ? [binary, []]
          : [
              "unshare",
              [
                "--mount",
                "--propagation",
                "slave",
                "--",
                "/bin/sh",
                "-c",
                HOST_VIEW_SHELL,
                "cni-host-view",
                ...mounts.flatMap((m) => [m.source, m.target]),
                "--",
                binary,
              ],
            ];
      ({ stdout } = await run(file, args, {
        input: JSON.stringify(stdin),
        env,
        cleanEnv: true,
        netns: this.#opts.pluginNetns,
        timeoutMs: this.#opts.timeoutMs,
      }));
    } catch (err) {
      throw pluginFailure(plugin.type, command, err);
    }
    if (stdout.trim() === "") return undefined;
    try {
      return JSON.parse(stdout) as CniResult;
    } catch (err) {
      throw new CniError(plugin.type, `${command} printed a result that is not JSON: ${stdout.slice(0, 200)}`, { cause: err });
    }
  }
}

/** Turns a failed plugin run into a CniError, using the error JSON ({code, msg, details}) the plugin printed on stdout. */
function pluginFailure(type: string, command: CniCommand, err: unknown): CniError {
  if (!(err instanceof SandboxCommandError)) return new CniError(type, `${command} failed: ${String(err)}`, { cause: err });
  try {
    const parsed = JSON.parse(err.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof parsed.msg === "string") {
      const cniCode = typeof parsed.code === "number" ? parsed.code : undefined;
      const details = typeof parsed.details === "string" && parsed.details !== "" ? parsed.details : undefined;
      return new CniError(type, `${command} failed (code ${cniCode ?? "?"}): ${parsed.msg}${details ? `; ${details}` : ""}`, { cniCode, details, cause: err });
    }
  } catch {
    // not error JSON: fall through to stderr
  }
  const output = err.stderr.trim() || err.stdout.trim() || err.message;
  return new CniError(type, `${command} failed (exit ${err.exitCode ?? "none"}): ${output}`, { cause: err });
}
