// Entry point of the ambit-cni executable: stdin and CNI_* in, the result or the spec's error JSON out.
import fs from "node:fs";
import { CODES, type NetConf, PluginFailure, log, runPlugin } from "./plugin.ts";

async function main(): Promise<void> {
  const stdin = process.env.CNI_COMMAND === "VERSION" ? "" : fs.readFileSync(0, "utf8");
  try {
    const out = await runPlugin(process.env, stdin);
    if (out !== undefined) process.stdout.write(out + "\n");
  } catch (err) {
    const failure = err instanceof PluginFailure ? err : new PluginFailure(CODES.agentRefused, (err as Error).message);
    let version = "1.1.0";
    try {
      version = (JSON.parse(stdin) as NetConf).cniVersion ?? version;
    } catch {
      // keep the default
    }
    process.stdout.write(JSON.stringify({ cniVersion: version, code: failure.cniCode, msg: failure.message, details: failure.details }) + "\n");
    log("error", failure.message, { code: failure.cniCode, command: process.env.CNI_COMMAND });
    process.exitCode = 1;
  }
}

// main answers the runtime itself; only what fails before it can (reading stdin) is left to report here.
main().catch((err: unknown) => {
  log("error", `ambit-cni failed: ${String(err)}`, { command: process.env.CNI_COMMAND });
  process.exitCode = 1;
});
