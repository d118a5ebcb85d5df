// Progress messages the supervisor sends to `ambit dev up` over the IPC channel while it starts.

export type ProgressMessage =
  { type: "step"; step: string; ms: number } | { type: "ready"; stateFile: string } | { type: "failed"; error: string; code?: string };

export function sendProgress(message: ProgressMessage): void {
  if (process.send && process.connected) process.send(message);
}

/** Runs one named start-up step, timing it and reporting it to the parent. */
export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await fn();
  sendProgress({ type: "step", step: name, ms: Math.round(performance.now() - started) });
  return result;
}
