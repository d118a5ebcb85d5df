// The agent's byte relay over real loopback sockets: both directions, half-close either way, backpressure, aborts.
import { createHash } from "node:crypto";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type RelayCounts, relay } from "../../agent/relay/index.ts";

describe("relay", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  const listen = async (onSocket: (s: net.Socket) => void) => {
    const server = net.createServer({ allowHalfOpen: true }, onSocket);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => server.close());
    return (server.address() as net.AddressInfo).port;
  };
  const connect = (port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
      cleanups.push(() => s.destroy());
      s.once("connect", () => resolve(s)).once("error", reject);
    });

  /**
   * client -> [front | relay | back] -> app, like a captured connection through the agent. Resolves once the
   * relay is running, with its live counts and a promise of the final ones.
   */
  async function through(app: (s: net.Socket) => void) {
    const appPort = await listen(app);
    let started!: (v: { counts: RelayCounts; done: Promise<RelayCounts> }) => void;
    const running = new Promise<{ counts: RelayCounts; done: Promise<RelayCounts> }>((r) => (started = r));
    const frontPort = await listen((front) => {
      front.pause();
      void connect(appPort).then((back) => {
        let finish!: (c: RelayCounts) => void;
        const done = new Promise<RelayCounts>((r) => (finish = r));
        started({ counts: relay(front, back, finish), done });
      });
    });
    const client = await connect(frontPort);
    return { client, ...(await running) };
  }

  const readAll = (s: net.Socket) =>
    new Promise<string>((resolve) => {
      let got = "";
      s.on("data", (d: Buffer) => (got += d));
      s.on("end", () => resolve(got));
    });

  it("carries both directions, ends the app's side when the client half-closes, and counts every byte", async () => {
    const { client, done } = await through((s) => {
      let got = "";
      s.on("data", (d) => (got += d));
      // Answers only once the client's FIN has come through the relay.
      s.on("end", () => s.end(`echo:${got}`));
    });
    const reply = readAll(client);
    client.end("marker-1234");
    expect(await reply).toBe("echo:marker-1234");
    expect(await done).toEqual({ aToB: 11, bToA: 16 });
  });

  it("lets the client keep sending after the app has finished sending (half-close from the app's side)", async () => {
    let appReceived!: (v: string) => void;
    const received = new Promise<string>((r) => (appReceived = r));
    const { client, done } = await through((s) => {
      s.end("bye-early");
      void readAll(s).then(appReceived);
    });
    expect(await readAll(client)).toBe("bye-early");
    client.end("sent-after-the-app-closed");
    expect(await received).toBe("sent-after-the-app-closed");
    expect(await done).toEqual({ aToB: 25, bToA: 9 });
  });

  it("pauses the sender while the receiver is slow, and delivers everything intact", async () => {
    const payload = Buffer.alloc(32 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
    let appHash!: (v: string) => void;
    const hashed = new Promise<string>((r) => (appHash = r));
    const { client, counts, done } = await through((s) => {
      // The app reads nothing for a while: the relay must stop reading the client instead of buffering 32 MiB.
      s.pause();
      setTimeout(() => {
        const h = createHash("sha256");
        s.on("data", (d) => h.update(d));
        s.on("end", () => {
          appHash(h.digest("hex"));
          s.end();
        });
        s.resume();
      }, 500);
    });
    // The client's write completes only when the relay reads it: sample how far ahead the relay got.
    let aheadMax = 0;
    const timer = setInterval(() => (aheadMax = Math.max(aheadMax, counts.aToB)), 5);
    client.end(payload);
    await new Promise((r) => setTimeout(r, 400));
    clearInterval(timer);
    // While the app was not reading, the relay read at most what fits in the kernel buffers and one stream
    // buffer, far below the 32 MiB a relay without backpressure reads at once.
    expect(aheadMax).toBeLessThan(12 * 1024 * 1024);
    expect(await hashed).toBe(createHash("sha256").update(payload).digest("hex"));
    expect((await done).aToB).toBe(payload.length);
  });

  it("tears the other side down when one side is reset, and reports the error", async () => {
    let appSawEnd!: () => void;
    const ended = new Promise<void>((r) => (appSawEnd = r));
    const { client, done } = await through((s) => {
      s.on("error", () => {});
      s.on("end", () => appSawEnd());
      s.resume();
      s.write("hello");
    });
    await new Promise((r) => client.once("data", r));
    client.resetAndDestroy();
    // Both relay sides closed (the relay reports only then), the app's connection was ended, not left open.
    expect((await done).error).toMatch(/ECONNRESET/);
    await ended;
  });

  it("closes the other side when one is destroyed without an error (an HTTP/2 stream cancelled, a revoked tunnel)", async () => {
    const appPort = await listen((s) => s.resume());
    const [a, b] = await Promise.all([connect(appPort), connect(appPort)]);
    const done = new Promise<RelayCounts>((r) => relay(a, b, r));
    a.destroy();
    expect(await done).toEqual({ aToB: 0, bToA: 0 });
    expect(b.destroyed).toBe(true);
  });

  it("finishes even when a side closed before the relay started", async () => {
    const appPort = await listen((s) => s.end());
    const a = await connect(appPort);
    const b = await connect(appPort);
    b.destroy();
    await new Promise((r) => b.once("close", r));
    const done = new Promise<RelayCounts>((r) => relay(a, b, r));
    const counts = await done;
    expect(counts).toMatchObject({ aToB: 0, bToA: 0 });
    expect(a.destroyed).toBe(true);
  });
});
