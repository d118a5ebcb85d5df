// kubectl logs, exec, attach and port-forward (and client-node's Exec and PortForward) against the sandbox API server, with a kubelet of local processes.
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { randomBytes } from "node:crypto";
import { PassThrough, Writable } from "node:stream";
import { execa, type ResultPromise } from "execa";
import WebSocket from "ws";
import { Exec, PortForward } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type LogOptions, type PodRef, type PodStreams, type ProcessOptions } from "../../sandbox/apiserver/index.ts";
import { ContainerLog, type LogRun, readRun } from "../../sandbox/kubelet/logs.ts";
import { startExec } from "../../sandbox/kubelet/exec.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const has = async (cmd: string) => (await execa("sh", ["-c", `command -v ${cmd}`], { reject: false })).exitCode === 0;
const hasKubectl = await has("kubectl");
const hasScript = (await has("script")) && (await has("python3"));

/**
 * A kubelet whose "pods" are local processes: exec runs the command here, attach attaches to a `cat`, port-forward
 * maps a pod port to a local server; the logs are real ContainerLog runs the test writes to.
 */
class LocalKubelet implements PodStreams {
  readonly logFiles = new Map<string, ContainerLog>();
  readonly ports = new Map<number, number>();
  readonly execs: ProcessOptions[] = [];

  constructor(dir: string) {
    for (const c of ["c", "d"]) this.logFiles.set(c, new ContainerLog(path.join(dir, `${c}.log`)));
  }

  async logs(_pod: PodRef, opts: LogOptions) {
    const log = this.logFiles.get(opts.container)!;
    const run = opts.previous ? log.previous : log.latest;
    if (!run) throw new ApiError(400, "BadRequest", `previous terminated container "${opts.container}" in pod "p" not found`);
    return readRun(run, opts);
  }

  async exec(_pod: PodRef, opts: ProcessOptions) {
    this.execs.push(opts);
    if (opts.container === "d") throw new ApiError(400, "BadRequest", `container not found ("d")`);
    return startExec(opts.command, { PATH: process.env.PATH ?? "/usr/bin:/bin", TERM: "xterm" }, opts);
  }

  async attach(_pod: PodRef, opts: ProcessOptions) {
    return startExec(["cat"], { PATH: process.env.PATH ?? "/usr/bin:/bin" }, opts);
  }

  async portForward(_pod: PodRef, port: number) {
    const local = this.ports.get(port) ?? 1;
    return new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port: local });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
  }
}

const pod = (name: string, spec: object) => ({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: "default" }, spec });

