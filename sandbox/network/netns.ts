// Named network namespaces: create, delete, list the sandbox's own, and find the processes inside one.
import fs from "node:fs/promises";
import { NAME_PREFIX, netnsNames } from "../config.ts";
import { NETNS_DIR, netnsPath, run } from "../../host/exec.ts";

/**
 * How the sandbox names its namespaces. The default is config.ts's; tests pass another prefix so a
 * test run and a running sandbox never touch each other's namespaces.
 */
export interface NetnsNaming {
  prefix: string;
  underlay: string;
  node(nodeName: string): string;
  pod(podUid: string): string;
}

export const defaultNetnsNaming: NetnsNaming = { prefix: NAME_PREFIX, ...netnsNames };

/** The same naming scheme as config.ts's `netnsNames`, under another prefix. */
export function netnsNamingWithPrefix(prefix: string): NetnsNaming {
  return {
    prefix,
    underlay: `${prefix}-underlay`,
    node: (nodeName) => `${prefix}-${nodeName}`,
    pod: (podUid) => `${prefix}-pod-${podUid.slice(0, 8)}`,
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** Creates a named netns (it must not exist yet) and returns its path. */
export async function createNetns(name: string): Promise<string> {
  await run("ip", ["netns", "add", name]);
  return netnsPath(name);
}

/** Creates an empty netns for a pod; CNI ADD then gives it lo and eth0. */
export async function createPodNetns(name: string): Promise<string> {
  return createNetns(name);
}

/** Deletes a named netns; does nothing when it is already gone. */
export async function deleteNetns(name: string): Promise<void> {
  if (!(await exists(netnsPath(name)))) return;
  try {
    await run("ip", ["netns", "delete", name]);
  } catch (err) {
    // Lost a race with another deleter.
    if (await exists(netnsPath(name))) throw err;
  }
}

/** Names of the named namespaces that belong to the sandbox (start with `<prefix>-`). */
export async function listSandboxNetns(prefix: string = NAME_PREFIX): Promise<string[]> {
  let entries: string[];
  try {
    entries = await fs.readdir(NETNS_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return entries.filter((name) => name.startsWith(`${prefix}-`)).sort();
}

/** PIDs of the processes whose network namespace is this one (`ip netns pids`); empty when it is gone. */
export async function pidsInNetns(name: string): Promise<number[]> {
  if (!(await exists(netnsPath(name)))) return [];
  const { stdout } = await run("ip", ["netns", "pids", name]);
  return stdout
    .split("\n")
    .filter((line) => /^\d+$/.test(line.trim()))
    .map(Number);
}
