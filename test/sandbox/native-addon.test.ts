// The agent's native addon against a real network namespace: in-netns listeners, SO_ORIGINAL_DST, SO_MARK, error paths.
import fs from "node:fs";
import net from "node:net";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { NativeNetError, closeFd, connectMarked, listenInNetns, originalDst, socketFd } from "../../agent/native/index.ts";
import { run } from "../../sandbox/network/index.ts";
import { ROOT_REQUIRED, isRoot } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const NETNS = `ambit-native-t${process.pid}`;
const NETNS_PATH = `/run/netns/${NETNS}`;
const TARGET = "10.123.0.2";
const MARK = 0x539;

const myNetns = () => fs.readlinkSync("/proc/thread-self/ns/net");
const openFds = () => fs.readdirSync("/proc/self/fd").length;

/** Serves a listener fd from this process; each connection gets `reply(socket)` and is closed. */
function serve(fd: number, reply: (socket: net.Socket) => string): net.Server {
  const server = net.createServer((s) => s.end(reply(s)));
  server.listen({ fd });
  return server;
}

function read(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    socket
      .on("data", (d) => (data += d))
      .on("end", () => resolve(data))
      .on("error", reject);
  });
}

describeTier(isRoot, ROOT_REQUIRED)("native addon", () => {
  const servers: net.Server[] = [];

  beforeAll(async () => {
    await execa("ip", ["netns", "add", NETNS]);
    await run("ip", ["-batch", "-"], {
      netns: NETNS,
      input: `link set lo up\nlink add v0 type veth peer name v1\naddr add ${TARGET}/24 dev v0\nlink set v0 up\nlink set v1 up\n`,
    });
  });

  afterAll(async () => {
    for (const s of servers) s.close();
    await execa("ip", ["netns", "del", NETNS], { reject: false });
  });

  it("creates a listener inside the netns that clients there reach and the root namespace does not", async () => {
    const before = myNetns();
    const fd = listenInNetns(NETNS_PATH, "127.0.0.1", 0);
    expect(myNetns()).toBe(before);
    const server = serve(fd, () => "inside");
    servers.push(server);
    await new Promise((r) => server.once("listening", r));
    const port = (server.address() as net.AddressInfo).port;
    const { stdout } = await run(process.execPath, ["-e", `require("net").connect(${port}, "127.0.0.1").on("data", (d) => process.stdout.write(d))`], {
      netns: NETNS,
      timeoutMs: 10_000,
    });
    expect(stdout).toBe("inside");
    // The same port in the agent's own namespace is not this listener.
    const outside = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.on("data", () => resolve("reached"))
        .on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"))
        .on("end", () => resolve("ended"));
    });
    expect(outside).not.toBe("reached");
  });

  it("survives 5,000 create/close cycles without leaking fds or leaving the thread in the pod netns", () => {
    const before = myNetns();
    const fds = openFds();
    for (let i = 0; i < 5000; i++) closeFd(listenInNetns(NETNS_PATH, "127.0.0.1", 0));
    expect(openFds()).toBe(fds);
    expect(myNetns()).toBe(before);
  });

  it("fails cleanly, with codes, and always returns to the agent's netns", () => {
    const before = myNetns();
    const errorOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err as NativeNetError;
      }
      throw new Error("expected an error");
    };
    const missing = errorOf(() => listenInNetns("/run/netns/does-not-exist", "127.0.0.1", 0));
    expect(missing).toBeInstanceOf(NativeNetError);
    expect(missing).toMatchObject({ code: "AMBIT_E_NATIVE_NETNS", syscall: "open(netns)", errno: 2 });
    expect(myNetns()).toBe(before);

    const notNetns = errorOf(() => listenInNetns("/proc/self/ns/uts", "127.0.0.1", 0));
    expect(notNetns.code).toBe("AMBIT_E_NATIVE_NOT_NETNS");
    expect(notNetns.message).toContain("is it a network namespace?");
    expect(myNetns()).toBe(before);

    const first = listenInNetns(NETNS_PATH, "127.0.0.1", 45_001);
    try {
      const inUse = errorOf(() => listenInNetns(NETNS_PATH, "127.0.0.1", 45_001));
      expect(inUse).toMatchObject({ code: "AMBIT_E_NATIVE_ADDRINUSE", syscall: "bind" });
      expect(myNetns()).toBe(before);
      // With SO_REUSEPORT on both, a second agent can take over the port (restart without refused connections).
      const a = listenInNetns(NETNS_PATH, "127.0.0.1", 45_002, { reusePort: true });
      const b = listenInNetns(NETNS_PATH, "127.0.0.1", 45_002, { reusePort: true });
      closeFd(a);
      closeFd(b);
    } finally {
      closeFd(first);
    }
    expect(() => originalDst(-1)).toThrow(NativeNetError);
  });

  it("connectMarked reports failures as a rejected promise, never a synchronous throw", async () => {
    const pending = connectMarked("127.0.0.1", 1, MARK, "/run/netns/does-not-exist");
    await expect(pending).rejects.toMatchObject({ code: "AMBIT_E_NATIVE_NETNS" });
    await expect(connectMarked(TARGET, 1, MARK, NETNS_PATH)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("reads the original destination of a REDIRECTed connection, and marked sockets bypass the redirect", async () => {
    const capture = listenInNetns(NETNS_PATH, "127.0.0.1", 0);
    const captureServer = serve(capture, (s) => {
      const dst = originalDst(socketFd(s));
      return `captured ${dst.address}:${dst.port}`;
    });
    const realServer = serve(listenInNetns(NETNS_PATH, TARGET, 4321), () => "real");
    servers.push(captureServer, realServer);
    await new Promise((r) => captureServer.once("listening", r));
    const capturePort = (captureServer.address() as net.AddressInfo).port;
    await run("iptables-restore", [], {
      netns: NETNS,
      input: [
        "*nat",
        ":OUTPUT ACCEPT [0:0]",
        `-A OUTPUT -p tcp -m mark --mark ${MARK}/0xfff -j RETURN`,
        `-A OUTPUT -p tcp -d ${TARGET} --dport 4321 -j REDIRECT --to-ports ${capturePort}`,
        "COMMIT",
        "",
      ].join("\n"),
    });
    // An unmarked socket from inside the pod is captured; the listener learns where it was going.
    expect(await read(await connectMarked(TARGET, 4321, 0, NETNS_PATH))).toBe(`captured ${TARGET}:4321`);
    // The agent's own marked socket reaches the real destination.
    expect(await read(await connectMarked(TARGET, 4321, MARK, NETNS_PATH))).toBe("real");
  });
});
