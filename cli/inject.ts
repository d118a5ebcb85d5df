// `ambit inject -f <file|->`: adds the sidecar to every workload of a multi-document YAML manifest, as `istioctl kube-inject` does.
import fs from "node:fs/promises";
import type { Argv } from "yargs";
import YAML, { type Tags } from "yaml";
import { INJECT_ERRORS } from "../contract/error-codes.ts";
import { InjectError, type InjectionReport, type SidecarInjectionSettings, defaultInjectionSettings, injectSidecar } from "../sidecar/index.ts";
import { CliError } from "./errors.ts";

export interface InjectArgs {
  /** A file, or `-` for stdin. */
  filename: string;
  /** Where the injected YAML goes; stdout when absent. */
  output?: string;
  image?: string;
  trustDomain?: string;
  controllerAddress?: string;
  logLevel?: string;
}

/** What the command reads and writes; tests give their own. */
export interface InjectIo {
  readFile(path: string): Promise<string>;
  readStdin(): Promise<string>;
  writeFile(path: string, text: string): Promise<void>;
  stdout(text: string): void;
  stderr(text: string): void;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export const processIo: InjectIo = {
  readFile: (p) => fs.readFile(p, "utf8"),
  readStdin,
  writeFile: (p, t) => fs.writeFile(p, t),
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/**
 * YAML read and written as kubectl reads it (YAML 1.1: `yes` is true, `0644` octal), except that timestamps and
 * `1:20` stay strings as they do in kubectl's parser. Written in 1.1 too, so every string that a 1.1 reader would
 * take for something else (`"yes"`, `"0644"`, `"2024-01-01"`) is quoted.
 */
const kubectlTags = (tags: Tags) =>
  tags.filter((t) =>
    typeof t === "string" ? !["timestamp", "intTime", "floatTime"].includes(t) : t.tag !== "tag:yaml.org,2002:timestamp" && t.format !== "TIME",
  );

/** Every document of `text` with the sidecar injected, as YAML documents separated by `---`, and what was done to each workload. */
export function injectDocuments(text: string, settings: SidecarInjectionSettings, source = "<stdin>"): { yaml: string; report: InjectionReport[] } {
  const out: string[] = [];
  const report: InjectionReport[] = [];
  YAML.parseAllDocuments(text, { version: "1.1", customTags: kubectlTags }).forEach((doc, i) => {
    const where = `${source}: document ${i + 1}`;
    // The message's first line says what and where (line, column); the rest quotes the source.
    if (doc.errors.length)
      throw new InjectError(INJECT_ERRORS.code.input, `${where}: not valid YAML: ${doc.errors[0]!.message.split("\n")[0]!.replace(/:$/, "")}`);
    let obj: unknown;
    try {
      obj = doc.toJS();
    } catch (err) {
      throw new InjectError(INJECT_ERRORS.code.input, `${where}: ${(err as Error).message}`, { cause: err });
    }
    if (obj === null || obj === undefined) return;
    if (typeof obj !== "object" || Array.isArray(obj))
      throw new InjectError(
        INJECT_ERRORS.code.input,
        `${where} is ${Array.isArray(obj) ? "a list" : `the ${typeof obj} ${JSON.stringify(obj)}`}, not a Kubernetes object`,
      );
    try {
      const result = injectSidecar(obj, settings);
      out.push(YAML.stringify(result.object, { version: "1.1", lineWidth: 0 }));
      report.push(...result.report);
    } catch (err) {
      if (err instanceof InjectError) throw new InjectError(err.code, `${where}: ${err.message}`, { cause: err });
      throw err;
    }
  });
  return { yaml: out.join("---\n"), report };
}

/** One line of the report: `injected deployment/web`, `skipped pod/x: hostNetwork`. */
export const reportLine = (r: InjectionReport) => `${r.outcome} ${r.kind.toLowerCase()}/${r.name}${r.reason ? `: ${r.reason}` : ""}\n`;

export function settingsFrom(args: InjectArgs): SidecarInjectionSettings {
  const s = defaultInjectionSettings();
  const given = { image: args.image, trustDomain: args.trustDomain, controllerAddress: args.controllerAddress };
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    if (!value.trim()) throw new CliError("AMBIT_E_USAGE", `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must not be empty`);
    s[key as keyof typeof given] = value;
  }
  if (args.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(args.logLevel)) throw new CliError("AMBIT_E_USAGE", `--log-level must be one of ${LOG_LEVELS.join(", ")}`);
    s.logLevel = args.logLevel;
  }
  return s;
}

/** Reads, injects, then writes: nothing is written unless every document could be injected. */
export async function runInject(args: InjectArgs, io: InjectIo = processIo): Promise<void> {
  const settings = settingsFrom(args);
  const fromStdin = args.filename === "-";
  let text: string;
  try {
    text = fromStdin ? await io.readStdin() : await io.readFile(args.filename);
  } catch (err) {
    throw new InjectError(INJECT_ERRORS.code.input, `cannot read ${fromStdin ? "stdin" : args.filename}: ${(err as Error).message}`, { cause: err });
  }
  const { yaml, report } = injectDocuments(text, settings, fromStdin ? "<stdin>" : args.filename);
  if (!args.output) io.stdout(yaml);
  else {
    try {
      await io.writeFile(args.output, yaml);
    } catch (err) {
      throw new InjectError(INJECT_ERRORS.code.output, `cannot write ${args.output}: ${(err as Error).message}`, { cause: err });
    }
  }
  for (const r of report) io.stderr(reportLine(r));
}

export function injectCommand(y: Argv): Argv {
  return y.command(
    "inject",
    "add the Ambit sidecar to the workloads of a YAML manifest (no cluster access): `ambit inject -f app.yaml | kubectl apply -f -`",
    (c) =>
      c
        .option("filename", { alias: "f", type: "string", demandOption: true, describe: "manifest to inject (multi-document YAML or JSON); - reads stdin" })
        .option("output", { alias: "o", type: "string", describe: "write the injected manifest to this file instead of stdout" })
        .option("image", { type: "string", describe: `sidecar image (default ${defaultInjectionSettings().image})` })
        .option("trust-domain", { type: "string", describe: `SPIFFE trust domain (default ${defaultInjectionSettings().trustDomain})` })
        .option("controller-address", { type: "string", describe: `the controller's address (default ${defaultInjectionSettings().controllerAddress})` })
        .option("log-level", { type: "string", choices: LOG_LEVELS, describe: `the proxy's log level (default ${defaultInjectionSettings().logLevel})` }),
    (args) => runInject(args as unknown as InjectArgs),
  );
}
