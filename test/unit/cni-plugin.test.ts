// Ambit's CNI plugin executed exactly as a container runtime does (env + stdin), against a real unix-socket agent stub.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type CniEventServer, type CniRequest, type CniResponse, startCniEventServer } from "../../cni/index.ts";
import { CniRunner } from "../../sandbox/network/cni.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { buildCniExecutable } from "../../scripts/build.ts";
import { startTestApiServer } from "../support/apiserver.ts";

const SCRIPT = path.join(REPO_ROOT, "cni", "bin", "ambit-cni");
/** Where the single-executable build of the plugin is made for this file (built once, below). */
let seaDir = "";

beforeAll(async () => {
  seaDir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-cni-sea-"));
  await buildCniExecutable(seaDir);
}, 120_000);
afterAll(() => fs.rm(seaDir, { recursive: true, force: true }));

// The same conformance cases against both forms a runtime may run: the script on the checkout's Node, and the single
// executable for nodes without Node.
const FORMS = [
  { form: "script on Node", plugin: () => SCRIPT },
  { form: "single executable", plugin: () => path.join(seaDir, "ambit-cni") },
];
const prevResult = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", sandbox: "/run/netns/p" }],
  ips: [{ address: "10.244.1.7/24", interface: 0, gateway: "10.244.1.1" }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};

