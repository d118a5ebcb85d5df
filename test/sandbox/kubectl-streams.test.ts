// End to end on the sandbox: the real kubectl's logs, exec, attach, cp and port-forward (and client-node's PortForward) reach real pods.
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { execa, type ResultPromise } from "execa";
import { KubeConfig, PortForward } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT_REQUIRED, ambit, freshSandboxWithMesh, isRoot, kubeconfig, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const NS = "streams";
const TEST_PODS = `
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: Pod
metadata: {name: ticker, namespace: ${NS}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ambit.dev/toolbox
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; echo warn $i >&2; sleep 0.3; done"]
  - name: crash
    image: ambit.dev/toolbox
    command: ["sh", "-c", "echo started at $(date +%s%N); sleep 1; exit 1"]
  - name: reader
    image: ambit.dev/toolbox
    stdin: true
    command: ["sh", "-c", "while read line; do echo got $line; done"]
`;

/** A kubectl left running until what it printed (stdout and stderr) matches `until`, or the time is up. */
async function kubectlUntil(
  args: string[],
  until: RegExp,
  opts: { input?: string; ms?: number } = {},
): Promise<{ out: string; output: () => string; child: ResultPromise }> {
  const child = execa("kubectl", args, {
    env: { KUBECONFIG: kubeconfig },
    reject: false,
    buffer: false,
    all: true,
    ...(opts.input ? { input: opts.input } : {}),
  });
  let out = "";
  child.all!.on("data", (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + (opts.ms ?? 20_000);
  while (!until.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  return { out, output: () => out, child };
}

/** `kubectl port-forward <target> 0:<port>` until it listens; its local port. */
async function portForward(target: string[], remote: number): Promise<{ port: number; child: ResultPromise; output: () => string }> {
  const { out, child, output } = await kubectlUntil(["port-forward", ...target, `0:${remote}`], new RegExp(`127\\.0\\.0\\.1:\\d+ -> ${remote}`));
  const m = new RegExp(`127\\.0\\.0\\.1:(\\d+) -> ${remote}`).exec(out);
  if (!m) {
    child.kill("SIGKILL");
    throw new Error(`kubectl port-forward did not listen: ${out}`);
  }
  return { port: Number(m[1]), child, output };
}

const curl = async (url: string) => (await execa("curl", ["-s", "--max-time", "10", url], { reject: false })).stdout;
const podOf = async (ns: string, selector: string) =>
  (await kubectl(["get", "pods", "-n", ns, "-l", selector, "--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].metadata.name}"])).stdout;

describeTier(isRoot, ROOT_REQUIRED)("kubectl logs, exec, attach and port-forward on the sandbox", () => {
  let orders = "";

  beforeAll(async () => {
    await freshSandboxWithMesh();
    const applied = await kubectl(["apply", "-f", "-"], { input: TEST_PODS });
    if (applied.exitCode !== 0) throw new Error(applied.stderr);
    const ready = await kubectl(["wait", "-n", NS, "--for=jsonpath={.status.phase}=Running", "pod/ticker", "--timeout=60s"]);
    if (ready.exitCode !== 0) throw new Error(ready.stderr);
    orders = await podOf("demo", "app=orders");
  }, 180_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("logs: a demo pod's log, through its Deployment too, with --timestamps and --tail", async () => {
    const byPod = await kubectl(["logs", "-n", "demo", orders]);
    expect(byPod.exitCode, byPod.stderr).toBe(0);
    expect(byPod.stdout).toContain('"msg":"listening"');
    // kubectl resolves deploy/orders to one of its pods itself.
    expect((await kubectl(["logs", "-n", "demo", "deploy/orders"])).stdout).toContain('"service":"orders"');
    const stamped = await kubectl(["logs", "-n", NS, "ticker", "-c", "main", "--tail=2", "--timestamps"]);
    const lines = stamped.stdout.split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (tick|warn) \d+$/);
  });

  it("logs -f prints new lines as the container writes them; a stopped client leaves the pod unharmed", async () => {
    const { out, child } = await kubectlUntil(["logs", "-f", "-n", NS, "ticker", "-c", "main", "--tail=1"], /tick (\d+)\n[^]*tick (\d+)\n[^]*tick \d+\n/);
    child.kill("SIGINT");
    await child;
    const ticks = [...out.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    // Consecutive lines as they came, not a repeat of the log.
    expect(ticks.slice(1).every((n, i) => n === ticks[i]! + 1)).toBe(true);
    expect((await kubectl(["get", "pod", "-n", NS, "ticker", "-o", "jsonpath={.status.phase}"])).stdout).toBe("Running");
  });

  it("logs --previous: the run before the current one of a crashing container", async () => {
    await expect
      .poll(async () => Number((await kubectl(["get", "pod", "-n", NS, "ticker", "-o", "jsonpath={.status.containerStatuses[1].restartCount}"])).stdout), {
        timeout: 30_000,
        interval: 500,
      })
      .toBeGreaterThanOrEqual(1);
    const previous = await kubectl(["logs", "-n", NS, "ticker", "-c", "crash", "--previous"]);
    expect(previous.exitCode, previous.stderr).toBe(0);
    expect(previous.stdout).toMatch(/^started at \d+$/);
    const never = await kubectl(["logs", "-n", NS, "ticker", "-c", "main", "--previous"]);
    expect(never.exitCode).toBe(1);
    expect(never.stderr).toContain('previous terminated container "main" in pod "ticker" not found');
  });

  it("logs of a container that could not start say why, as the kubelet does", async () => {
    const broken = `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "broken", "namespace": "${NS}"}, "spec": {"containers": [{"name": "main", "image": "registry.example/none:1"}]}}`;
    expect((await kubectl(["apply", "-f", "-"], { input: broken })).exitCode).toBe(0);
    await expect
      .poll(async () => (await kubectl(["get", "pod", "-n", NS, "broken", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"])).stdout, {
        timeout: 30_000,
        interval: 500,
      })
      .toBe("CreateContainerConfigError");
    // The kubelet retries the pod meanwhile (ContainerCreating again for a moment): ask until it answers with the reason.
    const logs = () => kubectl(["logs", "-n", NS, "broken"]);
    await expect
      .poll(async () => (await logs()).stderr, { timeout: 30_000, interval: 500 })
      .toContain('container "main" in pod "broken" is waiting to start: CreateContainerConfigError');
    const r = await logs();
    expect(r.exitCode).toBe(1);
    const exec = await kubectl(["exec", "-n", NS, "broken", "--", "true"]);
    expect(exec.exitCode).toBe(1);
    expect(exec.stderr).toContain('container not found ("main")');
  });

  it("exec: runs in the container's namespaces, mounts and environment; stdout, stderr and the exit code come back", async () => {
    const r = await kubectl([
      "exec",
      "-n",
      "demo",
      orders,
      "--",
      "sh",
      "-c",
      "hostname; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; echo $SERVICE_NAME; ip -o -4 addr show eth0 | awk '{print $4}'; echo oops >&2; exit 3",
    ]);
    expect(r.exitCode).toBe(3);
    const podIp = (await kubectl(["get", "pod", "-n", "demo", orders, "-o", "jsonpath={.status.podIP}"])).stdout;
    const [hostname, namespace, service, address] = r.stdout.split("\n");
    expect([hostname, namespace, service]).toEqual([orders, "demo", "orders"]);
    // The pod's own network namespace: its eth0 has the pod's IP.
    expect(address).toMatch(new RegExp(`^${podIp.replaceAll(".", "\\.")}/\\d+$`));
    expect(r.stderr).toContain("oops");
    expect(r.stderr).toContain("command terminated with exit code 3");
    // Input reaches the command, and its end ends it.
    const piped = await kubectl(["exec", "-i", "-n", "demo", orders, "--", "sh", "-c", "tr a-z A-Z; echo done"], { input: "shout\n" });
    expect(piped).toMatchObject({ exitCode: 0, stdout: "SHOUT\ndone" });
    expect((await kubectl(["exec", "-n", "demo", "deploy/orders", "--", "true"])).exitCode).toBe(0);
  });

  it("exec -it: a terminal of the client's size in the pod", async () => {
    // script(1) gives kubectl a terminal; its input stays open (sleep) so it sends no end-of-file character.
    const r = await execa(
      "sh",
      ["-c", `sleep 3 | script -qfec "stty cols 101 rows 33; kubectl exec -it -n demo ${orders} -- sh -c 'tty; stty size; hostname'" /dev/null`],
      {
        env: { KUBECONFIG: kubeconfig },
        reject: false,
        timeout: 60_000,
      },
    );
    // execa strips the final line ending; the terminal's \r\n between lines shows a real tty.
    expect(r.stdout).toMatch(new RegExp(`^/dev/pts/\\d+\\r\\n33 101\\r\\n${orders}\\s*$`));
  });

  it("cp copies a file out of the pod's own mount namespace (its /etc/hosts)", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-cp-"));
    try {
      const r = await kubectl(["cp", `demo/${orders}:/etc/hosts`, path.join(dir, "hosts")]);
      expect(r.exitCode, r.stderr).toBe(0);
      // The pod's hosts file (services of its cluster), not the machine's.
      expect(await fs.readFile(path.join(dir, "hosts"), "utf8")).toMatch(/orders\.demo\.svc\.cluster\.local/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it("attach -i: input reaches a container with stdin: true, its output comes back", async () => {
    // Without stdinOnce the container's stdin stays open after this client's input ends: kubectl stays attached.
    const { out, child } = await kubectlUntil(["attach", "-i", "-n", NS, "ticker", "-c", "reader"], /got world/, { input: "hello\nworld\n" });
    child.kill("SIGINT");
    await child;
    expect(out).toContain("got hello");
    expect(out).toContain("got world");
    // The container keeps running for the next client (no stdinOnce).
    expect((await kubectl(["get", "pod", "-n", NS, "ticker", "-o", "jsonpath={.status.containerStatuses[2].restartCount}"])).stdout).toBe("0");
  });

  it("port-forward to a demo pod's port and to its Service", async () => {
    const pod = await portForward(["-n", "demo", `pod/${orders}`], 8080);
    const svc = await portForward(["-n", "demo", "svc/orders"], 80);
    try {
      expect(await curl(`http://127.0.0.1:${pod.port}/healthz`)).toBe("ok");
      expect(await curl(`http://127.0.0.1:${pod.port}/`)).toContain(`"pod":"${orders}"`);
      expect(await curl(`http://127.0.0.1:${svc.port}/`)).toContain('"service":"orders"');
    } finally {
      pod.child.kill("SIGINT");
      svc.child.kill("SIGINT");
    }
  });

  it("port-forward to an agent's admin port, which listens on the node's localhost only (agents are host-network pods)", async () => {
    const agent = await podOf("ambit-system", "app=ambit-agent");
    const node = (await kubectl(["get", "pod", "-n", "ambit-system", agent, "-o", "jsonpath={.spec.nodeName}"])).stdout;
    const pf = await portForward(["-n", "ambit-system", `pod/${agent}`], 15000);
    try {
      const dump = JSON.parse(await curl(`http://127.0.0.1:${pf.port}/config_dump`)) as { node: string };
      expect(dump.node).toBe(node);
    } finally {
      pf.child.kill("SIGINT");
    }
  });

  it("port-forward to a port nothing listens on: kubectl reports the pod's refusal", async () => {
    const pf = await portForward(["-n", "demo", `pod/${orders}`], 9);
    await curl(`http://127.0.0.1:${pf.port}/`);
    // kubectl 1.32 gives up on the first error: "lost connection to pod".
    const r = await pf.child;
    expect(r.exitCode).toBe(1);
    expect(pf.output()).toMatch(/error forwarding port 9 to pod .*connect ECONNREFUSED/);
  });

  it("client-node's PortForward (the WebSocket protocol the ambit CLI uses) reaches a demo pod", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const forward = new PortForward(kc);
    // One WebSocket per local connection, as client-node's PortForward is meant to be used behind a listener.
    const server = net.createServer((socket) => {
      void forward.portForward("demo", orders, [8080], socket, new PassThrough(), socket).catch(() => socket.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      expect(await curl(`http://127.0.0.1:${port}/healthz`)).toBe("ok");
    } finally {
      server.close();
    }
  });

  it("logs -f ends when the pod is deleted", async () => {
    const follow = execa("kubectl", ["logs", "-f", "-n", NS, "ticker", "-c", "main", "--tail=1"], {
      env: { KUBECONFIG: kubeconfig },
      reject: false,
      timeout: 60_000,
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await kubectl(["delete", "pod", "-n", NS, "ticker", "--wait=false"])).exitCode).toBe(0);
    const r = await follow;
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/tick \d+/);
  });
});
