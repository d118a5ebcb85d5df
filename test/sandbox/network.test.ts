// Underlay, nodes and pods wired by the real CNI plugins: pods talk same-node and cross-node, DEL is idempotent, teardown leaves nothing.
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadSandboxConfig, sandboxPaths } from "../../sandbox/config.ts";
import {
  type NodeNetwork,
  type PodNetworkRequest,
  addPodNetwork,
  checkPodNetwork,
  nodeConflistPath,
  createNodeNetwork,
  createPodNetns,
  createUnderlay,
  listSandboxNetns,
  netnsNamingWithPrefix,
  pidsInNetns,
  removePodNetwork,
  routeBetweenNodes,
  run,
  teardownAllNetworks,
  writeNodeConflist,
} from "../../sandbox/network/index.ts";
import { startInNetns } from "../support/netns.ts";
import { killAll } from "../support/teardown.ts";
import { ROOT_REQUIRED, isRoot, rootNamespaceSnapshot } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

// A prefix and state directory of this run's own: a developer's running sandbox is never touched.
const naming = netnsNamingWithPrefix(`ambit-dev-t${process.pid}`);
const cfg = loadSandboxConfig({}, { stateDir: `/run/ambit-dev-test-${process.pid}`, nodes: 2 });

const SERVER = `
const [name, port] = process.argv.slice(1);
require("net").createServer((s) => s.end(name + " " + s.remoteAddress + "\\n")).listen(Number(port), "0.0.0.0", () => console.log("ready"));
`;
const CLIENT = `
const [host, port] = process.argv.slice(1);
const s = require("net").connect(Number(port), host);
let data = "";
s.setTimeout(3000, () => { console.log("ERR:timeout"); process.exit(0); });
s.on("data", (d) => (data += d)).on("end", () => console.log(data.trim())).on("error", (e) => console.log("ERR:" + e.code));
`;

function startServer(netns: string, name: string, port: number): Promise<number> {
  return startInNetns(netns, SERVER, [name, String(port)], `server ${name}`);
}

async function tcpRequest(netns: string, host: string, port: number): Promise<string> {
  return (await run(process.execPath, ["-e", CLIENT, host, String(port)], { netns, timeoutMs: 10_000 })).stdout.trim();
}

