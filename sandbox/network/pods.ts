// Pod networking as a container runtime does it: a conflist per node on disk, run through the CNI runner into the pod's netns.
import fs from "node:fs/promises";
import path from "node:path";
import fsSync from "node:fs";
import { NODE_CNI_BIN_DIR, NODE_CNI_CONF_DIR, NODE_HOST_DIRS, type SandboxConfig, nodeRootDir, sandboxPaths } from "../config.ts";
import { recordSharedMountPoint } from "../shared-mounts.ts";
import { type CniNetworkList, type CniPluginConfig, type CniResult, type CniRuntimeConf, CniError, CniRunner, readNetworkList } from "./cni.ts";
import { netnsPath } from "../../host/exec.ts";
import type { NodeNetwork } from "./topology.ts";

export const POD_NETWORK_NAME = "ambit-sandbox";
const CONFLIST_FILE = "10-ambit-sandbox.conflist";
const POD_INTERFACE = "eth0";

/** containerd attaches loopback as its own single-plugin network before the configured one. */
const LOOPBACK_NETWORK: CniNetworkList = { cniVersion: "1.0.0", name: "cni-loopback", plugins: [{ type: "loopback" }] };

export interface PodNetworkRequest {
  node: NodeNetwork;
  podUid: string;
  namespace: string;
  name: string;
  /** Name of the pod's netns (created beforehand with createPodNetns). */
  netns: string;
}

export interface PodNetworkOptions {
  /** Plugin directories; default the node's CNI bin dir (where an installer puts its plugin) and the reference plugins'. */
  binDirs?: string[];
}

/** The node's CNI config dir, as containerd's conf_dir (a CNI installer edits the files in it). */
export function nodeCniConfDir(cfg: SandboxConfig, node: Pick<NodeNetwork, "name">): string {
  return path.join(nodeRootDir(cfg.stateDir, node.name), NODE_CNI_CONF_DIR);
}

/** The node's CNI plugin dir, as containerd's bin_dir. */
export function nodeCniBinDir(cfg: SandboxConfig, node: Pick<NodeNetwork, "name">): string {
  return path.join(nodeRootDir(cfg.stateDir, node.name), NODE_CNI_BIN_DIR);
}

/** The primary network of the node: as libcni picks it, the first .conflist by name in the conf dir. */
export function nodeConflistPath(cfg: SandboxConfig, node: Pick<NodeNetwork, "name">): string {
  const dir = nodeCniConfDir(cfg, node);
  const names = (() => {
    try {
      return fsSync.readdirSync(dir);
    } catch {
      return [];
    }
  })();
  const primary = names.filter((n) => /\.(conflist|conf|json)$/.test(n) && !n.startsWith(".")).sort()[0];
  return path.join(dir, primary ?? CONFLIST_FILE);
}

/** libcni's result cache (`/var/lib/cni/results` on a real node). */
export function cniResultCacheDir(cfg: SandboxConfig): string {
  return path.join(cfg.stateDir, "cni", "results");
}

/**
 * Writes the node's conflist: ptp (a veth per pod, routed through the node) with host-local IPAM over
 * the node's pod CIDR, followed by `extraPlugins` (e.g. Ambit's chained plugin). Returns its path.
 */
