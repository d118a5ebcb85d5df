// The `ambit` command line: argument parsing and error reporting shared by every subcommand.
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { devCommands } from "./dev.ts";

/** Prints an error the way every ambit command does: code first, then what to do. */
function report(err: unknown): void {
  const e = err as Error & { code?: string };
  const code = typeof e.code === "string" && e.code.startsWith("AMBIT_") ? e.code : "AMBIT_E_INTERNAL";
  console.error(`error [${code}]: ${e.message ?? String(err)}`);
  if (code === "AMBIT_E_INTERNAL" && e.stack) console.error(e.stack);
}

export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  try {
    await yargs(argv)
      .scriptName("ambit")
      .command("dev", "run Ambit on a local sandbox cluster made of network namespaces", devCommands)
      .demandCommand(1, "name a command, e.g. `ambit dev up`")
      .strict()
      .help()
      .fail((msg, err) => {
        throw err ?? Object.assign(new Error(msg), { code: "AMBIT_E_USAGE" });
      })
      .parseAsync();
  } catch (err) {
    report(err);
    process.exitCode = (err as { code?: string }).code === "AMBIT_E_SANDBOX_PREREQ" ? 2 : 1;
  }
}
