// The CLI's kubeconfig loading: a missing kubeconfig is named as such, not reported as a TLS error from a default URL.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadKubeConfig } from "../../cli/context.ts";

describe("loadKubeConfig", () => {
  let home: string;
  const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
  beforeEach(async () => {
    home = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-kubeconfig-"));
    process.env.HOME = home;
    delete process.env.KUBECONFIG;
  });
  afterEach(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await fs.rm(home, { recursive: true, force: true });
  });

  it("says that no kubeconfig was found and how to give one", () => {
    expect(() => loadKubeConfig({})).toThrow(
      expect.objectContaining({ code: "AMBIT_E_KUBECONFIG", message: expect.stringMatching(/^no kubeconfig found.*--kubeconfig/) }),
    );
  });

  it("loads ~/.kube/config when there is one", async () => {
    await fs.mkdir(path.join(home, ".kube"));
    await fs.writeFile(
      path.join(home, ".kube", "config"),
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]",
        "users: [{name: u, user: {token: t}}]",
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        "current-context: x",
      ].join("\n"),
    );
    expect(loadKubeConfig({}).getCurrentCluster()?.server).toBe("https://127.0.0.1:6443");
  });

  it("names an unknown context", async () => {
    const file = path.join(home, "kc");
    await fs.writeFile(
      file,
      "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\ncontexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
    );
    expect(() => loadKubeConfig({ kubeconfig: file, context: "nope" })).toThrow(/no context "nope"/);
  });
});
