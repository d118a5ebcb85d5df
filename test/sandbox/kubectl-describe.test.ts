// kubectl describe, get events and scale on the sandbox: the events its scheduler, kubelets and controllers record, as on a real cluster.
import fs from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadSandboxConfig } from "../../sandbox/config.ts";
import { nodeConflistPath } from "../../sandbox/network/index.ts";
import { ROOT_REQUIRED, TEST_SANDBOX_ENV, ambit, isRoot, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

/** The rows of the Events section of `kubectl describe`, as [type, reason, age, from, message]. */
async function describedEvents(args: string[]): Promise<string[][]> {
  const out = (await kubectl(["describe", ...args])).stdout;
  const section = out.split(/^Events:/m)[1] ?? "";
  return section
    .split("\n")
    .slice(3)
    .filter((l) => l.trim() !== "")
    .map((l) => l.trim().split(/\s{2,}/));
}

const apply = (items: object[]) => kubectl(["apply", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items }) });
const json = async (args: string[]) => JSON.parse((await kubectl(["get", ...args, "-o", "json"])).stdout);
const pod = (name: string, container: object, spec: object = {}) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "events" },
  spec: { containers: [{ name: "app", image: "ambit.dev/toolbox:0.1", ...container }], ...spec },
});

describeTier(isRoot, ROOT_REQUIRED)("kubectl describe, get events and scale on the sandbox", () => {
  beforeAll(async () => {
    await ambit(["dev", "down"]);
    const up = await ambit(["dev", "up"]);
    if (up.exitCode !== 0) throw new Error(`ambit dev up failed:\n${up.stdout}\n${up.stderr}`);
    expect((await kubectl(["create", "namespace", "events"])).exitCode).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("kubectl scale on a demo Deployment changes its pod count, and describe says so", async () => {
    const ready = async () => (await json(["deployment", "-n", "demo", "payments"])).status?.readyReplicas ?? 0;
    const live = async () =>
      (await json(["pods", "-n", "demo", "-l", "app=payments"])).items.filter(
        (p: { metadata: { deletionTimestamp?: string } }) => !p.metadata.deletionTimestamp,
      ).length;
    const scale = async (replicas: number) => {
      const r = await kubectl(["scale", "deployment/payments", "-n", "demo", `--replicas=${replicas}`]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe("deployment.apps/payments scaled");
    };
    const before = await live();
    await scale(before + 2);
    await expect.poll(ready, { timeout: 30_000 }).toBe(before + 2);
    expect(await live()).toBe(before + 2);
    await scale(1);
    await expect.poll(live, { timeout: 30_000 }).toBe(1);
    const hash = (await json(["pods", "-n", "demo", "-l", "app=payments"])).items[0].metadata.labels["pod-template-hash"];
    const events = (await describedEvents(["deployment", "-n", "demo", "payments"])).map((e) => [e[1], e[3], e[4]]);
    expect(events).toEqual(
      expect.arrayContaining([
        ["ScalingReplicaSet", "deployment-controller", `Scaled up replica set payments-${hash} from ${before} to ${before + 2}`],
        ["ScalingReplicaSet", "deployment-controller", `Scaled down replica set payments-${hash} from ${before + 2} to 1`],
        ["SuccessfulCreate", "replicaset-controller", expect.stringMatching(/^Created pod: payments-/)],
        ["SuccessfulDelete", "replicaset-controller", expect.stringMatching(/^Deleted pod: payments-/)],
      ]),
    );
    await scale(before);
    await expect.poll(ready, { timeout: 30_000 }).toBe(before);
  });

  it("a pod whose CNI ADD fails shows FailedCreatePodSandBox with the plugin's message, and starts once the network config is fixed", async () => {
    const nodes = (await json(["nodes"])).items.map((n: { metadata: { name: string } }) => n.metadata.name).sort();
    const node = nodes[nodes.length - 1] as string;
    const conflist = nodeConflistPath(loadSandboxConfig({ ...process.env, ...TEST_SANDBOX_ENV }), { name: node });
    const original = await fs.readFile(conflist, "utf8");
    // A plugin of the chain that fails ADD with its own error: tuning cannot set a sysctl the kernel does not have.
    const broken = JSON.parse(original) as { plugins: object[] };
    broken.plugins.push({ type: "tuning", sysctl: { "net.ipv4.conf.eth0.no_such_setting": "1" } });
    await fs.writeFile(conflist, JSON.stringify(broken, null, 2));
    try {
      expect((await apply([pod("unwired", { command: ["sleep", "3600"] }, { nodeName: node })])).exitCode).toBe(0);
      await expect
        .poll(async () => (await describedEvents(["pod", "-n", "events", "unwired"])).find((e) => e[1] === "FailedCreatePodSandBox"), { timeout: 30_000 })
        .toEqual([
          "Warning",
          "FailedCreatePodSandBox",
          expect.any(String),
          "kubelet",
          expect.stringMatching(
            /^Failed to create pod sandbox: failed to set up network for sandbox "[0-9a-f-]+": CNI plugin "tuning": ADD failed .*no_such_setting: no such file or directory$/,
          ),
        ]);
      expect((await json(["pod", "-n", "events", "unwired"])).status.phase).toBe("Pending");
      // The kubelet retries, and each retry counts on the same event.
      await expect
        .poll(async () => (await describedEvents(["pod", "-n", "events", "unwired"])).find((e) => e[1] === "FailedCreatePodSandBox")?.[2], { timeout: 30_000 })
        .toMatch(/\(x\d+ over /);
    } finally {
      await fs.writeFile(conflist, original);
    }
    await expect.poll(async () => (await json(["pod", "-n", "events", "unwired"])).status.phase, { timeout: 60_000 }).toBe("Running");
    const started = await describedEvents(["pod", "-n", "events", "unwired"]);
    expect(started.map((e) => e[1])).toEqual(expect.arrayContaining(["Pulled", "Created", "Started"]));
  });

  it("a failing readiness probe shows Unhealthy with the probe's output; the scheduler and kubelet report the rest", async () => {
    const probe = { exec: { command: ["sh", "-c", "echo warming up; exit 1"] }, periodSeconds: 1 };
    expect((await apply([pod("unready", { command: ["sleep", "3600"], readinessProbe: probe })])).exitCode).toBe(0);
    await expect
      .poll(async () => (await describedEvents(["pod", "-n", "events", "unready"])).find((e) => e[1] === "Unhealthy"), { timeout: 30_000 })
      .toEqual(["Warning", "Unhealthy", expect.any(String), "kubelet", "Readiness probe failed: warming up"]);
    const p = await json(["pod", "-n", "events", "unready"]);
    expect(p.status.phase).toBe("Running");
    expect(p.status.containerStatuses[0].ready).toBe(false);
    const events = await describedEvents(["pod", "-n", "events", "unready"]);
    expect(events).toContainEqual([
      "Normal",
      "Scheduled",
      expect.any(String),
      "default-scheduler",
      `Successfully assigned events/unready to ${p.spec.nodeName}`,
    ]);
    expect(events).toContainEqual(["Normal", "Started", expect.any(String), "kubelet", "Started container app"]);
  });

  it("a crashing container shows BackOff, and the pod CrashLoopBackOff", async () => {
    expect((await apply([pod("crasher", { command: ["sh", "-c", "echo bye; exit 3"] })])).exitCode).toBe(0);
    await expect
      .poll(async () => (await describedEvents(["pod", "-n", "events", "crasher"])).find((e) => e[1] === "BackOff"), { timeout: 30_000 })
      .toEqual([
        "Warning",
        "BackOff",
        expect.any(String),
        "kubelet",
        expect.stringMatching(/^Back-off restarting failed container app in pod crasher_events\([0-9a-f-]+\)$/),
      ]);
    const table = (await kubectl(["get", "pod", "-n", "events", "crasher"])).stdout;
    expect(table).toMatch(/crasher\s+0\/1\s+(CrashLoopBackOff|Error|Completed|Running)\s+[1-9]/);
  });

  it("kubectl get events lists them all, and narrows them with the field selectors kubectl describe uses", async () => {
    const table = await kubectl(["get", "events", "-n", "events"]);
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE$/);
    for (const reason of ["FailedCreatePodSandBox", "Unhealthy", "BackOff", "Scheduled", "Started"]) expect(table.stdout).toContain(reason);
    const crasher = await json(["pod", "-n", "events", "crasher"]);
    const selector = `involvedObject.kind=Pod,involvedObject.name=crasher,involvedObject.namespace=events,involvedObject.uid=${crasher.metadata.uid}`;
    const items = (await json(["events", "-n", "events", "--field-selector", selector])).items as Array<{
      involvedObject: { name: string };
      count: number;
      reason: string;
    }>;
    expect(items.length).toBeGreaterThan(0);
    expect(new Set(items.map((e) => e.involvedObject.name))).toEqual(new Set(["crasher"]));
    // Repeats count on one event each: several restarts, one BackOff event.
    const backOff = items.filter((e) => e.reason === "BackOff");
    expect(backOff).toHaveLength(1);
    expect(backOff[0]!.count).toBeGreaterThanOrEqual(1);
  });
});
