// Mount points under /run that every sandbox on the machine shares: each is removed only by the last sandbox to go down.
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { SERVICE_ACCOUNT_MOUNT } from "./kubelet/launcher.ts";
import { processStartTicks } from "./state.ts";

/**
 * Machine-wide, not per sandbox: pods of sandboxes with different prefixes bind-mount onto the same directories
 * (the service-account token path, hostPath and projected volume paths), and removing one while another sandbox's
 * pods use it detaches their mounts.
 */
export const SHARED_MOUNTS_DIR = "/run/ambit-sandboxes";
const MOUNT_POINTS = path.join(SHARED_MOUNTS_DIR, "mountpoints");

interface Registration {
  stateDir: string;
  pid: number;
  startTicks: string;
}

const registrationFile = (stateDir: string) => path.join(SHARED_MOUNTS_DIR, `${createHash("sha256").update(stateDir).digest("hex").slice(0, 16)}.json`);

/** The supervisor of a sandbox says it is running (its PID and start time guard against PID reuse after a crash). */
export async function registerSandbox(stateDir: string, pid: number): Promise<void> {
  await fs.mkdir(SHARED_MOUNTS_DIR, { recursive: true, mode: 0o700 });
  const registration: Registration = { stateDir, pid, startTicks: (await processStartTicks(pid)) ?? "" };
  await fs.writeFile(registrationFile(stateDir), JSON.stringify(registration) + "\n", { mode: 0o600 });
  await fs.mkdir(SERVICE_ACCOUNT_MOUNT, { recursive: true });
}

/** A mount point created on the host for a pod's volume: kept until no sandbox runs. */
export async function recordSharedMountPoint(dir: string): Promise<void> {
  await fs.mkdir(SHARED_MOUNTS_DIR, { recursive: true, mode: 0o700 });
  await fs.appendFile(MOUNT_POINTS, `${dir}\n`);
}

/** Sandboxes other than `stateDir` whose supervisor still runs; registrations of crashed ones are dropped. */
async function otherLiveSandboxes(stateDir: string): Promise<string[]> {
  const files = (await fs.readdir(SHARED_MOUNTS_DIR).catch(() => [] as string[])).filter((f) => f.endsWith(".json"));
  const live: string[] = [];
  for (const f of files) {
    const file = path.join(SHARED_MOUNTS_DIR, f);
    const r = JSON.parse(await fs.readFile(file, "utf8").catch(() => "{}")) as Partial<Registration>;
    if (r.stateDir === stateDir) continue;
    if (r.pid !== undefined && r.startTicks && (await processStartTicks(r.pid)) === r.startTicks) live.push(r.stateDir ?? f);
    else await fs.rm(file, { force: true });
  }
  return live;
}

/**
 * `down` of the sandbox at `stateDir`: drops its registration and, when no other sandbox runs, removes every shared
 * mount point (and its parents up to /run when empty). Returns the sandboxes that kept them.
 */
export async function releaseSharedMounts(stateDir: string): Promise<string[]> {
  await fs.rm(registrationFile(stateDir), { force: true });
  const others = await otherLiveSandboxes(stateDir);
  if (others.length > 0) return others;
  const created = (await fs.readFile(MOUNT_POINTS, "utf8").catch(() => "")).split("\n").filter(Boolean);
  for (const point of [...new Set(created), SERVICE_ACCOUNT_MOUNT]) {
    for (let dir = point; dir !== "/run" && dir !== "/var/run" && dir !== "/"; dir = path.dirname(dir)) {
      const removed = await fs.rmdir(dir).then(
        () => true,
        async () => {
          const st = await fs.stat(dir).catch(() => undefined);
          // An empty file created as a mount point for a single-file volume.
          if (st?.isFile() && st.size === 0)
            return fs.rm(dir).then(
              () => true,
              () => false,
            );
          return false;
        },
      );
      if (!removed) break;
    }
  }
  await fs.rm(SHARED_MOUNTS_DIR, { recursive: true, force: true });
  return [];
}
