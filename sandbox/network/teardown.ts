// Removes every network trace of the sandbox: processes in its namespaces, the namespaces, CNI state. Safe after a crash.
import fs from "node:fs/promises";
import { type SandboxConfig, sandboxPaths } from "../config.ts";
import { type NetnsNaming, defaultNetnsNaming, deleteNetns, listSandboxNetns, pidsInNetns } from "./netns.ts";
import { cniResultCacheDir } from "./pods.ts";

const EXIT_WAIT_MS = 3_000;

async function isGone(pid: number): Promise<boolean> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
    // A zombie has left its netns already; its parent reaps it.
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** SIGKILLs (by PID) every process inside the given namespaces and waits briefly for them to exit. */
async function killProcessesIn(namespaces: readonly string[]): Promise<void> {
  const pids = new Set<number>();
  for (const name of namespaces) for (const pid of await pidsInNetns(name).catch(() => [])) if (pid !== process.pid) pids.add(pid);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  const deadline = Date.now() + EXIT_WAIT_MS;
  for (const pid of pids) {
    while (!(await isGone(pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Kills the processes inside the sandbox's namespaces, deletes the namespaces (pods, then nodes, then the
 * underlay; deleting a netns destroys its veth ends) and removes CNI state (conflists, IPAM, result cache).
 * Finds everything by name prefix, so it works twice in a row and after a crash.
 */
export async function teardownAllNetworks(cfg: SandboxConfig, naming: NetnsNaming = defaultNetnsNaming): Promise<void> {
  const all = await listSandboxNetns(naming.prefix);
  await killProcessesIn(all);
  const podPrefix = naming.pod("");
  const pods = all.filter((name) => name.startsWith(podPrefix));
  const others = all.filter((name) => !name.startsWith(podPrefix) && name !== naming.underlay);
  for (const group of [pods, others, all.filter((name) => name === naming.underlay)]) {
    await Promise.all(group.map((name) => deleteNetns(name)));
  }
  const paths = sandboxPaths(cfg.stateDir);
  for (const dir of [paths.cniIpamDir, cniResultCacheDir(cfg)]) await fs.rm(dir, { recursive: true, force: true });
}
