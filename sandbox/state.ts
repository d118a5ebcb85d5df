// The sandbox's state file: what `ambit dev up` started, so status/exec/down can find it (and clean it after a crash).
import fs from "node:fs/promises";
import type { NodeNetwork } from "./network/index.ts";
import { sandboxPaths } from "./config.ts";

export interface SandboxState {
  version: 1;
  supervisorPid: number;
  /** Start time of the supervisor in clock ticks since boot (/proc/<pid>/stat field 22): guards against PID reuse. */
  supervisorStartTicks: string;
  startedAt: string;
  apiUrl: string;
  kubeconfig: string;
  nodes: NodeNetwork[];
}

export async function readState(stateDir: string): Promise<SandboxState | undefined> {
  try {
    return JSON.parse(await fs.readFile(sandboxPaths(stateDir).stateFile, "utf8")) as SandboxState;
  } catch {
    return undefined;
  }
}

export async function writeState(stateDir: string, state: SandboxState): Promise<void> {
  const file = sandboxPaths(stateDir).stateFile;
  await fs.writeFile(`${file}.tmp`, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  await fs.rename(`${file}.tmp`, file);
}

/**
 * Start time of a live process in clock ticks since boot, or undefined when it does not exist or has
 * exited (a zombie waiting for whichever ancestor adopted it counts as gone).
 */
export async function processStartTicks(pid: number): Promise<string | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
    // Field 2 (comm) may contain spaces; fields after the last ")" are fixed: state first, start time 20th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

export async function isSupervisorAlive(state: SandboxState): Promise<boolean> {
  return (await processStartTicks(state.supervisorPid)) === state.supervisorStartTicks;
}
