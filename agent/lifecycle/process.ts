// What the agent and waypoint programs share around start and stop: waiting for what they need, and stopping on signals.
import type { Logger } from "pino";

/** Retries with backoff (0.5 s doubling to 15 s) until `step` succeeds, logging each failure with what is awaited. */
export async function retryUntil<T>(log: Logger, what: string, step: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      const delayMs = Math.min(15_000, 500 * 2 ** attempt);
      log.warn({ err: (err as Error).message, retryMs: delayMs }, `waiting for ${what}`);
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

/**
 * Runs `shutdown` on SIGTERM and SIGINT. A step of shutdown that fails would leave the program half stopped (and deaf
 * to further signals): it is logged and the process exits 1.
 */
export function stopOnSignals(log: Logger, shutdown: (signal: string) => Promise<void>): void {
  const failed = (err: unknown) => {
    log.fatal({ err: String(err) }, "shutdown failed");
    process.exit(1);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => void shutdown(signal).catch(failed));
}
