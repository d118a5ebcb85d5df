// Each node's own netns directory, as a container runtime keeps /var/run/netns on a real node: its pods' netns only.
import fs from "node:fs/promises";
import path from "node:path";
import { run } from "../../host/exec.ts";
import { netnsPath } from "../../host/exec.ts";

/**
 * `<nodeRoot>/var/run/netns`: the agent's hostPath /var/run/netns resolves here. It is a shared mount (as `ip netns`
 * makes /run/netns), so a pod netns bound into it later reaches the agent's mount namespace (HostToContainer).
 */
export async function prepareNodeNetnsDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  if ((await mountPoints()).includes(dir)) return;
  await run("mount", ["--bind", dir, dir]);
  await run("mount", ["--make-shared", dir]);
}

/** Binds the pod's netns (a sandbox-wide `ip netns` name) into the node's directory under the same name. */
export async function exposePodNetns(dir: string, name: string): Promise<void> {
  const file = path.join(dir, name);
  await fs.writeFile(file, "", { flag: "a", mode: 0o444 });
  await run("mount", ["--bind", netnsPath(name), file]);
}

export async function unexposePodNetns(dir: string, name: string): Promise<void> {
  const file = path.join(dir, name);
  if ((await mountPoints()).includes(file)) await run("umount", [file]);
  await fs.rm(file, { force: true });
}

/** Mount points of this mount namespace, from /proc/self/mountinfo (octal escapes decoded). */
async function mountPoints(): Promise<string[]> {
  const info = await fs.readFile("/proc/self/mountinfo", "utf8");
  return info
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(" ")[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Unmounts everything mounted at or under `root`, deepest first: `down` must before it can remove the directory. */
export async function unmountAllUnder(root: string): Promise<void> {
  const under = (await mountPoints()).filter((p) => p === root || p.startsWith(`${root}/`)).sort((a, b) => b.length - a.length);
  for (const point of under) await run("umount", ["-l", point]).catch(() => undefined);
}
