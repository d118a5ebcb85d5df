// Capture rules in a real pod netns: outbound to 15001, inbound to 15006, HBONE and probes untouched, clean removal.
import net from "node:net";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { applyCaptureRules, captureState, removeCaptureRules } from "../../agent/capture/index.ts";
import { connectMarked, listenInNetns, originalDst, socketFd } from "../../agent/native/index.ts";
import { run } from "../../host/exec.ts";
import { requestFrom } from "../support/netns.ts";
import { ROOT_REQUIRED, isRoot } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const POD = `ambit-capture-pod-${process.pid}`;
const NODE = `ambit-capture-node-${process.pid}`;
const POD_IP = "10.124.0.2";
const NODE_IP = "10.124.0.1";
const OTHER_IP = "10.124.0.3";
const path = (ns: string) => `/run/netns/${ns}`;

function read(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let d = "";
    socket
      .on("data", (c) => (d += c))
      .on("end", () => resolve(d))
      .on("error", (e: NodeJS.ErrnoException) => resolve(`ERR:${e.code}`));
  });
}

const natRules = async () =>
  (await run("iptables-save", ["-t", "nat"], { netns: POD })).stdout
    .replace(/^#.*$/gm, "")
    .replace(/\[\d+:\d+\]/g, "")
    .trim();

describeTier(isRoot, ROOT_REQUIRED)("in-pod capture rules", () => {
  const servers: net.Server[] = [];
  let original = "";

  beforeAll(async () => {
    await execa("ip", ["netns", "add", POD]);
    await execa("ip", ["netns", "add", NODE]);
    await execa("ip", ["link", "add", "cap0", "netns", POD, "type", "veth", "peer", "name", "cap1", "netns", NODE]);
    await run("ip", ["-batch", "-"], { netns: POD, input: `link set lo up\naddr add ${POD_IP}/24 dev cap0\nlink set cap0 up\n` });
    await run("ip", ["-batch", "-"], {
      netns: NODE,
      input: `link set lo up\naddr add ${NODE_IP}/24 dev cap1\naddr add ${OTHER_IP}/24 dev cap1\nlink set cap1 up\n`,
    });
    // A pod rule of the application's own, which capture must leave alone.
    await run("iptables-restore", ["--noflush"], { netns: POD, input: "*nat\n-A OUTPUT -p udp --dport 9 -j RETURN\nCOMMIT\n" });
    original = await natRules();
    // The agent's listeners inside the pod (as the agent creates them) and the pod's app; a server on the node.
    const listen = (ns: string, host: string, port: number, reply: (s: net.Socket) => string) => {
      const server = net.createServer((s) => s.end(reply(s)));
      server.listen({ fd: listenInNetns(path(ns), host, port) });
      servers.push(server);
    };
    const dst = (s: net.Socket) => {
      const d = originalDst(socketFd(s));
      return `${d.address}:${d.port}`;
    };
    listen(POD, "127.0.0.1", 15001, (s) => `outbound ${dst(s)}`);
    listen(POD, "0.0.0.0", 15006, (s) => `inbound ${dst(s)} from ${s.remoteAddress}`);
    listen(POD, "0.0.0.0", 15008, () => "hbone");
    listen(POD, "0.0.0.0", 8080, () => "app");
    listen(NODE, NODE_IP, 9000, () => "node-server");
    // Echo servers for connections that stay open across the capture being installed.
    for (const [ns, host, port] of [
      [POD, "0.0.0.0", 8081],
      [NODE, NODE_IP, 9001],
    ] as const) {
      const echo = net.createServer((s) => s.on("data", (d) => s.write(d)).on("error", () => {}));
      echo.listen({ fd: listenInNetns(path(ns), host, port) });
      servers.push(echo);
    }
  });

  afterAll(async () => {
    for (const s of servers) s.close();
    await execa("ip", ["netns", "del", POD], { reject: false });
    await execa("ip", ["netns", "del", NODE], { reject: false });
  });

  it("leaves connections that were open before capture working, both ways", async () => {
    await removeCaptureRules(path(POD));
    const echo = (socket: net.Socket, text: string) =>
      new Promise<string>((resolve) => {
        socket.once("data", (d) => resolve(String(d)));
        socket.once("error", (e: NodeJS.ErrnoException) => resolve(`ERR:${e.code}`));
        socket.write(text);
      });
    const inbound = await connectMarked(POD_IP, 8081, 0, path(NODE));
    const outbound = await connectMarked(NODE_IP, 9001, 0, path(POD));
    try {
      expect(await echo(inbound, "in-1")).toBe("in-1");
      expect(await echo(outbound, "out-1")).toBe("out-1");
      await applyCaptureRules(path(POD), { probeSourceIps: [NODE_IP] });
      expect(await echo(inbound, "in-2")).toBe("in-2");
      expect(await echo(outbound, "out-2")).toBe("out-2");
    } finally {
      inbound.destroy();
      outbound.destroy();
      await removeCaptureRules(path(POD));
    }
  });

  it("sends the pod's traffic to the agent and leaves the agent's own, HBONE and probes alone", async () => {
    // Before capture everything goes where it is addressed.
    expect(await requestFrom(NODE, POD_IP, 8080, OTHER_IP)).toBe("app");
    await applyCaptureRules(path(POD), { probeSourceIps: [NODE_IP] });
    expect(await captureState(path(POD))).toBe("captured");

    expect(await read(await connectMarked(NODE_IP, 9000, 0, path(POD)))).toBe(`outbound ${NODE_IP}:9000`);
    expect(await read(await connectMarked(NODE_IP, 9000, 0x539, path(POD)))).toBe("node-server");
    expect(await requestFrom(NODE, POD_IP, 8080, OTHER_IP)).toBe(`inbound ${POD_IP}:8080 from ${OTHER_IP}`);
    expect(await requestFrom(NODE, POD_IP, 15008, OTHER_IP)).toBe("hbone");
    expect(await requestFrom(NODE, POD_IP, 8080, NODE_IP)).toBe("app");
    // The pod reaching its own loopback is not mesh traffic.
    expect(await requestFrom(POD, "127.0.0.1", 8080)).toBe("app");
  });

  it("is idempotent and removes exactly what it added", async () => {
    await applyCaptureRules(path(POD), { probeSourceIps: [NODE_IP] });
    const once = await natRules();
    await applyCaptureRules(path(POD), { probeSourceIps: [NODE_IP] });
    expect(await natRules()).toBe(once);
    expect(once.match(/-A OUTPUT -j AMBIT-OUTPUT/g)).toHaveLength(1);

    await removeCaptureRules(path(POD));
    expect(await captureState(path(POD))).toBe("released");
    expect(await natRules()).toBe(original);
    await removeCaptureRules(path(POD));
    expect(await requestFrom(NODE, POD_IP, 8080, OTHER_IP)).toBe("app");
  });
});