describe.each(FORMS)("ambit-cni plugin ($form)", ({ plugin }) => {
  let dir: string;
  let socket: string;
  let agent: CniEventServer | undefined;
  const requests: CniRequest[] = [];
  let answer: (req: CniRequest) => Promise<CniResponse> = async () => ({ ok: true, captured: true });

  const conf = (extra: Record<string, unknown> = {}) => ({
    cniVersion: "1.0.0",
    name: "ambit-sandbox",
    type: "ambit-cni",
    agentSocket: socket,
    timeoutMs: 1000,
    prevResult,
    ...extra,
  });
  const env = (command: string, extra: Record<string, string> = {}) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: "c0ffee",
    CNI_NETNS: "/run/netns/p",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/usr/lib/cni",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=orders-1;K8S_POD_UID=u-1",
    ...extra,
  });
  const exec = async (e: Record<string, string>, stdin: string) => {
    const r = await execa(plugin(), [], { env: e, extendEnv: false, input: stdin, reject: false, timeout: 20_000 });
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  };

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-cni-"));
    socket = path.join(dir, "cni.sock");
    requests.length = 0;
    answer = async () => ({ ok: true, captured: true });
    agent = await startCniEventServer(socket, async (req) => {
      requests.push(req);
      return answer(req);
    });
  });
  afterEach(async () => {
    await agent?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("ADD tells the agent about the pod and passes prevResult through unchanged", async () => {
    const r = await exec(env("ADD"), JSON.stringify(conf()));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(prevResult);
    expect(requests).toEqual([
      {
        command: "ADD",
        containerId: "c0ffee",
        netns: "/run/netns/p",
        ifName: "eth0",
        podNamespace: "demo",
        podName: "orders-1",
        podUid: "u-1",
        ips: ["10.244.1.7"],
      },
    ]);
    expect(r.stderr).toContain('"msg":"pod handed to the agent"');
  });

  it("ADD fails when the agent refuses, is down, or does not answer in time; DEL still succeeds", async () => {
    answer = async () => ({ ok: false, code: "AMBIT_E_CAPTURE", message: "iptables-restore failed" });
    const refused = await exec(env("ADD"), JSON.stringify(conf()));
    expect(refused.exitCode).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({
      cniVersion: "1.0.0",
      code: 100,
      msg: expect.stringContaining("iptables-restore failed"),
      details: "AMBIT_E_CAPTURE",
    });

    answer = () => new Promise(() => {});
    const slow = await exec(env("ADD"), JSON.stringify(conf({ timeoutMs: 200 })));
    expect(JSON.parse(slow.stdout)).toMatchObject({ code: 11, details: "AMBIT_E_CNI_TIMEOUT" });

    await agent?.close();
    agent = undefined;
    const down = await exec(env("ADD"), JSON.stringify(conf()));
    expect(down.exitCode).toBe(1);
    expect(JSON.parse(down.stdout)).toMatchObject({ code: 11, msg: expect.stringContaining("is the ambit agent running on this node?") });
    const del = await exec(env("DEL"), JSON.stringify(conf()));
    expect(del.exitCode).toBe(0);
    expect(del.stdout).toBe("");
    const delAgain = await exec(env("DEL", { CNI_NETNS: "" }), JSON.stringify(conf({ prevResult: undefined })));
    expect(delAgain.exitCode).toBe(0);
  });

  it("rejects malformed input with the spec's error codes", async () => {
    expect(JSON.parse((await exec(env("ADD"), "{not json")).stdout).code).toBe(6);
    expect(JSON.parse((await exec(env("ADD"), JSON.stringify(conf({ prevResult: undefined })))).stdout).code).toBe(7);
    expect(JSON.parse((await exec(env("ADD"), JSON.stringify(conf({ type: "other" })))).stdout).code).toBe(7);
    expect(JSON.parse((await exec(env("ADD"), JSON.stringify(conf({ cniVersion: "9.9.9" })))).stdout).code).toBe(1);
    const noCommand = await exec({}, JSON.stringify(conf()));
    expect(JSON.parse(noCommand.stdout)).toMatchObject({ code: 4, msg: "CNI_COMMAND is not set" });
    const noNetns = await exec(env("ADD", { CNI_NETNS: "" }), JSON.stringify(conf()));
    expect(JSON.parse(noNetns.stdout)).toMatchObject({ code: 4, msg: "CNI_NETNS is not set" });
    expect(JSON.parse((await exec(env("BOGUS"), JSON.stringify(conf()))).stdout).code).toBe(4);
    expect(requests).toEqual([]);
  });

  it("answers VERSION, STATUS, CHECK and GC", async () => {
    const version = await exec({ CNI_COMMAND: "VERSION" }, "");
    expect(JSON.parse(version.stdout)).toEqual({ cniVersion: "1.1.0", supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] });
    expect((await exec({ CNI_COMMAND: "STATUS" }, JSON.stringify(conf()))).exitCode).toBe(0);
    expect((await exec(env("CHECK"), JSON.stringify(conf()))).exitCode).toBe(0);
    expect(
      (await exec({ CNI_COMMAND: "GC" }, JSON.stringify(conf({ "cni.dev/valid-attachments": [{ containerID: "c0ffee", ifname: "eth0" }] })))).exitCode,
    ).toBe(0);
    expect(requests.map((r) => r.command)).toEqual(["STATUS", "CHECK", "GC"]);
    await agent?.close();
    agent = undefined;
    expect(JSON.parse((await exec({ CNI_COMMAND: "STATUS" }, JSON.stringify(conf()))).stdout).code).toBe(50);
  });

  it("chains after a main plugin in a conflist run by the sandbox's CNI runner", async () => {
    const bin = path.join(dir, "bin");
    await fs.mkdir(bin);
    // A stand-in main plugin that prints a result, as ptp would.
    await fs.writeFile(path.join(bin, "main"), `#!/bin/sh\ncat >/dev/null\necho '${JSON.stringify(prevResult)}'\n`, { mode: 0o755 });
    const runner = new CniRunner({ binDirs: [bin, path.dirname(plugin())], cacheDir: path.join(dir, "cache") });
    const list = { cniVersion: "1.0.0", name: "ambit-sandbox", plugins: [{ type: "main" }, { type: "ambit-cni", agentSocket: socket, timeoutMs: 1000 }] };
    const rt = {
      containerId: "c0ffee",
      netns: "/run/netns/p",
      ifName: "eth0",
      args: [
        ["K8S_POD_NAMESPACE", "demo"],
        ["K8S_POD_NAME", "orders-1"],
        ["K8S_POD_UID", "u-1"],
      ] as const,
    };
    const result = await runner.add(list, rt);
    expect(result).toEqual(prevResult);
    expect(requests.map((r) => r.command)).toEqual(["ADD"]);
    await runner.del(list, rt);
    expect(requests.map((r) => r.command)).toEqual(["ADD", "DEL"]);
  });

  it("with the agent down, lets pods the API says are not enrolled start and holds enrolled or unknown ones back", async () => {
    await agent?.close();
    agent = undefined;
    const api = await startTestApiServer();
    try {
      await api.client.request("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "plain" } });
      await api.client.request("POST", "/api/v1/namespaces", {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: "demo", labels: { "ambit.dev/dataplane-mode": "ambient" } },
      });
      const pod = (ns: string, name: string, labels: Record<string, string> = {}) =>
        api.client.request("POST", `/api/v1/namespaces/${ns}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, namespace: ns, labels },
          spec: { containers: [{ name: "c", image: "i" }] },
        });
      await pod("plain", "web-1");
      await pod("demo", "orders-1");
      await pod("demo", "batch-1", { "ambit.dev/dataplane-mode": "none" });
      const args = (ns: string, name: string) => ({ CNI_ARGS: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name};K8S_POD_UID=u-${name}` });
      const withApi = JSON.stringify(conf({ kubeconfig: api.kubeconfigPath }));

      const plain = await exec(env("ADD", args("plain", "web-1")), withApi);
      expect(plain.exitCode, plain.stdout + plain.stderr).toBe(0);
      expect(JSON.parse(plain.stdout)).toEqual(prevResult);
      expect(plain.stderr).toContain("not enrolled");

      const optedOut = await exec(env("ADD", args("demo", "batch-1")), withApi);
      expect(optedOut.exitCode, optedOut.stdout + optedOut.stderr).toBe(0);

      const enrolled = await exec(env("ADD", args("demo", "orders-1")), withApi);
      expect(enrolled.exitCode).toBe(1);
      expect(JSON.parse(enrolled.stdout)).toMatchObject({ code: 11, details: "AMBIT_E_CNI_AGENT_UNREACHABLE" });

      // Without a kubeconfig, or when the API cannot answer, nobody can vouch for the pod: fail closed.
      expect((await exec(env("ADD", args("plain", "web-1")), JSON.stringify(conf()))).exitCode).toBe(1);
      const badApi = await exec(env("ADD", args("plain", "web-1")), JSON.stringify(conf({ kubeconfig: path.join(dir, "missing-kubeconfig") })));
      expect(badApi.exitCode).toBe(1);
      expect(badApi.stderr).toContain("failing closed");

      // Excluded namespaces never wait for the agent.
      const system = await exec(env("ADD", args("kube-system", "coredns-1")), JSON.stringify(conf()));
      expect(system.exitCode, system.stdout + system.stderr).toBe(0);
      expect(JSON.parse((await exec(env("ADD"), JSON.stringify(conf({ excludeNamespaces: "demo" })))).stdout)).toMatchObject({ code: 7 });
    } finally {
      await api.close();
    }
  });

  it("a restarting agent's new socket survives the old agent closing its own", async () => {
    const next = await startCniEventServer(socket, async () => ({ ok: true, captured: false }));
    try {
      await agent?.close();
      agent = undefined;
      const r = await exec(env("ADD"), JSON.stringify(conf()));
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(requests).toEqual([]);
    } finally {
      await next.close();
    }
    await expect(fs.access(socket)).rejects.toThrow();
  });
});
