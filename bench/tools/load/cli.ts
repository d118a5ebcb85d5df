// Command-line parsing for the load tools: `--name value` pairs, `host:port` targets.

export function parseTarget(target: string): { host: string; port: number } {
  const colon = target.lastIndexOf(":");
  const host = colon > 0 ? target.slice(0, colon).replace(/^\[(.*)\]$/, "$1") : target;
  const port = Number(target.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad target ${JSON.stringify(target)}: want host:port`);
  return { host, port };
}

export interface CliArgs {
  /** The flags given, without their leading `--`. */
  given: Set<string>;
  get(name: string, fallback: string): string;
  number(name: string, fallback: number): number;
}

/** `--name value` pairs; a flag not in `known` (or without a value) is an error. */
export function parseCliArgs(argv: string[], known: readonly string[]): CliArgs {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const name = flag.startsWith("--") ? flag.slice(2) : "";
    if (!known.includes(name)) throw new Error(`unknown argument ${JSON.stringify(flag)}; known: ${known.map((k) => `--${k}`).join(", ")}`);
    if (argv[i + 1] === undefined) throw new Error(`${flag} needs a value`);
    values.set(name, argv[i + 1]!);
  }
  return {
    given: new Set(values.keys()),
    get: (name, fallback) => values.get(name) ?? fallback,
    number: (name, fallback) => {
      const v = values.get(name);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!Number.isFinite(n)) throw new Error(`--${name} wants a number, got ${JSON.stringify(v)}`);
      return n;
    },
  };
}
