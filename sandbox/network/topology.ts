// The cluster's wiring: an underlay bridge in its own netns, and one netns per node attached to it by a veth pair.
import { type SandboxConfig, nodeName } from "../config.ts";
import { run } from "../../host/exec.ts";
import { type NetnsNaming, createNetns, defaultNetnsNaming } from "./netns.ts";

/** A node as the rest of the sandbox sees it; stored in state.json. */
export interface NodeNetwork {
  /** `node-<index>`. */
  name: string;
  /** 1-based. */
  index: number;
  /** Name of the node's netns. */
  netns: string;
  /** The node's underlay address (no prefix length). */
  ip: string;
  /** Node-side interface on the underlay. */
  interface: string;
  /** Pods on this node get addresses from this range. */
  podCidr: string;
}

const UNDERLAY_BRIDGE = "br0";
const NODE_INTERFACE = "eth0";

/** `ip -batch -` runs many link/addr/route commands with one process per namespace. */
async function ipBatch(netns: string, commands: string[]): Promise<void> {
  await run("ip", ["-batch", "-"], { netns, input: commands.join("\n") + "\n" });
}

/** Creates the underlay netns with its bridge. Fails if it already exists: tear down first. */
export async function createUnderlay(naming: NetnsNaming = defaultNetnsNaming): Promise<void> {
  await createNetns(naming.underlay);
  await ipBatch(naming.underlay, ["link set lo up", `link add ${UNDERLAY_BRIDGE} type bridge`, `link set ${UNDERLAY_BRIDGE} up`]);
}

/**
 * Creates node `index`'s netns, plugs it into the underlay and makes it a router for its pods.
 * Everything happens inside the sandbox's namespaces: the root namespace gets no link, route or rule.
 */
export async function createNodeNetwork(cfg: SandboxConfig, index: number, naming: NetnsNaming = defaultNetnsNaming): Promise<NodeNetwork> {
  const name = nodeName(index);
  const node: NodeNetwork = {
    name,
    index,
    netns: naming.node(name),
    ip: `${cfg.underlayPrefix}.${10 + index}`,
    interface: NODE_INTERFACE,
    podCidr: `${cfg.podCidrPrefix}.${index}.0/24`,
  };
  const underlayPort = `n${index}`;
  await createNetns(node.netns);
  // Created in the underlay with its peer sent straight into the node, so no end ever exists in the root netns.
  await ipBatch(naming.underlay, [
    `link add ${underlayPort} type veth peer name ${NODE_INTERFACE} netns ${node.netns}`,
    `link set ${underlayPort} master ${UNDERLAY_BRIDGE}`,
    `link set ${underlayPort} up`,
  ]);
  await ipBatch(node.netns, [
    "link set lo up",
    `addr add ${node.ip}/${cfg.underlayPrefixLength} dev ${NODE_INTERFACE}`,
    `link set ${NODE_INTERFACE} up`,
    // Without a route, processes in the node netns could not even start a connection to a ClusterIP:
    // the route lookup happens before the nat OUTPUT chain rewrites the destination.
    `route add ${cfg.serviceCidr} dev ${NODE_INTERFACE} src ${node.ip}`,
  ]);
  // Per-netns sysctls: sysctl writes /proc/sys/net of the netns it runs in. rp_filter off because
  // hairpin and cross-node replies arrive on interfaces other than the reverse route's.
  await run("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"], { netns: node.netns });
  return node;
}

/** Gives every node a route to every other node's pod CIDR through that node's underlay address. */
export async function routeBetweenNodes(nodes: readonly NodeNetwork[]): Promise<void> {
  await Promise.all(
    nodes.map((node) => {
      const routes = nodes.filter((other) => other !== node).map((other) => `route replace ${other.podCidr} via ${other.ip} dev ${node.interface}`);
      return routes.length === 0 ? Promise.resolve() : ipBatch(node.netns, routes);
    }),
  );
}