describe.skipIf(!hasKubectl)("kubectl logs, exec, attach and port-forward against the sandbox API server", () => {
  let t: TestApiServer;
  let kubelet: LocalKubelet;
  let echo: net.Server;
  const started: ResultPromise[] = [];

  const kubectl = async (args: string[], opts: { input?: string; env?: Record<string, string> } = {}) => {
    const r = await execa("kubectl", args, {
      env: { KUBECONFIG: t.kubeconfigPath, ...opts.env },
      reject: false,
      timeout: 30_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  /** A long-running kubectl (logs -f, port-forward); stopped by the test or at the end. */
  const background = (args: string[], env: Record<string, string> = {}) => {
    const child = execa("kubectl", args, { env: { KUBECONFIG: t.kubeconfigPath, ...env }, reject: false, buffer: false });
    started.push(child);
    return child;
  };
  const until = async (check: () => boolean | Promise<boolean>, what: string, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const write = (run: LogRun, text: string) => new Promise<void>((resolve) => (run.write(Buffer.from(text)) ? resolve() : run.onceDrained(resolve)));
  const flushed = (run: LogRun, bytes: number) => until(() => run.end >= bytes, "the log to be written");

  beforeAll(async () => {
    t = await startTestApiServer();
    kubelet = new LocalKubelet(t.dir);
    t.api.attachNode("node-1", kubelet);
    echo = net.createServer((s) => {
      s.write("hello from pod\n");
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    kubelet.ports.set(80, (echo.address() as net.AddressInfo).port);
    await t.client.create(
      "/api/v1/namespaces/default/pods",
      pod("p", {
        nodeName: "node-1",
        containers: [
          { name: "c", image: "x" },
          { name: "d", image: "x" },
        ],
      }),
    );
    await t.client.mergePatch("/api/v1/namespaces/default/pods/p/status", { status: { phase: "Running", podIP: "10.244.1.9" } });
    await t.client.create("/api/v1/namespaces/default/pods", pod("pending", { containers: [{ name: "c", image: "x" }] }));
    await t.client.create("/api/v1/namespaces/default/pods", pod("elsewhere", { nodeName: "node-9", containers: [{ name: "c", image: "x" }] }));
    await t.client.mergePatch("/api/v1/namespaces/default/pods/elsewhere/status", { status: { phase: "Running" } });
  });
  afterAll(async () => {
    for (const c of started) c.kill("SIGKILL");
    echo?.close();
    await t?.close();
  });

  it("logs: the latest run; -c, --tail, --timestamps, --limit-bytes, --previous", async () => {
    const log = kubelet.logFiles.get("c")!;
    const first = log.startRun();
    await write(first, "first run\n");
    await first.finish();
    const run = log.startRun();
    await write(run, "one\ntwo\n");
    await write(run, "three\n");
    await flushed(run, run.start + 14);

    expect((await kubectl(["logs", "p", "-c", "c"])).stdout).toBe("one\ntwo\nthree");
    expect((await kubectl(["logs", "p", "-c", "c", "--tail=2"])).stdout).toBe("two\nthree");
    expect((await kubectl(["logs", "p", "-c", "c", "--tail=0"])).stdout).toBe("");
    expect((await kubectl(["logs", "p", "-c", "c", "--limit-bytes=5"])).stdout).toBe("one\nt");
    expect((await kubectl(["logs", "p", "-c", "c", "--previous"])).stdout).toBe("first run");
    const stamped = (await kubectl(["logs", "p", "-c", "c", "--timestamps"])).stdout.split("\n");
    expect(stamped).toHaveLength(3);
    for (const [i, line] of stamped.entries())
      expect(line).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z ${["one", "two", "three"][i]}$`));
    expect((await kubectl(["logs", "p", "-c", "c", "--since=1h"])).stdout).toBe("one\ntwo\nthree");

    // kubectl picks the first container when none is named; the API answers kube-apiserver's errors.
    const defaulted = await kubectl(["logs", "p"]);
    expect(defaulted.stdout).toBe("one\ntwo\nthree");
    expect(defaulted.stderr).toContain('Defaulted container "c" out of: c, d');
    const noPrevious = await kubectl(["logs", "p", "-c", "d", "--previous"]);
    expect(noPrevious.exitCode).toBe(1);
    expect(noPrevious.stderr).toContain('previous terminated container "d" in pod "p" not found');
    const wrong = await kubectl(["logs", "p", "-c", "nope"]);
    expect(wrong.stderr).toContain("container nope is not valid for pod p");
    await expect(t.client.get("/api/v1/namespaces/default/pods/p/log")).rejects.toThrow(/a container name must be specified for pod p, choose one of: \[c d\]/);
    // No node yet: an empty log, as from kube-apiserver.
    expect(await kubectl(["logs", "pending"])).toMatchObject({ exitCode: 0, stdout: "" });
  });

  it("logs -f: new lines as they are written, until the run ends; a client that stops lets go of the run", async () => {
    const log = kubelet.logFiles.get("d")!;
    const run = log.startRun();
    await write(run, "before\n");
    await flushed(run, run.start + 7);
    const follow = background(["logs", "-f", "p", "-c", "d"]);
    let out = "";
    follow.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    await until(() => out === "before\n", "the existing line");
    await write(run, "after\n");
    await until(() => out === "before\nafter\n", "the new line");
    await write(run, "last\n");
    await run.finish();
    const result = await follow;
    expect(result.exitCode).toBe(0);
    expect(out).toBe("before\nafter\nlast\n");

    const live = log.startRun();
    const stopped = background(["logs", "-f", "p", "-c", "d"]);
    await until(() => live.listenerCount("appended") === 1, "the follower");
    stopped.kill("SIGINT");
    await stopped;
    await until(() => live.listenerCount("appended") === 0, "the server to let go of the run");
  });

  // kubectl 1.32 speaks WebSocket (v5.channel.k8s.io); SPDY is its fallback, and what older kubectl speaks.
  for (const [websockets, over] of [
    ["true", "WebSocket"],
    ["false", "SPDY"],
  ]) {
    const env = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: websockets! };
    it(`exec over ${over}: stdout and stderr apart, the exit code propagated, stdin passed and closed at its end`, async () => {
      // The command is done before the client has its streams: its output waits for them.
      const r = await kubectl(["exec", "p", "-c", "c", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], { env });
      expect(r).toMatchObject({ exitCode: 3, stdout: "out" });
      expect(r.stderr).toMatch(/^err\n(.*\n)?command terminated with exit code 3$/);
      expect(await kubectl(["exec", "p", "-c", "c", "--", "true"], { env })).toMatchObject({ exitCode: 0, stdout: "", stderr: "" });
      // `cat` only ends when its input does (WebSocket: the v5 protocol's close signal; SPDY: the stream's end).
      const piped = await kubectl(["exec", "-i", "p", "-c", "c", "--", "sh", "-c", "cat; echo end"], { input: "line 1\nline 2\n", env });
      expect(piped).toMatchObject({ exitCode: 0, stdout: "line 1\nline 2\nend" });
      expect(kubelet.execs.at(-1)).toMatchObject({
        container: "c",
        command: ["sh", "-c", "cat; echo end"],
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
      });
      const big = await kubectl(["exec", "p", "-c", "c", "--", "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"], { env });
      expect(big.stdout).toBe("x".repeat(3_000_000));
    });

    it.skipIf(!hasScript)(`exec -it over ${over}: the command runs on a terminal of the client's size`, async () => {
      // script(1) gives kubectl a terminal; its input stays open (sleep) so it sends no end-of-file character.
      const r = await execa(
        "sh",
        ["-c", `sleep 3 | script -qfec "stty cols 91 rows 27; kubectl exec -it p -c c -- sh -c 'tty; stty size; echo \\$TERM; exit 4'" /dev/null`],
        {
          env: { KUBECONFIG: t.kubeconfigPath, ...env },
          reject: false,
          timeout: 30_000,
        },
      );
      expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\n27 91\r\nxterm\r\n/);
      expect(r.stdout).toContain("command terminated with exit code 4");
      expect(kubelet.execs.at(-1)).toMatchObject({ stdin: true, stdout: true, stderr: false, tty: true });
    });
  }

  it("exec and attach failures are Kubernetes Status errors", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["exec", "p", "-c", "nope", "--", "true"], /container nope is not valid for pod p/],
      [["exec", "p", "-c", "d", "--", "true"], /container not found \("d"\)/],
      [["exec", "gone", "--", "true"], /pods "gone" not found/],
      [["exec", "elsewhere", "--", "true"], /error dialing backend: no kubelet serves node "node-9"/],
    ];
    for (const [args, message] of cases) {
      const r = await kubectl(args);
      expect(r.exitCode, args.join(" ")).toBe(1);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
    // kube-apiserver's answer for a pod without a node (kubectl itself refuses a pod that is not Running).
    await expect(t.client.create("/api/v1/namespaces/default/pods/pending/exec?command=true&stdout=true", {})).rejects.toThrow(/Upgrade request required/);
    const ws = await openWebSocket("/api/v1/namespaces/default/pods/pending/exec?command=true&stdout=true", ["v5.channel.k8s.io"]);
    expect(ws.status).toBe(400);
    expect(JSON.parse(ws.body)).toMatchObject({ kind: "Status", reason: "BadRequest", message: "pod pending does not have a host assigned" });
    const noCommand = await openWebSocket("/api/v1/namespaces/default/pods/p/exec?container=c&stdout=true", ["v5.channel.k8s.io"]);
    expect(JSON.parse(noCommand.body).message).toBe("you must specify at least one command for the container");
    const noProtocol = await openWebSocket("/api/v1/namespaces/default/pods/p/exec?container=c&command=true&stdout=true", ["v9.channel.k8s.io"]);
    expect(noProtocol.status).toBe(400);
    expect(JSON.parse(noProtocol.body).message).toMatch(/unable to negotiate protocol: client supports \[v9.channel.k8s.io\]/);
  });

  it("attach -i: the client's input reaches the process, its output comes back", async () => {
    const r = await kubectl(["attach", "-i", "p", "-c", "c"], { input: "to the container\n" });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("to the container");
  });

  for (const websockets of ["true", "false"]) {
    it(`port-forward (${websockets === "true" ? "SPDY tunnelled in a WebSocket, kubectl's default" : "classic SPDY upgrade"}): connections reach the pod's port, 2 MB each way`, async () => {
      const pf = background(["port-forward", "pod/p", "0:80"], { KUBECTL_PORT_FORWARD_WEBSOCKETS: websockets });
      let out = "";
      pf.stdout!.on("data", (c: Buffer) => (out += c.toString()));
      await until(() => /127\.0\.0\.1:(\d+) -> 80/.test(out), "kubectl to listen");
      const port = Number(/127\.0\.0\.1:(\d+) -> 80/.exec(out)![1]);
      for (let i = 0; i < 2; i++) {
        const payload = randomBytes(2 * 1024 * 1024);
        const got = await roundTrip(port, payload);
        expect(got.subarray(0, 15).toString()).toBe("hello from pod\n");
        expect(got.subarray(15).equals(payload)).toBe(true);
      }
      pf.kill("SIGINT");
      await pf;
    });
  }

  it("port-forward to a port nothing listens on: kubectl prints the kubelet's error and stops", async () => {
    const pf = background(["port-forward", "pod/p", "0:81"]);
    let out = "";
    let err = "";
    pf.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    pf.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    await until(() => /127\.0\.0\.1:(\d+) -> 81/.test(out), "kubectl to listen");
    const port = Number(/127\.0\.0\.1:(\d+) -> 81/.exec(out)![1]);
    await roundTrip(port, Buffer.from("x")).catch(() => Buffer.alloc(0));
    const r = await pf;
    expect(r.exitCode).toBe(1);
    expect(err).toMatch(/error forwarding port 81 to pod p, uid [0-9a-f-]+: connect ECONNREFUSED/);
    expect(err).toContain("lost connection to pod");
  });

  it("client-node: PortForward (WebSocket protocol, port prefix per channel) and Exec with a terminal resize", async () => {
    const forward = new PortForward(t.kubeConfig);
    const fromPod = new PassThrough();
    let received = "";
    fromPod.on("data", (c: Buffer) => (received += c.toString()));
    const toPod = new PassThrough();
    const errors: Buffer[] = [];
    const errOut = new Writable({
      write(c: Buffer, _e, cb) {
        errors.push(c);
        cb();
      },
    });
    const ws = (await forward.portForward("default", "p", [80], fromPod, errOut, toPod)) as WebSocket;
    toPod.write("via client-node\n");
    await until(() => received === "hello from pod\nvia client-node\n", "the echo");
    ws.close();

    const refused = (await forward.portForward("default", "p", [81], new PassThrough(), errOut, new PassThrough())) as WebSocket;
    await until(() => refused.readyState === WebSocket.CLOSED, "the WebSocket to close");
    expect(Buffer.concat(errors).toString()).toMatch(/^error forwarding port 81 to pod p, uid [0-9a-f-]+: connect ECONNREFUSED/);

    const exec = new Exec(t.kubeConfig);
    let output = "";
    const out = new PassThrough();
    out.on("data", (c: Buffer) => (output += c.toString()));
    const stdin = new PassThrough();
    const status = await new Promise<{ status: string; details?: { causes: Array<{ reason: string; message: string }> } }>((resolve) => {
      void exec
        .exec("default", "p", "c", ["sh", "-c", "stty size; read line; echo got $line; exit 2"], out, out, stdin, true, (s) => resolve(s as never))
        .then((conn) => {
          // Channel 4: the terminal's size, as a client sends it when its window changes.
          (conn as WebSocket).send(Buffer.concat([Buffer.of(4), Buffer.from(JSON.stringify({ Width: 120, Height: 40 }))]));
          setTimeout(() => stdin.write("abc\n"), 700);
        });
    });
    expect(output).toContain("40 120\r\n");
    expect(output).toContain("got abc");
    expect(status).toMatchObject({ status: "Failure", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: "2" }] } });
  });

  it("RBAC: exec and port-forward need create on pods/exec and pods/portforward, logs need get on pods/log", async () => {
    await t.client.create("/api/v1/namespaces/default/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "viewer" } });
    const token = async () =>
      (
        (
          await t.client.create("/api/v1/namespaces/default/serviceaccounts/viewer/token", {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: {},
          })
        ).status as { token: string }
      ).token;
    const rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    await t.client.create(`${rbac}/roles`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "viewer" },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] }],
    });
    await t.client.create(`${rbac}/rolebindings`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "viewer" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "viewer" },
      subjects: [{ kind: "ServiceAccount", name: "viewer" }],
    });
    const as = async (args: string[]) => kubectl([`--token=${await token()}`, ...args]);
    const denied = await as(["exec", "p", "-c", "c", "--", "true"]);
    expect(denied.exitCode).toBe(1);
    expect(denied.stderr).toContain('cannot create resource "pods/exec" in API group "" in the namespace "default"');
    expect((await as(["logs", "p", "-c", "c"])).stderr).toContain('cannot get resource "pods/log"');
    const pfDenied = await openWebSocket("/api/v1/namespaces/default/pods/p/portforward?ports=80", ["v4.channel.k8s.io"], await token());
    expect(pfDenied.status).toBe(403);
    expect(JSON.parse(pfDenied.body).message).toContain('cannot create resource "pods/portforward"');

    // A WebSocket upgrade is a GET, and still needs create (get alone does not do).
    await t.client.mergePatch(`${rbac}/roles/viewer`, {
      rules: [
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] },
        { apiGroups: [""], resources: ["pods/exec"], verbs: ["get"] },
        { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      ],
    });
    expect((await as(["exec", "p", "-c", "c", "--", "true"])).exitCode).toBe(1);
    expect((await as(["logs", "p", "-c", "c"])).exitCode).toBe(0);
    await t.client.mergePatch(`${rbac}/roles/viewer`, {
      rules: [
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] },
        { apiGroups: [""], resources: ["pods/exec"], verbs: ["create"] },
      ],
    });
    expect(await as(["exec", "p", "-c", "c", "--", "echo", "allowed"])).toMatchObject({ exitCode: 0, stdout: "allowed" });
  });

  it("discovery lists the streaming subresources with kube-apiserver's verbs", async () => {
    const list = (await t.client.get("/api/v1")) as unknown as { resources: Array<{ name: string; verbs: string[] }> };
    const find = (name: string) => list.resources.find((r) => r.name === name)?.verbs;
    expect(find("pods/exec")).toEqual(["create", "get"]);
    expect(find("pods/attach")).toEqual(["create", "get"]);
    expect(find("pods/portforward")).toEqual(["create", "get"]);
    expect(find("pods/log")).toEqual(["get"]);
  });

  it("garbage on the streams closes them, never the API server", async () => {
    // exec: unknown channels, a resize that is not JSON, text frames, a close signal for a channel that is not stdin.
    const exec = await openWebSocket("/api/v1/namespaces/default/pods/p/exec?container=c&command=cat&stdin=true&stdout=true", ["v5.channel.k8s.io"]);
    expect(exec.status).toBe(101);
    for (const frame of [Buffer.of(7, 1, 2), Buffer.from("\x04{not json"), Buffer.of(4), Buffer.of(255, 9), Buffer.of(255), randomBytes(5000)])
      exec.ws!.send(frame);
    exec.ws!.send("text frame");
    exec.ws!.send(Buffer.concat([Buffer.of(0), Buffer.from("still works\n")]));
    await until(() => exec.received().includes("still works"), "the command's echo");
    exec.ws!.close();

    // SPDY: random bytes, then a frame header promising more than arrives, then a SYN_STREAM whose compressed headers are garbage.
    const synGarbage = Buffer.concat([Buffer.from([0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x20]), randomBytes(32)]);
    for (const junk of [randomBytes(4096), Buffer.from([0x80, 0x03, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff]), synGarbage]) {
      for (const kind of ["spdy", "tunnel"] as const)
        for (const sub of ["portforward", "exec?container=c&command=cat&stdin=true&stdout=true"]) {
          expect(await rawUpgrade(kind, sub, junk), `${kind} ${sub}`).toBe(101);
        }
    }
    // A port-forward WebSocket with bad ports is refused before the upgrade.
    for (const q of ["", "?ports=0", "?ports=70000", "?ports=abc", "?ports=80,x"]) {
      const r = await openWebSocket(`/api/v1/namespaces/default/pods/p/portforward${q}`, ["v4.channel.k8s.io"]);
      expect(r.status, q).toBe(400);
      expect(JSON.parse(r.body).kind).toBe("Status");
    }
    // The server is still there and still serves streams.
    expect(await kubectl(["exec", "p", "-c", "c", "--", "echo", "alive"])).toMatchObject({ exitCode: 0, stdout: "alive" });
  });

  /** Sends `payload` through a forwarded local port, half-closes, and collects what comes back. */
  function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = net.connect(port, "127.0.0.1");
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("error", reject);
      s.on("close", () => resolve(Buffer.concat(chunks)));
      s.write(payload);
      // The echo answers what it got; end once everything is back.
      const want = payload.length + 15;
      const check = setInterval(() => {
        if (chunks.reduce((n, c) => n + c.length, 0) >= want) {
          clearInterval(check);
          s.end();
        }
      }, 20);
      s.on("close", () => clearInterval(check));
    });
  }

  /** A WebSocket upgrade as a client-go client makes it; the answer's status and body when it is refused. */
  function openWebSocket(
    urlPath: string,
    protocols: string[],
    token = t.api.adminToken,
  ): Promise<{ status: number; body: string; ws?: WebSocket; received: () => string }> {
    return new Promise((resolve, reject) => {
      let text = "";
      const ws = new WebSocket(`${t.api.url.replace("https", "wss")}${urlPath}`, protocols, {
        ca: t.api.caPem,
        headers: { authorization: `Bearer ${token}` },
      });
      ws.on("message", (d: Buffer) => (text += d.subarray(1).toString()));
      ws.once("open", () => resolve({ status: 101, body: "", ws, received: () => text }));
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, received: () => "" }));
      });
      ws.once("error", reject);
    });
  }

  /**
   * A classic SPDY upgrade (`spdy`) or KEP-4006's SPDY-in-WebSocket (`tunnel`) of pods/p/<sub>, made by hand (ws
   * refuses "SPDY/3.1+portforward.k8s.io" as a subprotocol), then `junk` on the upgraded connection; the answer's status.
   */
  function rawUpgrade(kind: "spdy" | "tunnel", sub: string, junk: Buffer): Promise<number> {
    return new Promise((resolve) => {
      const url = new URL(t.api.url);
      const s = tls.connect({ host: url.hostname, port: Number(url.port), ca: t.api.caPem }, () => {
        const common = `Host: ${url.host}\r\nAuthorization: Bearer ${t.api.adminToken}\r\nConnection: Upgrade\r\n`;
        s.write(
          kind === "spdy"
            ? `POST /api/v1/namespaces/default/pods/p/${sub} HTTP/1.1\r\n${common}Upgrade: SPDY/3.1\r\n` +
                `X-Stream-Protocol-Version: ${sub.startsWith("exec") ? "v4.channel.k8s.io" : "portforward.k8s.io"}\r\nContent-Length: 0\r\n\r\n`
            : `GET /api/v1/namespaces/default/pods/p/${sub} HTTP/1.1\r\n${common}Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
                `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Protocol: ${sub.startsWith("exec") ? "v4.channel.k8s.io" : "SPDY/3.1+portforward.k8s.io"}\r\n\r\n`,
        );
      });
      let head = "";
      s.on("data", (c: Buffer) => {
        if (head.includes("\r\n\r\n")) return;
        head += c.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
        s.write(kind === "spdy" ? junk : maskedFrame(junk));
        setTimeout(() => {
          s.destroy();
          resolve(status);
        }, 200);
      });
      s.on("error", () => resolve(0));
    });
  }
});

/** One binary WebSocket frame as a client sends it (masked). */
function maskedFrame(payload: Buffer): Buffer {
  const mask = randomBytes(4);
  let header: Buffer;
  if (payload.length < 126) header = Buffer.from([0x82, 0x80 | payload.length]);
  else if (payload.length < 65536) {
    header = Buffer.from([0x82, 0x80 | 126, 0, 0]);
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x82;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([header, mask, masked]);
}