describeTier(isRoot, ROOT_REQUIRED)("sandbox network: nodes and pods through real CNI plugins", () => {
  let rootBefore: string;
  const nodes: NodeNetwork[] = [];
  const pods: Array<PodNetworkRequest & { ip: string }> = [];
  const serverPids: number[] = [];

  beforeAll(async () => {
    rootBefore = await rootNamespaceSnapshot();
    await teardownAllNetworks(cfg, naming);
    await createUnderlay(naming);
    for (let i = 1; i <= cfg.nodes; i++) nodes.push(await createNodeNetwork(cfg, i, naming));
    await routeBetweenNodes(nodes);
    for (const node of nodes) {
      await writeNodeConflist(cfg, node);
      for (const name of ["a", "b"]) {
        const podUid = randomUUID();
        const req = { node, podUid, namespace: "test", name: `${node.name}-${name}`, netns: naming.pod(podUid) };
        await createPodNetns(req.netns);
        pods.push({ ...req, ip: (await addPodNetwork(cfg, req)).ip });
      }
    }
  });

  afterAll(async () => {
    killAll(serverPids);
    await teardownAllNetworks(cfg, naming);
    await fs.rm(cfg.stateDir, { recursive: true, force: true });
  });

  const pod = (nodeIndex: number, name: string) => {
    const found = pods.find((p) => p.name === `node-${nodeIndex}-${name}`);
    if (!found) throw new Error(`no pod node-${nodeIndex}-${name}`);
    return found;
  };

  it("gives each pod lo and an eth0 address from its node's pod CIDR", async () => {
    expect(pods).toHaveLength(4);
    for (const p of pods) {
      expect(p.ip).toMatch(new RegExp(`^10\\.244\\.${p.node.index}\\.\\d+$`));
      const addrs = (await run("ip", ["-o", "-4", "addr", "show"], { netns: p.netns })).stdout;
      expect(addrs).toMatch(/\blo\s+inet 127\.0\.0\.1\/8/);
      expect(addrs).toContain(`eth0    inet ${p.ip}/`);
      await checkPodNetwork(cfg, p);
    }
    expect(new Set(pods.map((p) => p.ip)).size).toBe(4);
    const conflist = JSON.parse(await fs.readFile(nodeConflistPath(cfg, { name: "node-1" }), "utf8"));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(["ptp"]);
  });

  it("connects pods over TCP on the same node and across nodes, without address translation", async () => {
    const server = pod(1, "a");
    serverPids.push(await startServer(server.netns, "server-1a", 8080));
    serverPids.push(await startServer(pod(2, "b").netns, "server-2b", 8080));

    expect(await tcpRequest(pod(1, "b").netns, server.ip, 8080)).toBe(`server-1a ${pod(1, "b").ip}`);
    expect(await tcpRequest(pod(2, "a").netns, server.ip, 8080)).toBe(`server-1a ${pod(2, "a").ip}`);
    expect(await tcpRequest(pod(1, "a").netns, pod(2, "b").ip, 8080)).toBe(`server-2b ${pod(1, "a").ip}`);
    // The node routes for its pods too (probes run from there).
    expect(await tcpRequest(nodes[1]!.netns, server.ip, 8080)).toBe(`server-1a ${nodes[1]!.ip}`);
  });

  it("releases the address on DEL, tolerates a second DEL and a DEL after the netns is gone", async () => {
    const p = pod(2, "a");
    const ipamFile = path.join(sandboxPaths(cfg.stateDir).cniIpamDir, p.node.name, "ambit-sandbox", p.ip);
    await expect(fs.access(ipamFile)).resolves.toBeUndefined();

    await removePodNetwork(cfg, p);
    await removePodNetwork(cfg, p);

    await expect(fs.access(ipamFile)).rejects.toThrow();
    expect((await run("ip", ["-o", "link", "show"], { netns: p.netns })).stdout).not.toContain("eth0");
    expect((await run("ip", ["-o", "addr", "show"], { netns: p.node.netns })).stdout).not.toMatch(new RegExp(`${p.ip.replace(/\./g, "\\.")}\\b`));

    const again = await addPodNetwork(cfg, p);
    expect(again.ip).toMatch(/^10\.244\.2\.\d+$/);
    await run("ip", ["netns", "delete", p.netns]);
    await removePodNetwork(cfg, p);
    await expect(fs.access(path.join(sandboxPaths(cfg.stateDir).cniIpamDir, p.node.name, "ambit-sandbox", again.ip))).rejects.toThrow();
  });

  it("fails ADD with a CNI error naming the plugin and leaks no address", async () => {
    const node = nodes[0]!;
    const podUid = randomUUID();
    const req = { node, podUid, namespace: "test", name: "bad", netns: naming.pod(podUid) };
    // No netns was created for this pod, so ptp cannot enter it.
    const err = await addPodNetwork(cfg, req).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "AMBIT_E_CNI" });
    const ipam = await fs.readdir(path.join(sandboxPaths(cfg.stateDir).cniIpamDir, node.name, "ambit-sandbox"));
    expect(ipam.filter((f) => f.startsWith("10.244.")).sort()).toEqual(
      pods
        .filter((p) => p.node === node)
        .map((p) => p.ip)
        .sort(),
    );
  });

  it("tears down twice without error and leaves no namespace, process or root-namespace change", async () => {
    const pids = await Promise.all(pods.map((p) => pidsInNetns(p.netns)));
    expect(pids.flat().length).toBeGreaterThan(0);

    await teardownAllNetworks(cfg, naming);
    await teardownAllNetworks(cfg, naming);

    expect(await listSandboxNetns(naming.prefix)).toEqual([]);
    for (const pid of pids.flat()) expect(() => process.kill(pid, 0)).toThrow();
    await expect(fs.access(sandboxPaths(cfg.stateDir).cniIpamDir)).rejects.toThrow();
    expect(await rootNamespaceSnapshot()).toBe(rootBefore);
  });
});
