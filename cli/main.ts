// The `ambit` command line: argument parsing and error reporting shared by every subcommand.
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { devCommands } from "./dev.ts";
import { CliError, exitCodeFor } from "./errors.ts";
import { CLI_ERRORS } from "../contract/error-codes.ts";

/** Prints an error the way every ambit command does: code first, then what to do. */
function report(err: unknown): void {
  const e = err as Error & { code?: string };
  const code = typeof e.code === "string" && e.code.startsWith("AMBIT_") ? e.code : "AMBIT_E_INTERNAL";
  console.error(`error [${code}]: ${e.message ?? String(err)}`);
  if (code === "AMBIT_E_INTERNAL" && e.stack) console.error(e.stack);
}

/**
 * `ambit dev exec <pod> -- <cmd...>`: everything after the pod belongs to the command, options included.
 * Split it off before yargs sees it (npx may already have eaten the `--`).
 */
function splitExec(argv: string[]): { argv: string[]; command?: string[] } {
  if (argv[0] !== "dev" || argv[1] !== "exec") return { argv };
  const podIndex = argv.findIndex((a, i) => i >= 2 && !a.startsWith("-"));
  if (podIndex < 0) return { argv };
  const rest = argv.slice(podIndex + 1);
  return { argv: argv.slice(0, podIndex + 1), command: rest[0] === "--" ? rest.slice(1) : rest };
}

/**
 * The commands an operator runs against a cluster with the mesh installed (through the Kubernetes API), and `inject`,
 * which needs none. Loaded only when the command line may name one: their Kubernetes client costs half a second at
 * start, which every `ambit dev exec` (the sandbox's most frequent command, hundreds of times per test run) paid for
 * nothing.
 */
async function operatorCommands(y: Argv): Promise<Argv> {
  const [{ checkCommand }, { configCommands }, { explainCommand }, { enrollCommands }, { injectCommand }, { statusCommand }, { tunnelsCommand }] =
    await Promise.all([
      import("./check.ts"),
      import("./config.ts"),
      import("./explain.ts"),
      import("./enroll.ts"),
      import("./inject.ts"),
      import("./status.ts"),
      import("./tunnels.ts"),
    ]);
  return injectCommand(explainCommand(checkCommand(enrollCommands(statusCommand(configCommands(tunnelsCommand(y)))))));
}

export async function main(rawArgv: string[] = hideBin(process.argv), scriptName = "ambit"): Promise<void> {
  const { argv, command } = splitExec(rawArgv);
  try {
    const parser = yargs(argv)
      .scriptName(scriptName)
      .command("dev", "run Ambit on a local sandbox cluster made of network namespaces", (y) => devCommands(y, command ?? []));
    // `ambit dev ...` names no operator command: yargs is not told of them (`ambit --help` still lists them all).
    const full = argv[0] === "dev" ? parser : await operatorCommands(parser);
    await full
      .demandCommand(1, "name a command, e.g. `ambit dev up`")
      .strict()
      .help()
      .fail((msg, err) => {
        throw err ?? new CliError(CLI_ERRORS.code.usage, msg);
      })
      .parseAsync();
  } catch (err) {
    report(err);
    const code = (err as { code?: string }).code;
    process.exitCode = code === "AMBIT_E_SANDBOX_PREREQ" ? 2 : exitCodeFor(code);
  }
}
