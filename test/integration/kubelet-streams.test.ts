// The sandbox kubelet's exec sessions (pipes and pty) and port-forward dialer, run here without a pod's namespaces.
import http from "node:http";
import net from "node:net";
import type { Readable } from "node:stream";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetnsDialer, startExec } from "../../sandbox/kubelet/exec.ts";

const ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
const hasPython = (await execa("sh", ["-c", "command -v python3"], { reject: false })).exitCode === 0;
const text = async (r: Readable | undefined) => {
  let s = "";
  for await (const c of r ?? []) s += (c as Buffer).toString();
  return s;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("exec sessions", () => {
  it("output written before anyone reads it is kept (Node discards a child's unread output when it exits)", async () => {
    const s = startExec(["sh", "-c", "echo out; echo err >&2; exit 3"], ENV, { stdin: false, stdout: true, stderr: true, tty: false });
    await sleep(500);
    const [out, err, result] = await Promise.all([text(s.stdout), text(s.stderr), s.done]);
    expect({ out, err, result }).toEqual({ out: "out\n", err: "err\n", result: { exitCode: 3 } });
  });

  it("stdin reaches the command; its end ends the input", async () => {
    const s = startExec(["sh", "-c", "cat; echo end"], ENV, { stdin: true, stdout: true, stderr: false, tty: false });
    s.stdin!.end("some input\n");
    expect(await text(s.stdout)).toBe("some input\nend\n");
    expect(await s.done).toEqual({ exitCode: 0 });
  });

  it("a command that leaves a process holding its output ends all the same; close() kills a running one", async () => {
    const started = Date.now();
    const s = startExec(["sh", "-c", "sleep 30 & echo started"], ENV, { stdin: false, stdout: true, stderr: true, tty: false });
    expect(await text(s.stdout)).toBe("started\n");
    expect(await s.done).toEqual({ exitCode: 0 });
    expect(Date.now() - started).toBeLessThan(10_000);
    const long = startExec(["sleep", "30"], ENV, { stdin: false, stdout: true, stderr: true, tty: false });
    long.close();
    expect(await long.done).toEqual({ exitCode: 137 });
    expect(await startExec(["/no/such/program"], ENV, { stdin: false, stdout: true, stderr: true, tty: false }).done).toMatchObject({
      error: expect.stringContaining("ENOENT"),
    });
  });

  it.skipIf(!hasPython)("with a TTY: a terminal of the size asked for, resized while it runs, stderr on it, the exit code back", async () => {
    const s = startExec(
      ["sh", "-c", "tty; stty size; read line; stty size; echo oops >&2; exit 5"],
      { ...ENV, TERM: "xterm" },
      {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
      },
    );
    s.resize({ width: 91, height: 27 });
    let out = "";
    s.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    while (!out.includes("27 91")) await sleep(20);
    s.resize({ width: 120, height: 40 });
    s.stdin!.write("go\n");
    expect(await s.done).toEqual({ exitCode: 5 });
    await sleep(50);
    expect(out).toMatch(/^\/dev\/pts\/\d+\r\n27 91\r\n/);
    expect(out).toContain("40 120\r\n");
    expect(out).toContain("oops\r\n");
    expect(s.stderr).toBeUndefined();
  });
});

describe("the port-forward dialer", () => {
  let web: http.Server;
  let greeter: net.Server;
  const port = (s: net.Server) => (s.address() as net.AddressInfo).port;

  beforeAll(async () => {
    web = http.createServer((_req, res) => res.end("ok"));
    // A server that speaks first: what it sends before the kubelet has the socket must reach the client too.
    greeter = net.createServer((s) => s.end("hello first\n"));
    await Promise.all([new Promise<void>((r) => web.listen(0, "127.0.0.1", r)), new Promise<void>((r) => greeter.listen(0, "127.0.0.1", r))]);
  });
  afterAll(() => {
    web.close();
    greeter.close();
  });

  const fetchThrough = (socket: net.Socket, request: string) =>
    new Promise<string>((resolve) => {
      let data = "";
      socket.on("data", (c: Buffer) => (data += c.toString()));
      socket.on("close", () => resolve(data));
      if (request) socket.write(request);
    });

  it("hands back connected sockets that carry every byte, from a fresh dialer each time", async () => {
    // Each new dialer's first connection is the one a race would hurt (its process reading what the kubelet should).
    for (let i = 0; i < 12; i++) {
      const dialer = new NetnsDialer("test", []);
      try {
        const answer = await fetchThrough(await dialer.dial(port(web)), "GET / HTTP/1.0\r\n\r\n");
        expect(answer).toMatch(/\r\n\r\nok$/);
        expect(await fetchThrough(await dialer.dial(port(greeter)), "")).toBe("hello first\n");
      } finally {
        dialer.close();
      }
    }
  });

  it("says why a port cannot be reached", async () => {
    const dialer = new NetnsDialer("test", []);
    try {
      const closed = net.createServer();
      await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
      const unused = port(closed);
      await new Promise((r) => closed.close(r));
      await expect(dialer.dial(unused)).rejects.toThrow(new RegExp(`localhost:${unused} .*IPv4: connect ECONNREFUSED 127\\.0\\.0\\.1:${unused} IPv6: connect`));
      await expect(dialer.dial(70000)).rejects.toThrow("invalid port 70000");
    } finally {
      dialer.close();
    }
  });
});
