// Pod volumes: file contents, item paths that may not escape, projected tokens, and mount point rules.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { containerMounts, materializeVolumes } from "../../sandbox/kubelet/volumes.ts";
import type { KubeObject } from "../../kube/client.ts";

describe("pod volumes", () => {
  let dir: string;
  const tokens: Array<[string | undefined, number]> = [];
  const sources = {
    configMap: async (_ns: string, name: string) =>
      name === "cm" ? ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data: { a: "1", b: "2" } } as KubeObject) : undefined,
    secret: async (_ns: string, name: string) =>
      name === "s"
        ? ({ apiVersion: "v1", kind: "Secret", metadata: { name }, data: { key: Buffer.from("hush").toString("base64") } } as KubeObject)
        : undefined,
    token: async (audience: string | undefined, expirationSeconds: number) => {
      tokens.push([audience, expirationSeconds]);
      return { token: `token-for-${audience}`, lifetimeSeconds: expirationSeconds };
    },
    get nodeRoot() {
      return path.join(dir, "node-root");
    },
  };
  const pod = (volumes: object[]): KubeObject => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", namespace: "demo", labels: { app: "x" } },
    spec: { volumes },
  });

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-vol-"));
    tokens.length = 0;
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("resolves hostPath volumes inside the node's own root, so nodes do not share host directories", async () => {
    const { dirs } = await materializeVolumes(pod([{ name: "sock", hostPath: { path: "/var/run/ambit/../ambit", type: "DirectoryOrCreate" } }]), dir, sources);
    expect(dirs.get("sock")).toBe(path.join(dir, "node-root", "var/run/ambit"));
    expect((await fs.stat(dirs.get("sock")!)).isDirectory()).toBe(true);
  });

  it("writes configMap, secret, downwardAPI and projected token contents", async () => {
    const { dirs, refreshing } = await materializeVolumes(
      pod([
        { name: "cm", configMap: { name: "cm", items: [{ key: "b", path: "sub/b.txt" }] } },
        { name: "sec", secret: { secretName: "s" } },
        { name: "down", downwardAPI: { items: [{ path: "labels-app", fieldRef: { fieldPath: "metadata.labels['app']" } }] } },
        { name: "tok", projected: { sources: [{ serviceAccountToken: { audience: "ambit-ca", expirationSeconds: 1200, path: "t" } }] } },
      ]),
      dir,
      sources,
    );
    expect(await fs.readFile(path.join(dirs.get("cm")!, "sub/b.txt"), "utf8")).toBe("2");
    await expect(fs.access(path.join(dirs.get("cm")!, "a"))).rejects.toThrow();
    expect(await fs.readFile(path.join(dirs.get("sec")!, "key"), "utf8")).toBe("hush");
    expect((await fs.stat(path.join(dirs.get("sec")!, "key"))).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(path.join(dirs.get("down")!, "labels-app"), "utf8")).toBe("x");
    expect(await fs.readFile(path.join(dirs.get("tok")!, "t"), "utf8")).toBe("token-for-ambit-ca");
    expect(tokens).toEqual([["ambit-ca", 1200]]);
    expect(refreshing.map((r) => r.lifetimeSeconds)).toEqual([1200]);
  });

  it("refuses item paths that escape the volume and missing non-optional sources", async () => {
    await expect(
      materializeVolumes(pod([{ name: "cm", configMap: { name: "cm", items: [{ key: "a", path: "../../etc/x" }] } }]), dir, sources),
    ).rejects.toThrow(/must stay inside the volume/);
    await expect(materializeVolumes(pod([{ name: "cm", configMap: { name: "nope" } }]), dir, sources)).rejects.toThrow(/configmap "demo\/nope" .* not found/);
    await expect(materializeVolumes(pod([{ name: "cm", configMap: { name: "nope", optional: true } }]), dir, sources)).resolves.toBeTruthy();
    await expect(materializeVolumes(pod([{ name: "x", nfs: {} }]), dir, sources)).rejects.toThrow(/only emptyDir, configMap/);
    await expect(materializeVolumes(pod([{ name: "h", hostPath: { path: "var/run" } }]), dir, sources)).rejects.toThrow(/must be absolute/);
  });

  it("only creates missing mount points under /run", async () => {
    const dirs = new Map([["v", dir]]);
    const created: string[] = [];
    await expect(
      containerMounts({ name: "c", volumeMounts: [{ name: "v", mountPath: "/opt/ambit-unit-nowhere" }] }, dirs, (d) => created.push(d)),
    ).rejects.toThrow(/can only create mount points under \/run/);
    await expect(containerMounts({ name: "c", volumeMounts: [{ name: "missing", mountPath: "/tmp" }] }, dirs, (d) => created.push(d))).rejects.toThrow(
      /does not define/,
    );
    const mounts = await containerMounts({ name: "c", volumeMounts: [{ name: "v", mountPath: os.tmpdir(), readOnly: true }] }, dirs, (d) => created.push(d));
    expect(mounts).toEqual([{ source: dir, target: path.resolve(os.tmpdir()), readOnly: true }]);
    expect(created).toEqual([]);
  });
});
