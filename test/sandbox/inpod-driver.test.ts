// The in-pod capture driver on a real pod netns: listeners + rules on capture, everything back on release.
import net from "node:net";
import pino from "pino";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { InPodCaptureDriver } from "../../agent/inpod/index.ts";
import { captureState } from "../../agent/capture/index.ts";
import { connectMarked, listenInNetns, socketFd, tcpNoDelay } from "../../agent/native/index.ts";
import { run } from "../../host/exec.ts";
import { requestFrom } from "../support/netns.ts";
import { ROOT_REQUIRED, isRoot } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const POD = `ambit-inpod-pod-${process.pid}`;
const NODE = `ambit-inpod-node-${process.pid}`;
const POD_IP = "10.125.0.2";
const NODE_IP = "10.125.0.1";
const CLIENT_IP = "10.125.0.3";
const pod = { uid: "uid-inpod", namespace: "demo", name: "orders-1", netnsPath: `/run/netns/${POD}`, ips: [POD_IP], serviceAccount: "orders" };

const read = (s: net.Socket) =>
  new Promise<string>((resolve) => {
    let d = "";
    s.on("data", (c) => (d += c))
      .on("end", () => resolve(d))
      .on("error", (e: NodeJS.ErrnoException) => resolve(`ERR:${e.code}`));
  });