export async function writeNodeConflist(cfg: SandboxConfig, node: NodeNetwork, extraPlugins: readonly CniPluginConfig[] = []): Promise<string> {
  const list: CniNetworkList = {
    cniVersion: "1.0.0",
    name: POD_NETWORK_NAME,
    plugins: [
      {
        type: "ptp",
        ipMasq: false,
        mtu: 1500,
        ipam: {
          type: "host-local",
          // ptp puts the gateway address on every host-side veth (as a /32) and routes the pod's /32 to it.
          ranges: [[{ subnet: node.podCidr, gateway: `${cfg.podCidrPrefix}.${node.index}.1` }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: path.join(sandboxPaths(cfg.stateDir).cniIpamDir, node.name),
        },
      },
      ...extraPlugins,
    ],
  };
  const file = path.join(nodeCniConfDir(cfg, node), CONFLIST_FILE);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.mkdir(nodeCniBinDir(cfg, node), { recursive: true });
  await fs.writeFile(`${file}.tmp`, JSON.stringify(list, null, 2) + "\n");
  await fs.rename(`${file}.tmp`, file);
  return file;
}

async function runnerFor(cfg: SandboxConfig, req: PodNetworkRequest, opts: PodNetworkOptions): Promise<CniRunner> {
  const root = nodeRootDir(cfg.stateDir, req.node.name);
  // Mount points on this machine for the node's dirs, shared by all sandboxes (the last one down removes them).
  for (const dir of NODE_HOST_DIRS) {
    if (!fsSync.existsSync(dir)) {
      await fs.mkdir(dir, { recursive: true });
      await recordSharedMountPoint(dir);
    }
    await fs.mkdir(path.join(root, dir), { recursive: true });
  }
  // Plugins run in the node netns and see the node's dirs at their host paths, as a runtime runs them on the host:
  // ptp puts the host end of the veth and its routes there, ambit-cni dials the agent's socket it is configured with.
  return new CniRunner({
    binDirs: opts.binDirs ?? [nodeCniBinDir(cfg, req.node), cfg.cniBinDir],
    cacheDir: cniResultCacheDir(cfg),
    pluginNetns: req.node.netns,
    hostMounts: NODE_HOST_DIRS.map((dir) => ({ source: path.join(root, dir), target: dir })),
  });
}

export function podRuntimeConf(req: PodNetworkRequest, ifName: string): CniRuntimeConf {
  return {
    containerId: req.podUid,
    netns: netnsPath(req.netns),
    ifName,
    // IgnoreUnknown first, as containerd sends it: the reference plugins reject unknown keys otherwise.
    args: [
      ["IgnoreUnknown", "1"],
      ["K8S_POD_NAMESPACE", req.namespace],
      ["K8S_POD_NAME", req.name],
      ["K8S_POD_INFRA_CONTAINER_ID", req.podUid],
      ["K8S_POD_UID", req.podUid],
    ],
  };
}

/** The pod's IPv4 address from a CNI 1.0 result: the first address on an interface inside the sandbox. */
export function podIpFromResult(result: CniResult): string | undefined {
  const interfaces = (result.interfaces ?? []) as Array<{ sandbox?: string }>;
  const ips = (result.ips ?? []) as Array<{ address?: string; interface?: number }>;
  const inSandbox = ips.filter((entry) => entry.interface !== undefined && interfaces[entry.interface]?.sandbox);
  const address = [...inSandbox, ...ips].map((entry) => entry.address ?? "").find((a) => /^\d+\.\d+\.\d+\.\d+\//.test(a));
  return address?.split("/")[0];
}

/** CNI ADD for a pod (loopback, then the node's conflist); on failure releases what was set up and rethrows. */
export async function addPodNetwork(cfg: SandboxConfig, req: PodNetworkRequest, opts: PodNetworkOptions = {}): Promise<{ ip: string; result: CniResult }> {
  const runner = await runnerFor(cfg, req, opts);
  const list = await readNetworkList(nodeConflistPath(cfg, req.node));
  try {
    await runner.add(LOOPBACK_NETWORK, podRuntimeConf(req, "lo"));
    const result = await runner.add(list, podRuntimeConf(req, POD_INTERFACE));
    const ip = podIpFromResult(result);
    if (!ip) throw new CniError(list.plugins.at(-1)?.type ?? "", `ADD result has no IPv4 address for ${POD_INTERFACE}: ${JSON.stringify(result)}`);
    return { ip, result };
  } catch (err) {
    // As the kubelet's runtime does: a failed ADD is followed by DEL so IPAM does not leak the address.
    await removePodNetwork(cfg, req, opts).catch(() => {});
    throw err;
  }
}

/** CNI CHECK of a pod's attachment against its cached ADD result. */
export async function checkPodNetwork(cfg: SandboxConfig, req: PodNetworkRequest, opts: PodNetworkOptions = {}): Promise<void> {
  await (await runnerFor(cfg, req, opts)).check(await readNetworkList(nodeConflistPath(cfg, req.node)), podRuntimeConf(req, POD_INTERFACE));
}

/**
 * CNI DEL for a pod (conflist in reverse, then loopback). Idempotent, and works after the pod's netns
 * is gone (the address is still released) or after the conflist was removed (the cached copy is used).
 */
export async function removePodNetwork(cfg: SandboxConfig, req: PodNetworkRequest, opts: PodNetworkOptions = {}): Promise<void> {
  const runner = await runnerFor(cfg, req, opts);
  const rt = podRuntimeConf(req, POD_INTERFACE);
  let list: CniNetworkList | undefined;
  try {
    list = await readNetworkList(nodeConflistPath(cfg, req.node));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    list = (await runner.cached(POD_NETWORK_NAME, rt))?.config;
  }
  if (list) await runner.del(list, rt);
  await runner.del(LOOPBACK_NETWORK, podRuntimeConf(req, "lo"));
}
