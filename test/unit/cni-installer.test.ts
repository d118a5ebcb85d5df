// The CNI installer on real directories: chaining Ambit into the primary config, keeping it there, taking it out.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CniConfigError, CniInstaller, PLUGIN_FILE, PLUGIN_KUBECONFIG_FILE, hasAmbit, primaryConfig } from "../../cni/install/index.ts";
import { loadInstallerConfig } from "../../cni/install/config.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

/** Each poll's bound: the installer rescans every 100 ms, but the suite's first minutes load both cores (a 5 s bound failed once in CI). */
const POLL_MS = 15_000;

const AMBIT = { agentSocket: "/var/run/ambit/cni.sock", kubeconfig: "/etc/cni/net.d/ambit-kubeconfig", timeoutMs: 10_000 };
const flannelConf = { cniVersion: "0.3.1", name: "cbr0", type: "flannel", delegate: { hairpinMode: true } };
const calicoList = {
  cniVersion: "1.0.0",
  name: "k8s-pod-network",
  plugins: [
    { type: "calico", ipam: { type: "calico-ipam" } },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};

const exists = (file: string) =>
  fs.stat(file).then(
    () => true,
    () => false,
  );

describe("CNI installer", () => {
  let dir: string;
  let conf: string;
  let bin: string;
  let installer: CniInstaller;
  const read = async (name: string) => JSON.parse(await fs.readFile(path.join(conf, name), "utf8"));
  const write = (name: string, value: unknown) => fs.writeFile(path.join(conf, name), typeof value === "string" ? value : JSON.stringify(value));

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-install-"));
    conf = path.join(dir, "net.d");
    bin = path.join(dir, "bin");
    await fs.mkdir(conf);
    await fs.mkdir(bin);
    await fs.writeFile(path.join(dir, "plugin"), "#!/bin/sh\necho plugin\n");
    installer = new CniInstaller({
      confDir: conf,
      binDir: bin,
      pluginSource: path.join(dir, "plugin"),
      ambitConfig: AMBIT,
      log: pino({ level: "silent" }),
      rescanMs: 100,
    });
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it("appends Ambit to a .conflist after the cluster's plugins, once, and updates its entry in place", async () => {
    await write("10-calico.conflist", calicoList);
    expect(await installer.ensureChained()).toBe("chained");
    const chained = await read("10-calico.conflist");
    expect(chained.plugins.map((p: { type: string }) => p.type)).toEqual(["calico", "portmap", "ambit-cni"]);
    expect(chained.plugins[2]).toEqual({ ...AMBIT, type: "ambit-cni" });
    expect(await installer.ensureChained()).toBe("unchanged");
    const moved = new CniInstaller({
      confDir: conf,
      binDir: bin,
      pluginSource: path.join(dir, "plugin"),
      ambitConfig: { ...AMBIT, timeoutMs: 5_000 },
      log: pino({ level: "silent" }),
    });
    expect(await moved.ensureChained()).toBe("chained");
    expect(
      (await read("10-calico.conflist")).plugins.map((p: { type: string; timeoutMs?: number }) => `${p.type}${p.timeoutMs ? `:${p.timeoutMs}` : ""}`),
    ).toEqual(["calico", "portmap", "ambit-cni:5000"]);
  });

  it("turns a single-plugin .conf into a .conflist of the same name and removes the .conf", async () => {
    await write("10-flannel.conf", flannelConf);
    expect(await installer.ensureChained()).toBe("chained");
    expect((await fs.readdir(conf)).sort()).toEqual(["10-flannel.conflist"]);
    expect(await read("10-flannel.conflist")).toEqual({
      cniVersion: "0.3.1",
      name: "cbr0",
      plugins: [
        { type: "flannel", delegate: { hairpinMode: true } },
        { ...AMBIT, type: "ambit-cni" },
      ],
    });
  });

  it("picks the primary config as runtimes do (first by name), and leaves a broken one untouched with a clear error", async () => {
    expect(primaryConfig(["99-other.conflist", "05-cilium.conflist", ".hidden.conflist", "README"])).toBe("05-cilium.conflist");
    await write("00-broken.conflist", "{not json");
    await write("10-calico.conflist", calicoList);
    await expect(installer.ensureChained()).rejects.toThrow(CniConfigError);
    await expect(installer.ensureChained()).rejects.toThrow(/00-broken.conflist is not valid JSON/);
    expect(await fs.readFile(path.join(conf, "00-broken.conflist"), "utf8")).toBe("{not json");
    await write("00-only-ambit.conflist", { cniVersion: "1.0.0", name: "x", plugins: [{ type: "ambit-cni" }] });
    await fs.rm(path.join(conf, "00-broken.conflist"));
    await expect(installer.ensureChained()).rejects.toThrow(/Ambit needs the cluster's main CNI plugin before it/);
  });

  it("installs the plugin atomically, waits for the first config, re-inserts itself after another CNI rewrites it, and uninstalls", async () => {
    const stop = new AbortController();
    const running = installer.run(stop.signal);
    try {
      await expect.poll(() => fs.readFile(path.join(bin, PLUGIN_FILE), "utf8").catch(() => ""), { timeout: 5_000 }).toContain("echo plugin");
      expect(((await fs.stat(path.join(bin, PLUGIN_FILE))).mode & 0o777).toString(8)).toBe("755");
      expect(await fs.readdir(bin)).toEqual([PLUGIN_FILE]);
      // No config yet: the installer waits; the cluster's CNI writes one later.
      expect(await fs.readdir(conf)).toEqual([]);
      await write("10-calico.conflist", calicoList);
      await expect.poll(async () => hasAmbit(await fs.readFile(path.join(conf, "10-calico.conflist"), "utf8"), "x"), { timeout: 5_000 }).toBe(true);
      // The cluster's CNI rewrites its config (an upgrade) without Ambit: Ambit is chained again.
      await write("10-calico.conflist", { ...calicoList, name: "k8s-pod-network-v2" });
      await expect
        .poll(async () => (await read("10-calico.conflist")).plugins.map((p: { type: string }) => p.type).join(","), { timeout: 5_000 })
        .toBe("calico,portmap,ambit-cni");
      expect((await read("10-calico.conflist")).name).toBe("k8s-pod-network-v2");
      expect((await fs.readdir(conf)).filter((n) => n.startsWith("."))).toEqual([]);
    } finally {
      stop.abort();
      await running;
    }
    await installer.uninstall();
    expect(await read("10-calico.conflist")).toEqual({ ...calicoList, name: "k8s-pod-network-v2" });
    expect(await fs.readdir(bin)).toEqual([]);
  });

  it("as a program: installs from its environment, and on SIGTERM leaves Ambit chained when it cannot tell that no agent follows", async () => {
    await write("10-calico.conflist", calicoList);
    const env = {
      CNI_CONF_DIR: conf,
      CNI_BIN_DIR: bin,
      AMBIT_CNI_PLUGIN_SOURCE: path.join(dir, "plugin"),
      AMBIT_CNI_AGENT_SOCKET: "/var/run/ambit/cni.sock",
      AMBIT_CNI_EXCLUDE_NAMESPACES: "kube-system, monitoring",
      AMBIT_CNI_RESCAN_MS: "200",
    };
    const program = execa(process.execPath, [path.join(REPO_ROOT, "cni", "install", "main.ts")], { env, extendEnv: false, reject: false, timeout: 30_000 });
    try {
      await expect
        .poll(async () => (await read("10-calico.conflist")).plugins.at(-1), { timeout: 10_000 })
        .toEqual({ type: "ambit-cni", agentSocket: "/var/run/ambit/cni.sock", timeoutMs: 10_000, excludeNamespaces: ["kube-system", "monitoring"] });
    } finally {
      program.kill("SIGTERM");
    }
    const ended = await program;
    expect(ended.exitCode, ended.stderr).toBe(0);
    expect(hasAmbit(await fs.readFile(path.join(conf, "10-calico.conflist"), "utf8"), "x")).toBe(true);
    expect(await fs.readdir(bin)).toEqual([PLUGIN_FILE]);
    const bad = await execa(process.execPath, [path.join(REPO_ROOT, "cni", "install", "main.ts")], {
      env: { ...env, CNI_CONF_DIR: "relative/dir", AMBIT_CNI_RESCAN_MS: "x" },
      extendEnv: false,
      reject: false,
      timeout: 30_000,
    });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('CNI_CONF_DIR="relative/dir" must be an absolute path');
    expect(bad.stderr).toContain('AMBIT_CNI_RESCAN_MS="x" must be an integer');
  });

  it("writes the plugin's kubeconfig (0600, token inline) before chaining, rewrites it when the token rotates, is ready only while chained", async () => {
    const sa = path.join(dir, "sa");
    await fs.mkdir(sa);
    await fs.writeFile(path.join(sa, "token"), "token-1\n");
    await fs.writeFile(path.join(sa, "ca.crt"), "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");
    const ready = path.join(dir, "ready");
    const kubeconfig = path.join(conf, PLUGIN_KUBECONFIG_FILE);
    const creds = { host: "fd00::1", port: "443", tokenFile: path.join(sa, "token"), caFile: path.join(sa, "ca.crt") };
    const withCreds = new CniInstaller({
      confDir: conf,
      binDir: bin,
      pluginSource: path.join(dir, "plugin"),
      ambitConfig: { ...AMBIT, kubeconfig },
      log: pino({ level: "silent" }),
      rescanMs: 100,
      pluginCredentials: creds,
      readyFile: ready,
    });
    const stop = new AbortController();
    const running = withCreds.run(stop.signal);
    try {
      // No primary config yet: the kubeconfig is there, the container is not ready.
      await expect
        .poll(
          () =>
            fs.stat(kubeconfig).then(
              (s) => s.mode & 0o777,
              () => 0,
            ),
          { timeout: POLL_MS },
        )
        .toBe(0o600);
      expect(await exists(ready)).toBe(false);
      const doc = JSON.parse(await fs.readFile(kubeconfig, "utf8"));
      expect(doc.clusters[0].cluster.server).toBe("https://[fd00::1]:443");
      expect(doc.users[0].user.token).toBe("token-1");
      expect(Buffer.from(doc.clusters[0].cluster["certificate-authority-data"], "base64").toString()).toContain("BEGIN CERTIFICATE");
      // A .kubeconfig is never taken for the primary network.
      expect(primaryConfig(await fs.readdir(conf))).toBeUndefined();
      await write("10-calico.conflist", calicoList);
      await expect.poll(() => exists(ready), { timeout: POLL_MS }).toBe(true);
      expect((await read("10-calico.conflist")).plugins.at(-1).kubeconfig).toBe(kubeconfig);
      await fs.writeFile(path.join(sa, "token"), "token-2\n");
      await expect.poll(async () => JSON.parse(await fs.readFile(kubeconfig, "utf8")).users[0].user.token, { timeout: POLL_MS }).toBe("token-2");
      await fs.rm(path.join(conf, "10-calico.conflist"));
      await expect.poll(() => exists(ready), { timeout: POLL_MS }).toBe(false);
    } finally {
      stop.abort();
      await running;
    }
    await write("10-calico.conflist", calicoList);
    await withCreds.ensureChained();
    await withCreds.uninstall();
    expect((await fs.readdir(conf)).sort()).toEqual(["10-calico.conflist"]);
  });

  it("in a cluster, names its own kubeconfig in the chain unless one is given; outside, none", () => {
    const inCluster = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443", CNI_CONF_DIR: "/etc/cni/net.d" };
    const own = loadInstallerConfig(inCluster);
    expect(own.kubeconfig).toBe("/etc/cni/net.d/ambit-cni.kubeconfig");
    expect(own.pluginCredentials).toEqual({
      host: "10.96.0.1",
      port: "443",
      tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
      caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    });
    const given = loadInstallerConfig({ ...inCluster, AMBIT_CNI_KUBECONFIG: "/etc/kubernetes/cni.kubeconfig" });
    expect(given.kubeconfig).toBe("/etc/kubernetes/cni.kubeconfig");
    expect(given.pluginCredentials).toBeUndefined();
    expect(loadInstallerConfig({}).kubeconfig).toBeUndefined();
  });
});
