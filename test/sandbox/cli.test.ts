// End to end on the sandbox: the operator CLI through the Kubernetes API only (agents by port-forward), as `ambit` and as `kubectl ambit`.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { ROOT_REQUIRED, TEST_SANDBOX_ENV, ambit, freshSandboxWithMesh, isRoot, kubeconfig, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

/** The operator commands read the sandbox's kubeconfig like any cluster's: nothing sandbox-specific. */
const cli = (args: string[]) => ambit(args, { env: { KUBECONFIG: kubeconfig } });
/** `kubectl ambit`: kubectl finds bin/kubectl-ambit on PATH, and its `#!/usr/bin/env node` the pinned Node 24 in node_modules/.bin. */
const PLUGIN_PATH = `${path.join(REPO_ROOT, "bin")}:${path.join(REPO_ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`;
const nodeOf = async (app: string) => (await kubectl(["get", "pods", "-n", "demo", "-l", `app=${app}`, "-o", "jsonpath={.items[0].spec.nodeName}"])).stdout;
const redirections = async () =>
  (await kubectl(["get", "pods", "-n", "demo", "-o", "jsonpath={.items[*].metadata.annotations.ambit\\.dev/redirection}"])).stdout.split(" ").sort();

/** The agent process of a node (found among the processes of its netns): stopped and resumed to play an agent down. */
async function agentPid(node: string): Promise<number> {
  const netns = `${TEST_SANDBOX_ENV.AMBIT_DEV_NAME_PREFIX}-${node}`;
  const pids = (await execa("ip", ["netns", "pids", netns])).stdout.split("\n").filter(Boolean);
  for (const pid of pids) {
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes("agent.mjs")) return Number(pid);
  }
  throw new Error(`no agent process in ${netns}`);
}

describeTier(isRoot, ROOT_REQUIRED)("operator CLI on the sandbox", () => {
  beforeAll(async () => {
    await freshSandboxWithMesh();
  }, 240_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("ambit enroll waits until every demo pod is captured, unenroll until every one is released", async () => {
    const enrolled = await cli(["enroll", "demo", "--timeout", "60"]);
    expect(enrolled.exitCode, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toMatch(/^5\/5 running pods of demo captured$/m);
    expect(await redirections()).toEqual(Array(5).fill("enabled"));

    const released = await cli(["unenroll", "demo", "-o", "json"]);
    expect(released.exitCode, released.stderr).toBe(0);
    expect(JSON.parse(released.stdout)).toMatchObject({ kind: "EnrollResult", namespace: "demo", enrolled: false });
    expect(await redirections()).toEqual(Array(5).fill("disabled"));

    expect((await cli(["enroll", "demo"])).exitCode).toBe(0);
    const unknown = await cli(["enroll", "no-such-namespace"]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain("AMBIT_E_UNKNOWN_NAMESPACE");
  }, 180_000);

  it("ambit tunnels --node <orders' node> lists the orders -> payments tunnel to the other node, with bytes", async () => {
    const ordersNode = await nodeOf("orders");
    // Requests spread over both payments pods: repeat until one crossed to the other node (and a tunnel is pooled).
    const tunnel = async () => {
      await ambit(["dev", "exec", "demo/client", "--", "curl", "-s", "--max-time", "4", "http://orders.demo/"]);
      const r = await cli(["tunnels", "--node", ordersNode, "-o", "json"]);
      expect(r.exitCode, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout) as { items: Array<Record<string, unknown> & { bytesSent: number; bytesReceived: number }> };
      return doc.items.find(
        (c) =>
          c.direction === "outbound" &&
          c.localIdentity === "spiffe://cluster.local/ns/demo/sa/orders" &&
          c.peerIdentity === "spiffe://cluster.local/ns/demo/sa/payments" &&
          c.peerNode !== ordersNode,
      );
    };
    let found: Awaited<ReturnType<typeof tunnel>>;
    for (let i = 0; i < 20 && !found; i++) found = await tunnel();
    expect(found).toMatchObject({ localNode: ordersNode, tlsVersion: "TLSv1.3" });
    expect(found!.peerNode).toBeTruthy();
    expect(found!.bytesSent).toBeGreaterThan(0);
    expect(found!.bytesReceived).toBeGreaterThan(0);

    const table = await cli(["tunnels", "--node", ordersNode]);
    expect(table.stdout).toMatch(/^NODE {2,}DIRECTION {2,}LOCAL IDENTITY/);
  }, 180_000);

  it("kubectl ambit status works as a kubectl plugin", async () => {
    const r = await execa("kubectl", ["ambit", "status", "-o", "json"], { reject: false, env: { KUBECONFIG: kubeconfig, PATH: PLUGIN_PATH } });
    expect(r.exitCode, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status).toMatchObject({ kind: "MeshStatus", healthy: true });
    expect(status.leader).toBeTruthy();
    expect(status.agents.map((a: { ready: boolean; reachable: boolean }) => a.ready && a.reachable)).toEqual([true, true]);
  }, 60_000);

  it("ambit check passes on the healthy sandbox and names the node whose agent is stopped", async () => {
    const ok = await cli(["check"]);
    expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).not.toContain("[FAIL]");

    const node = await nodeOf("fraud");
    const pid = await agentPid(node);
    process.kill(pid, "SIGSTOP");
    try {
      const bad = await cli(["check"]);
      expect(bad.exitCode).toBe(3);
      expect(bad.stdout).toMatch(new RegExp(`\\[FAIL\\] node ${node}: agent \\S+ (does not answer on its admin port|is not ready)`));
      expect(bad.stderr).toContain("AMBIT_E_UNHEALTHY");
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await expect.poll(async () => (await cli(["check"])).exitCode, { timeout: 60_000, interval: 2000 }).toBe(0);
  }, 180_000);
});
