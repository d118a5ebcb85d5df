// Chaining Ambit into a node's primary CNI network configuration, and taking it out again, as pure text transforms.
import { PLUGIN_TYPE } from "../plugin.ts";
import { AmbitError } from "../../contract/errors.ts";
import { CNI_ERRORS } from "../../contract/error-codes.ts";

export class CniConfigError extends AmbitError<typeof CNI_ERRORS.code.config> {
  constructor(message: string) {
    super(CNI_ERRORS.code.config, message);
    this.name = "CniConfigError";
  }
}

/** A network configuration as the CNI spec writes it: a list (.conflist) or a single plugin (.conf, older). */
interface ConfList {
  cniVersion?: string;
  name?: string;
  plugins: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

function parse(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CniConfigError(`${file} is not valid JSON (${(err as Error).message}); fix or remove it, Ambit leaves it as it is`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new CniConfigError(`${file} is not a CNI network configuration (a JSON object)`);
  return value as Record<string, unknown>;
}

/** The file as a plugin list: a `.conf` single plugin becomes a list of one, with its name and version lifted up. */
function asList(conf: Record<string, unknown>, file: string): ConfList {
  if (Array.isArray(conf.plugins)) {
    if (!conf.plugins.every((p) => typeof p === "object" && p !== null && typeof (p as { type?: unknown }).type === "string"))
      throw new CniConfigError(`${file}: every entry of "plugins" needs a "type"`);
    return conf as ConfList;
  }
  if (typeof conf.type !== "string") throw new CniConfigError(`${file} has neither "plugins" nor a plugin "type": not a CNI network configuration`);
  const { cniVersion, name, ...plugin } = conf;
  return {
    ...(cniVersion !== undefined ? { cniVersion: cniVersion as string } : {}),
    ...(name !== undefined ? { name: name as string } : {}),
    plugins: [plugin],
  };
}

const isAmbit = (p: Record<string, unknown>) => p.type === PLUGIN_TYPE;

/**
 * The primary configuration with Ambit chained last (after the main plugin and its chained plugins, so it sees
 * their prevResult), replacing an older Ambit entry in place. Returns the new text, or undefined when it already
 * reads so (nothing to write).
 */
export function withAmbit(text: string, file: string, ambit: Record<string, unknown>): string | undefined {
  const list = asList(parse(text, file), file);
  const others = list.plugins.filter((p) => !isAmbit(p));
  if (others.length === 0) throw new CniConfigError(`${file} chains no plugin but Ambit: Ambit needs the cluster's main CNI plugin before it`);
  const next: ConfList = { ...list, plugins: [...others, { ...ambit, type: PLUGIN_TYPE }] };
  const out = `${JSON.stringify(next, null, 2)}\n`;
  return JSON.stringify(parse(text, file)) === JSON.stringify(next) ? undefined : out;
}

/** The configuration without Ambit (uninstall); undefined when Ambit is not in it. */
export function withoutAmbit(text: string, file: string): string | undefined {
  const conf = parse(text, file);
  if (!Array.isArray(conf.plugins) || !(conf.plugins as Array<Record<string, unknown>>).some(isAmbit)) return undefined;
  return `${JSON.stringify({ ...conf, plugins: (conf.plugins as Array<Record<string, unknown>>).filter((p) => !isAmbit(p)) }, null, 2)}\n`;
}

/** Whether the text chains Ambit (a file another CNI rewrote without it must get it back). */
export function hasAmbit(text: string, file: string): boolean {
  const conf = parse(text, file);
  return Array.isArray(conf.plugins) && (conf.plugins as Array<Record<string, unknown>>).some(isAmbit);
}

/**
 * Which file of the conf dir is the primary network: as the kubelet and container runtimes choose, the first by
 * name among .conflist, .conf and .json files.
 */
export function primaryConfig(names: string[]): string | undefined {
  return names.filter((n) => /\.(conflist|conf|json)$/.test(n) && !n.startsWith(".")).sort()[0];
}
