// ClusterIP Services through the sandbox kube-proxy: DNAT same-node and cross-node, hairpin, balancing, rejects, UDP.
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadSandboxConfig } from "../../sandbox/config.ts";
import { type KubeEndpointSlice, type KubeService, KubeProxy } from "../../sandbox/kubeproxy/index.ts";
import {
  type NodeNetwork,
  addPodNetwork,
  createNodeNetwork,
  createPodNetns,
  createUnderlay,
  netnsNamingWithPrefix,
  routeBetweenNodes,
  run,
  teardownAllNetworks,
  writeNodeConflist,
} from "../../sandbox/network/index.ts";
import { startInNetns } from "../support/netns.ts";
import { killAll } from "../support/teardown.ts";
import { ROOT_REQUIRED, isRoot } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

// A prefix and state directory of this run's own: a developer's running sandbox is never touched.
const naming = netnsNamingWithPrefix(`ambit-dev-k${process.pid}`);
const cfg = loadSandboxConfig({}, { stateDir: `/run/ambit-dev-test-k${process.pid}`, nodes: 2 });

// Answers "<name> <peer address>" over TCP and UDP on the same port.
const SERVER = `
const [name, port] = process.argv.slice(1);
let pending = 2;
const up = () => --pending === 0 && console.log("ready");
require("net").createServer((s) => s.end(name + " " + s.remoteAddress + "\\n")).listen(Number(port), "0.0.0.0", up);
const udp = require("dgram").createSocket("udp4");
udp.on("message", (_m, r) => udp.send(name + " " + r.address, r.port, r.address)).bind(Number(port), "0.0.0.0", up);
`;
// Makes <count> sequential requests and prints one line per answer ("ERR:<code>" on failure).
const CLIENT = `
const [proto, host, port, count] = process.argv.slice(1);
const once = () => new Promise((resolve) => {
  if (proto === "udp") {
    const s = require("dgram").createSocket("udp4");
    const t = setTimeout(() => { s.close(); resolve("ERR:timeout"); }, 3000);
    s.on("message", (m) => { clearTimeout(t); s.close(); resolve(String(m)); }).on("error", (e) => { clearTimeout(t); s.close(); resolve("ERR:" + e.code); });
    s.send("ping", Number(port), host);
    return;
  }
  const s = require("net").connect(Number(port), host);
  let data = "";
  s.setTimeout(3000, () => { s.destroy(); resolve("ERR:timeout"); });
  s.on("data", (d) => (data += d)).on("end", () => resolve(data.trim())).on("error", (e) => resolve("ERR:" + e.code));
});
(async () => { for (let i = 0; i < Number(count); i++) console.log(await once()); })();
`;

function startServer(netns: string, name: string, port: number): Promise<number> {
  return startInNetns(netns, SERVER, [name, String(port)], `server ${name}`);
}

async function request(netns: string, host: string, port: number, opts: { proto?: "tcp" | "udp"; count?: number } = {}): Promise<string[]> {
  const args = ["-e", CLIENT, opts.proto ?? "tcp", host, String(port), String(opts.count ?? 1)];
  return (await run(process.execPath, args, { netns, timeoutMs: 60_000 })).stdout.trim().split("\n");
}

interface TestPod {
  name: string;
  node: NodeNetwork;
  netns: string;
  ip: string;
}

const service = (
  name: string,
  clusterIP: string,
  ports: Array<{ name: string; port: number; protocol?: string; targetPort?: string | number }>,
): KubeService => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace: "test" },
  spec: { type: "ClusterIP", clusterIP, ports },
});

const slice = (
  serviceName: string,
  ports: Array<{ name: string; port: number; protocol?: string }>,
  endpoints: TestPod[],
  notReady: TestPod[] = [],
): KubeEndpointSlice => ({
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: `${serviceName}-x`, namespace: "test", labels: { "kubernetes.io/service-name": serviceName } },
  addressType: "IPv4",
  ports,
  endpoints: [
    ...endpoints.map((p) => ({ addresses: [p.ip], conditions: { ready: true }, nodeName: p.node.name })),
    ...notReady.map((p) => ({ addresses: [p.ip], conditions: { ready: false }, nodeName: p.node.name })),
  ],
});