describeTier(isRoot, ROOT_REQUIRED)("in-pod capture driver", () => {
  const servers: net.Server[] = [];
  /** Whether each handler's socket had TCP_NODELAY (the relay must send what it read at once). */
  const noDelay: Record<string, boolean> = {};
  const driver = new InPodCaptureDriver({
    probeSourceIps: [NODE_IP],
    log: pino({ level: "silent" }),
    handlers: {
      outbound: (c) => {
        noDelay.outbound = tcpNoDelay(socketFd(c.socket));
        c.socket.end(`outbound ${c.pod.name} -> ${c.originalDestination.address}:${c.originalDestination.port}`);
      },
      inboundPlaintext: (c) => {
        noDelay.inboundPlaintext = tcpNoDelay(socketFd(c.socket));
        c.socket.end(`inbound ${c.originalDestination.address}:${c.originalDestination.port} from ${c.socket.remoteAddress}`);
      },
      hbone: (p, s) => {
        noDelay.hbone = tcpNoDelay(socketFd(s));
        s.end(`hbone for ${p.name}`);
      },
    },
  });

  beforeAll(async () => {
    await execa("ip", ["netns", "add", POD]);
    await execa("ip", ["netns", "add", NODE]);
    await execa("ip", ["link", "add", "inp0", "netns", POD, "type", "veth", "peer", "name", "inp1", "netns", NODE]);
    await run("ip", ["-batch", "-"], { netns: POD, input: `link set lo up\naddr add ${POD_IP}/24 dev inp0\nlink set inp0 up\n` });
    await run("ip", ["-batch", "-"], {
      netns: NODE,
      input: `link set lo up\naddr add ${NODE_IP}/24 dev inp1\naddr add ${CLIENT_IP}/24 dev inp1\nlink set inp1 up\n`,
    });
    const listen = (ns: string, host: string, port: number, reply: string) => {
      const server = net.createServer((s) => s.end(reply));
      server.listen({ fd: listenInNetns(`/run/netns/${ns}`, host, port) });
      servers.push(server);
    };
    listen(POD, "0.0.0.0", 8080, "app");
    listen(NODE, NODE_IP, 9000, "node-server");
  });

  afterAll(async () => {
    await driver.release(pod).catch(() => {});
    for (const s of servers) s.close();
    await execa("ip", ["netns", "del", POD], { reject: false });
    await execa("ip", ["netns", "del", NODE], { reject: false });
  });

  it("captures a running pod's traffic into the agent's handlers, and releases it completely", async () => {
    expect(await read(await connectMarked(NODE_IP, 9000, 0, pod.netnsPath))).toBe("node-server");
    await driver.capture(pod);
    expect(driver.capturedPods).toBe(1);
    // Accept queues migrate to a new agent's listeners on restart.
    expect((await execa("ip", ["netns", "exec", POD, "cat", "/proc/sys/net/ipv4/tcp_migrate_req"])).stdout).toBe("1");
    expect(await read(await connectMarked(NODE_IP, 9000, 0, pod.netnsPath))).toBe(`outbound orders-1 -> ${NODE_IP}:9000`);
    expect(await requestFrom(NODE, POD_IP, 8080, CLIENT_IP)).toBe(`inbound ${POD_IP}:8080 from ${CLIENT_IP}`);
    expect(await requestFrom(NODE, POD_IP, 15008, CLIENT_IP)).toBe("hbone for orders-1");
    expect(await requestFrom(NODE, POD_IP, 8080, NODE_IP)).toBe("app");
    // Every socket the agent relays on sends each write at once: the captured ones and the ones it opens.
    expect(noDelay).toEqual({ outbound: true, inboundPlaintext: true, hbone: true });
    const opened = await connectMarked(NODE_IP, 9000, 0, pod.netnsPath);
    expect(tcpNoDelay(socketFd(opened))).toBe(true);
    expect(await read(opened)).toBe(`outbound orders-1 -> ${NODE_IP}:9000`);
    // Half-open allowed on the agent's sockets: close this side too, or the pod's later reset hits the handler's end.
    opened.end();
    // Capturing again (e.g. a reconcile) keeps one set of listeners and rules.
    await driver.capture(pod);
    expect(driver.capturedPods).toBe(1);

    await driver.release(pod);
    expect(await captureState(pod.netnsPath)).toBe("released");
    expect(await read(await connectMarked(NODE_IP, 9000, 0, pod.netnsPath))).toBe("node-server");
    expect(await requestFrom(NODE, POD_IP, 8080, CLIENT_IP)).toBe("app");
    // The agent's listeners are gone from the pod.
    expect(await requestFrom(POD, "127.0.0.1", 15001)).toBe("ERR:ECONNREFUSED");
  });

  it("a pod whose namespace was replaced under the same path is inspected as broken and gets listeners in the new one", async () => {
    // What a runtime does when it retries a timed-out CNI ADD or recreates a pod's sandbox: a new namespace, same path.
    const name = `ambit-inpod-re-${process.pid}`;
    const again = { ...pod, uid: "uid-recreated", netnsPath: `/run/netns/${name}` };
    const fresh = async () => {
      await execa("ip", ["netns", "add", name]);
      await execa("ip", ["-n", name, "link", "set", "lo", "up"]);
    };
    try {
      await fresh();
      await driver.capture(again);
      expect(await driver.inspect(again)).toBe("captured");
      await execa("ip", ["netns", "del", name]);
      await fresh();
      expect(await driver.inspect(again)).toBe("broken");
      expect(await requestFrom(name, "127.0.0.1", 15001)).toBe("ERR:ECONNREFUSED");
      await driver.capture(again);
      expect(await driver.inspect(again)).toBe("captured");
      expect(await requestFrom(name, "127.0.0.1", 15001)).toMatch(/^outbound orders-1 -> /);
      await execa("ip", ["netns", "del", name]);
      expect(await driver.inspect(again)).toBe("gone");
    } finally {
      await driver.release(again).catch(() => {});
      await execa("ip", ["netns", "del", name], { reject: false });
    }
  });

  it("leaves nothing behind when a pod cannot be captured", async () => {
    const ghost = { ...pod, uid: "uid-ghost", netnsPath: "/run/netns/ambit-inpod-missing" };
    await expect(driver.capture(ghost)).rejects.toMatchObject({ code: "AMBIT_E_NATIVE_NETNS" });
    expect(driver.capturedPods).toBe(0);
  });
});
