// Entry point of the sandbox supervisor process, started detached by `ambit dev up`.
import pino from "pino";
import { createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import { loadSandboxConfig, sandboxPaths } from "../config.ts";
import { Supervisor } from "./supervisor.ts";
import { sendProgress } from "./progress.ts";

const cfg = loadSandboxConfig();
const paths = sandboxPaths(cfg.stateDir);
await fs.mkdir(paths.logs, { recursive: true, mode: 0o700 });
const log = pino({ level: process.env.AMBIT_LOG_LEVEL ?? "info", base: { component: "sandbox" } }, createWriteStream(paths.supervisorLog, { flags: "a" }));
const supervisor = new Supervisor(cfg, log);

let stopping: Promise<void> | undefined;
const shutdown = (reason: string, exitCode: number) => {
  stopping ??= (async () => {
    log.info({ reason }, "sandbox stopping");
    await supervisor.stop().catch((err: unknown) => log.error({ err: String(err) }, "teardown failed"));
    log.info("sandbox stopped");
    process.exit(exitCode);
  })();
};
process.on("SIGTERM", () => shutdown("SIGTERM", 0));
process.on("SIGINT", () => shutdown("SIGINT", 0));
process.on("disconnect", () => log.info("parent detached"));

try {
  await supervisor.start();
  log.info("sandbox ready");
  sendProgress({ type: "ready", stateFile: paths.stateFile });
  process.disconnect?.();
} catch (err) {
  const e = err as Error & { code?: string };
  log.error({ err: String(err), stack: e.stack }, "sandbox failed to start");
  sendProgress({ type: "failed", error: e.message, ...(e.code ? { code: e.code } : {}) });
  shutdown("start-up failed", 1);
}