describeTier(isRoot, ROOT_REQUIRED)("sandbox kube-proxy: ClusterIP Services", () => {
  const nodes: NodeNetwork[] = [];
  const pods: Record<string, TestPod> = {};
  const serverPids: number[] = [];
  let proxies: KubeProxy[] = [];

  const pod = (name: string): TestPod => {
    const found = pods[name];
    if (!found) throw new Error(`no pod ${name}`);
    return found;
  };

  beforeAll(async () => {
    await teardownAllNetworks(cfg, naming);
    await createUnderlay(naming);
    for (let i = 1; i <= cfg.nodes; i++) nodes.push(await createNodeNetwork(cfg, i, naming));
    await routeBetweenNodes(nodes);
    for (const [name, node] of [
      ["a1", nodes[0]],
      ["a2", nodes[0]],
      ["b1", nodes[1]],
    ] as const) {
      if (!node) throw new Error("node missing");
      await writeNodeConflist(cfg, node);
      const podUid = randomUUID();
      const netns = naming.pod(podUid);
      await createPodNetns(netns);
      const { ip } = await addPodNetwork(cfg, { node, podUid, namespace: "test", name, netns });
      pods[name] = { name, node, netns, ip };
      serverPids.push(await startServer(netns, name, 8080));
    }
    proxies = nodes.map((node) => new KubeProxy(node));
  });

  afterAll(async () => {
    killAll(serverPids);
    await teardownAllNetworks(cfg, naming);
    await fs.rm(cfg.stateDir, { recursive: true, force: true });
  });

  const http = { name: "http", port: 80, targetPort: "web" };
  const webPort = [{ name: "http", port: 8080 }];
  const sync = async (services: KubeService[], slices: KubeEndpointSlice[]) => Promise.all(proxies.map((p) => p.sync(services, slices)));

  it("DNATs a ClusterIP to a pod on the other node and on the same node, from pods and from the node itself", async () => {
    const services = [service("remote", "10.96.0.50", [http]), service("local", "10.96.0.51", [http])];
    const slices = [slice("remote", webPort, [pod("b1")]), slice("local", webPort, [pod("a1")], [pod("b1")])];
    expect(await sync(services, slices)).toEqual([true, true]);
    expect(await sync(services, slices)).toEqual([false, false]);

    expect(await request(pod("a2").netns, "10.96.0.50", 80)).toEqual([`b1 ${pod("a2").ip}`]);
    expect(await request(pod("a2").netns, "10.96.0.51", 80)).toEqual([`a1 ${pod("a2").ip}`]);
    expect(await request(pod("b1").netns, "10.96.0.51", 80, { count: 5 })).toEqual(Array(5).fill(`a1 ${pod("b1").ip}`));
    expect(await request(nodes[0]!.netns, "10.96.0.50", 80)).toEqual([`b1 ${nodes[0]!.ip}`]);

    const nat = (await run("iptables-save", ["-t", "nat"], { netns: nodes[1]!.netns })).stdout;
    expect(nat).toContain(`--to-destination ${pod("a1").ip}:8080`);
    expect(nat).not.toContain(`--to-destination ${pod("b1").ip}:8080 `);
  });

  it("lets a pod reach itself through its own Service (hairpin, masqueraded to the node)", async () => {
    await sync([service("self", "10.96.0.52", [http])], [slice("self", webPort, [pod("a1")])]);
    const [answer] = await request(pod("a1").netns, "10.96.0.52", 80);
    // ptp gives every host-side veth the pod CIDR's gateway address: that is the node's address towards the pod.
    expect(answer).toBe(`a1 10.244.1.1`);
  });

  it("balances over ready endpoints at random", async () => {
    await sync([service("both", "10.96.0.53", [http])], [slice("both", webPort, [pod("a1"), pod("b1")], [pod("a2")])]);
    const answers = await request(pod("a2").netns, "10.96.0.53", 80, { count: 40 });
    const servedBy = new Set(answers.map((a) => a.split(" ")[0]));
    expect(servedBy).toEqual(new Set(["a1", "b1"]));
  });

  it("rejects at once when a Service has no ready endpoints, and serves UDP", async () => {
    const dns = { name: "dns", port: 53, protocol: "UDP", targetPort: "dns" };
    await sync(
      [service("empty", "10.96.0.54", [http]), service("dns", "10.96.0.55", [dns])],
      [slice("empty", webPort, [], [pod("a1")]), slice("dns", [{ name: "dns", port: 8080, protocol: "UDP" }], [pod("b1")])],
    );
    expect(await request(pod("a2").netns, "10.96.0.54", 80)).toEqual(["ERR:ECONNREFUSED"]);
    expect(await request(nodes[0]!.netns, "10.96.0.54", 80)).toEqual(["ERR:ECONNREFUSED"]);
    expect(await request(pod("a2").netns, "10.96.0.55", 53, { proto: "udp" })).toEqual([`b1 ${pod("a2").ip}`]);
    // The restore replaced whole tables: rules of Services no longer listed are gone.
    const rules = (await run("iptables-save", [], { netns: nodes[0]!.netns })).stdout;
    expect(rules).toContain("10.96.0.55/32");
    expect(rules).not.toContain("10.96.0.53/32");
  });
});
