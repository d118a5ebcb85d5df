// The CNI runner speaks the CNI wire protocol as libcni does: checked against fake plugin scripts that record what they got.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CniNetworkList, type CniRuntimeConf, CniError, CniRunner, formatCniArgs, parseNetworkList } from "../../sandbox/network/cni.ts";
import { podRuntimeConf } from "../../sandbox/network/pods.ts";

let dir: string;
let binA: string;
let binB: string;
let logDir: string;

/**
 * Writes a plugin script that appends "<name> <command>" to the call log, saves its stdin and CNI_*
 * environment, and then prints `stdout` and exits with `exitCode` (stderr gets `stderr`).
 */
async function fakePlugin(binDir: string, name: string, behaviour: { stdout?: string; exitCode?: number; stderr?: string } = {}): Promise<void> {
  const script = [
    "#!/bin/sh",
    `log=${JSON.stringify(logDir)}`,
    `echo "${name} $CNI_COMMAND" >> "$log/calls"`,
    `cat > "$log/${name}.$CNI_COMMAND.stdin"`,
    `env | grep '^CNI_' | sort > "$log/${name}.$CNI_COMMAND.env"`,
    behaviour.stderr ? `echo ${JSON.stringify(behaviour.stderr)} >&2` : "",
    behaviour.stdout !== undefined ? `printf '%s' '${behaviour.stdout}'` : "",
    `exit ${behaviour.exitCode ?? 0}`,
  ].join("\n");
  await fs.writeFile(path.join(binDir, name), script + "\n", { mode: 0o755 });
}

const result = (marker: string) =>
  JSON.stringify({ cniVersion: "1.0.0", interfaces: [{ name: "eth0", sandbox: "/run/netns/x" }], ips: [{ interface: 0, address: "10.244.1.7/24" }], marker });

const readJson = async (file: string): Promise<Record<string, unknown>> =>
  JSON.parse(await fs.readFile(path.join(logDir, file), "utf8")) as Record<string, unknown>;
const readEnv = async (file: string): Promise<Record<string, string>> =>
  Object.fromEntries(
    (await fs.readFile(path.join(logDir, file), "utf8"))
      .trim()
      .split("\n")
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  ) as Record<string, string>;
const calls = async (): Promise<string[]> => (await fs.readFile(path.join(logDir, "calls"), "utf8").catch(() => "")).trim().split("\n").filter(Boolean);

const list = (types: string[]): CniNetworkList => ({ cniVersion: "1.0.0", name: "testnet", plugins: types.map((type, i) => ({ type, setting: i })) });
const rt: CniRuntimeConf = {
  containerId: "pod-1234",
  netns: "/run/netns/some-pod",
  ifName: "eth0",
  args: [
    ["IgnoreUnknown", "1"],
    ["K8S_POD_NAME", "web"],
  ],
};

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-cni-runner-"));
  binA = path.join(dir, "bin-a");
  binB = path.join(dir, "bin-b");
  logDir = path.join(dir, "log");
  for (const d of [binA, binB, logDir]) await fs.mkdir(d);
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe("CniRunner ADD", () => {
  it("runs plugins in order, injecting name, cniVersion and the previous result, and caches the last result", async () => {
    await fakePlugin(binA, "first", { stdout: result("first") });
    await fakePlugin(binB, "second", { stdout: result("second") });
    const runner = new CniRunner({ binDirs: [binA, binB], cacheDir: path.join(dir, "cache") });

    const out = await runner.add(list(["first", "second"]), rt);

    expect(await calls()).toEqual(["first ADD", "second ADD"]);
    const firstIn = await readJson("first.ADD.stdin");
    expect(firstIn).toEqual({ type: "first", setting: 0, name: "testnet", cniVersion: "1.0.0" });
    const secondIn = await readJson("second.ADD.stdin");
    expect(secondIn).toMatchObject({ type: "second", setting: 1, name: "testnet", cniVersion: "1.0.0" });
    expect(secondIn.prevResult).toEqual(JSON.parse(result("first")));
    expect(out).toEqual(JSON.parse(result("second")));
    expect((await runner.cached("testnet", rt))?.result).toEqual(out);
    await expect(fs.readdir(path.join(dir, "cache"))).resolves.toEqual(["testnet-pod-1234-eth0.json"]);
  });

  it("passes the CNI environment: command, container, netns, interface, args and every bin dir as CNI_PATH", async () => {
    await fakePlugin(binB, "only", { stdout: result("only") });
    await new CniRunner({ binDirs: [binA, binB], cacheDir: path.join(dir, "cache") }).add(list(["only"]), rt);

    expect(await readEnv("only.ADD.env")).toEqual({
      CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "pod-1234",
      CNI_IFNAME: "eth0",
      CNI_NETNS: "/run/netns/some-pod",
      CNI_PATH: `${binA}:${binB}`,
    });
  });

  it("stops the chain at the first failing plugin and reports its error JSON", async () => {
    await fakePlugin(binA, "broken", { stdout: '{"cniVersion":"1.0.0","code":7,"msg":"invalid network config","details":"subnet missing"}', exitCode: 1 });
    await fakePlugin(binA, "after", { stdout: result("after") });
    const runner = new CniRunner({ binDirs: [binA], cacheDir: path.join(dir, "cache") });

    const err = await runner.add(list(["broken", "after"]), rt).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(CniError);
    expect(err).toMatchObject({ code: "AMBIT_E_CNI", plugin: "broken", cniCode: 7, details: "subnet missing" });
    expect((err as Error).message).toContain("invalid network config");
    expect(await calls()).toEqual(["broken ADD"]);
    expect(await runner.cached("testnet", rt)).toBeUndefined();
  });

  it("falls back to stderr when a failing plugin prints no error JSON", async () => {
    await fakePlugin(binA, "crashy", { stderr: "panic: nil pointer", exitCode: 2 });
    const err = await new CniRunner({ binDirs: [binA], cacheDir: path.join(dir, "cache") }).add(list(["crashy"]), rt).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "AMBIT_E_CNI", plugin: "crashy", cniCode: undefined });
    expect((err as Error).message).toContain("panic: nil pointer");
  });

  it("names the plugin and the searched directories when a binary is missing", async () => {
    const err = await new CniRunner({ binDirs: [binA, binB], cacheDir: path.join(dir, "cache") }).add(list(["absent"]), rt).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "AMBIT_E_CNI", plugin: "absent" });
    expect((err as Error).message).toContain(binB);
  });

  it("rejects container ids and interface names libcni rejects", async () => {
    const runner = new CniRunner({ binDirs: [binA], cacheDir: path.join(dir, "cache") });
    await expect(runner.add(list(["x"]), { ...rt, containerId: "../etc" })).rejects.toThrow(/invalid container id/);
    await expect(runner.add(list(["x"]), { ...rt, ifName: "a-very-long-ifname" })).rejects.toThrow(/invalid interface name/);
  });
});

