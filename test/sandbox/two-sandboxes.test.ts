// Two sandboxes with different prefixes on one machine: one's `down` must leave the other's pods and mounts alone.
import fs from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SHARED_MOUNTS_DIR } from "../../sandbox/shared-mounts.ts";
import { ROOT_REQUIRED, ambit, isRoot, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const OTHER = { AMBIT_DEV_NAME_PREFIX: "ambit-e2o", AMBIT_DEV_STATE_DIR: "/run/ambit-e2o", AMBIT_DEV_API_PORT: "16446" };
const otherKubectl = (args: string[], input?: string) =>
  kubectl(args, { env: { KUBECONFIG: `${OTHER.AMBIT_DEV_STATE_DIR}/kubeconfig` }, ...(input ? { input } : {}) });
const TOKEN = "/run/secrets/kubernetes.io/serviceaccount/token";
const pod = (name: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: default}\nspec:\n  containers: [{name: c, image: "ambit.dev/toolbox:0.1"}]\n`;

describeTier(isRoot, ROOT_REQUIRED)("two sandboxes side by side", () => {
  beforeAll(async () => {
    await ambit(["dev", "down"]);
    await ambit(["dev", "down"], { env: OTHER });
    for (const env of [{}, OTHER]) {
      const up = await ambit(["dev", "up", "--no-demo", "--nodes", "1"], { env });
      if (up.exitCode !== 0) throw new Error(`ambit dev up failed:\n${up.stdout}\n${up.stderr}`);
    }
  }, 180_000);

  afterAll(async () => {
    await ambit(["dev", "down"], { env: OTHER });
    await ambit(["dev", "down"]);
  }, 60_000);

  it("one sandbox's down keeps the other's pods reading their token and new pods starting; the last down removes the shared mount point", async () => {
    expect((await otherKubectl(["apply", "-f", "-"], pod("before"))).exitCode).toBe(0);
    expect((await otherKubectl(["wait", "--for=condition=Ready", "pod/before", "--timeout=60s"])).exitCode).toBe(0);
    const readToken = async (name: string) => (await ambit(["dev", "exec", `default/${name}`, "--", "cat", TOKEN], { env: OTHER })).stdout.split(".").length;

    expect(await readToken("before")).toBe(3);
    const down = await ambit(["dev", "down"]);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(down.stdout).toContain("kept the shared mount points");

    // The other sandbox's running pod still sees its token, and a pod started now gets one too.
    expect(await readToken("before")).toBe(3);
    expect((await otherKubectl(["apply", "-f", "-"], pod("after"))).exitCode).toBe(0);
    expect((await otherKubectl(["wait", "--for=condition=Ready", "pod/after", "--timeout=60s"])).exitCode).toBe(0);
    expect(await readToken("after")).toBe(3);

    // The last one down removes what they shared.
    expect((await ambit(["dev", "down"], { env: OTHER })).exitCode).toBe(0);
    await expect(fs.access("/run/secrets/kubernetes.io/serviceaccount")).rejects.toThrow();
    await expect(fs.access(SHARED_MOUNTS_DIR)).rejects.toThrow();
  });
});