describe("CniRunner DEL and CHECK", () => {
  it("DEL runs plugins in reverse order, each with the cached ADD result, then forgets it", async () => {
    await fakePlugin(binA, "first", { stdout: result("first") });
    await fakePlugin(binA, "second", { stdout: result("second") });
    const runner = new CniRunner({ binDirs: [binA], cacheDir: path.join(dir, "cache") });
    await runner.add(list(["first", "second"]), rt);

    await runner.del(list(["first", "second"]), rt);

    expect(await calls()).toEqual(["first ADD", "second ADD", "second DEL", "first DEL"]);
    expect((await readJson("first.DEL.stdin")).prevResult).toEqual(JSON.parse(result("second")));
    expect((await readJson("second.DEL.stdin")).prevResult).toEqual(JSON.parse(result("second")));
    expect((await readEnv("first.DEL.env")).CNI_COMMAND).toBe("DEL");
    expect(await runner.cached("testnet", rt)).toBeUndefined();

    await runner.del(list(["first", "second"]), rt);
    expect((await readJson("first.DEL.stdin")).prevResult).toBeUndefined();
  });

  it("CHECK runs plugins in order against the cached result and needs a prior ADD", async () => {
    await fakePlugin(binA, "first", { stdout: result("first") });
    await fakePlugin(binA, "second", { stdout: result("second") });
    const runner = new CniRunner({ binDirs: [binA], cacheDir: path.join(dir, "cache") });

    await expect(runner.check(list(["first", "second"]), rt)).rejects.toMatchObject({ code: "AMBIT_E_CNI" });
    await runner.add(list(["first", "second"]), rt);
    await runner.check(list(["first", "second"]), rt);

    expect(await calls()).toEqual(["first ADD", "second ADD", "first CHECK", "second CHECK"]);
    expect((await readJson("first.CHECK.stdin")).prevResult).toEqual(JSON.parse(result("second")));
  });

  it("CHECK is skipped for CNI versions before 0.4.0 and when the list disables it", async () => {
    await fakePlugin(binA, "first", { stdout: result("first") });
    const runner = new CniRunner({ binDirs: [binA], cacheDir: path.join(dir, "cache") });
    await runner.check({ ...list(["first"]), cniVersion: "0.3.1" }, rt);
    await runner.check({ ...list(["first"]), disableCheck: true }, rt);
    expect(await calls()).toEqual([]);
  });
});

describe("conflist and arguments", () => {
  it("formats CNI_ARGS for a pod as containerd does", () => {
    const node = { name: "node-1", index: 1, netns: "ambit-dev-node-1", ip: "172.31.250.11", interface: "eth0", podCidr: "10.244.1.0/24" };
    const conf = podRuntimeConf(
      { node, podUid: "0f3e5a7c-1111-2222-3333-444455556666", namespace: "shop", name: "web-1", netns: "ambit-dev-pod-0f3e5a7c" },
      "eth0",
    );
    expect(conf).toMatchObject({ containerId: "0f3e5a7c-1111-2222-3333-444455556666", netns: "/run/netns/ambit-dev-pod-0f3e5a7c", ifName: "eth0" });
    expect(formatCniArgs(conf.args)).toBe(
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=0f3e5a7c-1111-2222-3333-444455556666;K8S_POD_UID=0f3e5a7c-1111-2222-3333-444455556666",
    );
  });

  it("validates conflist files", () => {
    expect(parseNetworkList('{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp"}]}', "f").plugins).toEqual([{ type: "ptp" }]);
    expect(() => parseNetworkList("{", "f.conflist")).toThrow(/f.conflist is not valid JSON/);
    expect(() => parseNetworkList('{"cniVersion":"1.0.0","name":"n","plugins":[]}', "f")).toThrow(/no "plugins"/);
    expect(() => parseNetworkList('{"cniVersion":"1.0.0","name":"n","plugins":[{"mtu":1}]}', "f")).toThrow(/without "type"/);
  });
});
