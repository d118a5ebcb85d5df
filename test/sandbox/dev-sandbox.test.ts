// End to end: `ambit dev up` builds a real 2-node cluster with the demo, kubectl drives it, `down` leaves no trace.
import fs from "node:fs/promises";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { processStartTicks } from "../../sandbox/state.ts";
import { ROOT_REQUIRED, TEST_SANDBOX_ENV, ambit, isRoot, kubeconfig, kubectl, rootNamespaceSnapshot, sandboxNetns } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

interface Hop {
  service: string;
  node: string;
  pod: string;
  serviceAccount: string;
  next?: Hop;
}

describeTier(isRoot, ROOT_REQUIRED)("ambit dev", () => {
  let before = "";
  let upOutput = "";

  beforeAll(async () => {
    await ambit(["dev", "down"]);
    before = await rootNamespaceSnapshot();
    const result = await ambit(["dev", "up", "--mesh"]);
    upOutput = `${result.stdout}\n${result.stderr}`;
    if (result.exitCode !== 0) throw new Error(`ambit dev up failed (${result.exitCode}):\n${upOutput}`);
  }, 200_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("reports each start-up step with its duration", () => {
    expect(upOutput).toMatch(/✓ create underlay and 2 node network namespaces \(\d+\.\d+s\)/);
    expect(upOutput).toMatch(/✓ start API server \(\d+\.\d+s\)/);
    expect(upOutput).toMatch(/✓ enroll namespace demo \(ambit.dev\/dataplane-mode=ambient\) \(\d+\.\d+s\)/);
    expect(upOutput).toMatch(/Sandbox ready in \d+\.\d+s/);
  });

  it("kubectl lists the demo pods Running with IPs on both nodes", async () => {
    const { stdout, exitCode, stderr } = await kubectl(["get", "pods", "-A", "-o", "wide"]);
    expect(exitCode, stderr).toBe(0);
    const rows = stdout
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    const demo = rows.filter((r) => r[0] === "demo" || r[0] === "legacy");
    expect(demo.length).toBe(6); // orders, 2x payments, fraud, client, legacy client
    for (const row of demo) {
      expect(row[3]).toBe("Running");
      expect(row[6]).toMatch(/^10\.244\.\d+\.\d+$/);
    }
    expect(new Set(demo.map((r) => r[7]))).toEqual(new Set(["node-1", "node-2"]));
    // Replicas are spread like kube-scheduler's default topology spread: payments has one pod on each node, so a
    // Service always has endpoints on both nodes (cross-node tests rely on it), and both controllers are apart.
    expect(
      demo
        .filter((r) => r[1]?.startsWith("payments-"))
        .map((r) => r[7])
        .sort(),
    ).toEqual(["node-1", "node-2"]);
    // --mesh: an agent per node, two controller replicas, and the demo namespace's pods captured (legacy stays outside).
    const phases = async (app: string) =>
      (await kubectl(["get", "pods", "-n", "ambit-system", "-l", `app=${app}`, "-o", "jsonpath={.items[*].status.phase}"])).stdout.split(" ");
    expect(await phases("ambit-agent")).toEqual(["Running", "Running"]);
    expect(await phases("ambit-controller")).toEqual(["Running", "Running"]);
    expect(
      rows
        .filter((r) => r[1]?.startsWith("ambit-controller-"))
        .map((r) => r[7])
        .sort(),
    ).toEqual(["node-1", "node-2"]);
    const redirection = (
      await kubectl(["get", "pods", "-A", "-o", 'jsonpath={range .items[*]}{.metadata.namespace}={.metadata.annotations.ambit\\.dev/redirection}{"\\n"}{end}'])
    ).stdout
      .trim()
      .split("\n");
    expect(redirection.filter((l) => l.startsWith("demo="))).toEqual(Array(5).fill("demo=enabled"));
    expect(redirection.filter((l) => l.startsWith("legacy="))).toEqual(["legacy=disabled"]);
  });

  it("the demo chain answers through Service names from the client pod", async () => {
    for (const host of ["orders.demo", "orders.demo.svc.cluster.local"]) {
      const { stdout, exitCode, stderr } = await ambit(["dev", "exec", "demo/client", "--", "curl", "-s", "--max-time", "5", `http://${host}/`]);
      expect(exitCode, stderr).toBe(0);
      const trace = JSON.parse(stdout) as Hop;
      expect([trace.service, trace.next?.service, trace.next?.next?.service]).toEqual(["orders", "payments", "fraud"]);
      expect(trace.serviceAccount).toBe("orders");
      expect(trace.next?.next?.next).toBeUndefined();
    }
  });

  it("pods see Kubernetes' environment: service links, downward API and a service-account token", async () => {
    const { stdout } = await ambit([
      "dev",
      "exec",
      "demo/client",
      "--",
      "sh",
      "-c",
      "echo $ORDERS_SERVICE_HOST $KUBERNETES_SERVICE_HOST $(hostname); cat /var/run/secrets/kubernetes.io/serviceaccount/namespace",
    ]);
    const [line, ns] = stdout.trim().split("\n");
    const [ordersHost, kubernetesHost, hostname] = (line ?? "").split(" ");
    expect(ordersHost).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(kubernetesHost).toBe("10.96.0.1");
    expect(hostname).toMatch(/^client-/);
    expect(ns).toBe("demo");
    const token = await ambit(["dev", "exec", "demo/client", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]);
    const review = await kubectl(["create", "-o", "json", "-f", "-"], {
      input: JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: token.stdout.trim() } }),
    });
    expect(review.exitCode, review.stderr).toBe(0);
    const status = JSON.parse(review.stdout).status;
    expect(status.authenticated).toBe(true);
    expect(status.user.username).toBe("system:serviceaccount:demo:client");
  });

  it("status -o json describes nodes and pods", async () => {
    const { stdout, exitCode } = await ambit(["dev", "status", "-o", "json"]);
    expect(exitCode).toBe(0);
    const s = JSON.parse(stdout);
    expect(s.nodes.map((n: { name: string }) => n.name)).toEqual(["node-1", "node-2"]);
    for (const n of s.nodes) {
      expect(n.netns).toBe(`${TEST_SANDBOX_ENV.AMBIT_DEV_NAME_PREFIX}-${n.name}`);
      expect(n.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      expect(n.interface).toBe("eth0");
    }
    const client = s.pods.find((p: { namespace: string; name: string }) => p.namespace === "demo" && p.name.startsWith("client-"));
    expect(client).toMatchObject({ phase: "Running", node: expect.stringMatching(/^node-/), ip: expect.stringMatching(/^10\.244\./) });
    expect((await sandboxNetns()).includes(client.netns)).toBe(true);
  });

  it("kubectl create, watch, label and delete behave as against a real API server", async () => {
    const watch = execa("kubectl", ["get", "pods", "-n", "demo", "-l", "app=extra", "-w", "--output-watch-events"], {
      env: { KUBECONFIG: kubeconfig },
      reject: false,
      timeout: 90_000,
    });
    const seen: string[] = [];
    watch.stdout?.on("data", (chunk: Buffer) => seen.push(...chunk.toString().trim().split("\n")));
    try {
      const manifest = {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "extra", namespace: "demo" },
        spec: {
          selector: { matchLabels: { app: "extra" } },
          template: {
            metadata: { labels: { app: "extra" } },
            spec: { containers: [{ name: "extra", image: "ambit.dev/toolbox:0.1" }] },
          },
        },
      };
      const created = await kubectl(["create", "-f", "-"], { input: JSON.stringify(manifest) });
      expect(created.exitCode, created.stderr).toBe(0);
      const ready = await kubectl(["wait", "-n", "demo", "--for=condition=Ready", "pod", "-l", "app=extra", "--timeout=60s"]);
      expect(ready.exitCode, ready.stderr).toBe(0);
      const pod = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=extra", "-o", "jsonpath={.items[0].metadata.name}"])).stdout;
      const netns = (await kubectl(["get", "pod", "-n", "demo", pod, "-o", "jsonpath={.metadata.annotations.sandbox\\.ambit\\.dev/netns}"])).stdout;
      expect(await sandboxNetns()).toContain(netns);

      const labelled = await kubectl(["label", "pod", "-n", "demo", pod, "tier=batch"]);
      expect(labelled.exitCode, labelled.stderr).toBe(0);
      expect((await kubectl(["get", "pods", "-n", "demo", "-l", "tier=batch", "-o", "name"])).stdout.trim()).toBe(`pod/${pod}`);

      const deleted = await kubectl(["delete", "deployment", "-n", "demo", "extra", "--wait=true"]);
      expect(deleted.exitCode, deleted.stderr).toBe(0);
      await expect
        .poll(async () => (await kubectl(["get", "pods", "-n", "demo", "-l", "app=extra", "-o", "name"])).stdout.trim(), { timeout: 30_000 })
        .toBe("");
      // The kubelet released the pod's network namespace.
      await expect.poll(async () => (await sandboxNetns()).includes(netns), { timeout: 10_000 }).toBe(false);
      await expect.poll(() => seen.some((l) => l.startsWith("DELETED")), { timeout: 10_000 }).toBe(true);
      expect(seen.some((l) => l.startsWith("ADDED"))).toBe(true);
      expect(seen.some((l) => l.startsWith("MODIFIED"))).toBe(true);
    } finally {
      watch.kill("SIGTERM");
    }
  });

  it("runs a hostNetwork DaemonSet pod on every node, in the node's network namespace", async () => {
    const ds = {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "node-tool", namespace: "default" },
      spec: {
        selector: { matchLabels: { app: "node-tool" } },
        template: { metadata: { labels: { app: "node-tool" } }, spec: { hostNetwork: true, containers: [{ name: "tool", image: "ambit.dev/toolbox:0.1" }] } },
      },
    };
    expect((await kubectl(["apply", "-f", "-"], { input: JSON.stringify(ds) })).exitCode).toBe(0);
    const ready = await kubectl(["wait", "--for=condition=Ready", "pod", "-l", "app=node-tool", "--timeout=60s"]);
    expect(ready.exitCode, ready.stderr).toBe(0);
    const pods = JSON.parse((await kubectl(["get", "pods", "-l", "app=node-tool", "-o", "json"])).stdout).items as Array<{
      spec: { nodeName: string };
      status: { podIP: string; hostIP: string };
    }>;
    expect(pods.map((p) => p.spec.nodeName).sort()).toEqual(["node-1", "node-2"]);
    for (const p of pods) expect(p.status.podIP).toBe(p.status.hostIP);
    const addr = await ambit(["dev", "exec", "default/node-tool", "--", "ip", "-4", "-o", "addr", "show", "eth0"]);
    expect(addr.stdout).toMatch(/inet 172\.31\.250\.1\d\//);
    const status = JSON.parse((await kubectl(["get", "ds", "node-tool", "-o", "json"])).stdout).status;
    expect(status).toMatchObject({ desiredNumberScheduled: 2, numberReady: 2 });
    expect((await kubectl(["delete", "ds", "node-tool"])).exitCode).toBe(0);
    await expect.poll(async () => (await kubectl(["get", "pods", "-l", "app=node-tool", "-o", "name"])).stdout.trim(), { timeout: 30_000 }).toBe("");
  });

  it("mounts ConfigMap and projected token volumes, and reports a mount it cannot make", async () => {
    const objects = [
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "vol-settings", namespace: "demo" }, data: { mode: "fast" } },
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "vols", namespace: "demo" },
        spec: {
          serviceAccountName: "client",
          containers: [
            {
              name: "c",
              image: "ambit.dev/toolbox:0.1",
              volumeMounts: [
                { name: "settings", mountPath: "/var/run/ambit-e2e-config" },
                { name: "tokens", mountPath: "/var/run/secrets/ambit-e2e-tokens", readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "settings", configMap: { name: "vol-settings" } },
            { name: "tokens", projected: { sources: [{ serviceAccountToken: { audience: "ambit-ca", expirationSeconds: 3600, path: "ca-token" } }] } },
          ],
        },
      },
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "badmount", namespace: "demo" },
        spec: {
          containers: [{ name: "c", image: "ambit.dev/toolbox:0.1", volumeMounts: [{ name: "e", mountPath: "/opt/ambit-e2e-nowhere" }] }],
          volumes: [{ name: "e", emptyDir: {} }],
        },
      },
    ];
    expect((await kubectl(["apply", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) })).exitCode).toBe(0);
    expect((await kubectl(["wait", "-n", "demo", "--for=condition=Ready", "pod/vols", "--timeout=60s"])).exitCode).toBe(0);
    const mode = await ambit(["dev", "exec", "demo/vols", "--", "cat", "/var/run/ambit-e2e-config/mode"]);
    expect(mode.stdout).toBe("fast");
    const token = await ambit(["dev", "exec", "demo/vols", "--", "cat", "/var/run/secrets/ambit-e2e-tokens/ca-token"]);
    const review = await kubectl(["create", "-o", "json", "-f", "-"], {
      input: JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: token.stdout.trim(), audiences: ["ambit-ca"] } }),
    });
    expect(JSON.parse(review.stdout).status).toMatchObject({
      authenticated: true,
      audiences: ["ambit-ca"],
      user: { username: "system:serviceaccount:demo:client" },
    });
    // Read-only mounts are read-only inside the pod.
    const write = await ambit(["dev", "exec", "demo/vols", "--", "sh", "-c", "echo x > /var/run/secrets/ambit-e2e-tokens/other"]);
    expect(write.exitCode).not.toBe(0);
    await expect
      .poll(
        async () => (await kubectl(["get", "pod", "-n", "demo", "badmount", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}"])).stdout,
        { timeout: 20_000 },
      )
      .toContain('mountPath "/opt/ambit-e2e-nowhere" does not exist on this machine');
    await kubectl(["delete", "-n", "demo", "pod/vols", "pod/badmount", "configmap/vol-settings", "--wait=false"]);
  });

  it("touches nothing in the root network namespace while running", async () => {
    expect(await rootNamespaceSnapshot()).toBe(before);
  });

  it("down removes every namespace, process and file, and is safe to run twice", async () => {
    const state = JSON.parse(await fs.readFile(`${TEST_SANDBOX_ENV.AMBIT_DEV_STATE_DIR}/state.json`, "utf8"));
    // Every process of the sandbox: pod processes and the API forwarders inside its namespaces.
    const pids: number[] = [];
    for (const ns of await sandboxNetns()) {
      const { stdout } = await execa("ip", ["netns", "pids", ns], { reject: false });
      pids.push(...stdout.split("\n").filter(Boolean).map(Number));
    }
    expect(pids.length).toBeGreaterThan(6);
    const first = await ambit(["dev", "down"]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(await sandboxNetns()).toEqual([]);
    expect(await processStartTicks(state.supervisorPid)).toBeUndefined();
    for (const pid of pids) expect(await processStartTicks(pid), `pid ${pid} survived down`).toBeUndefined();
    await expect(fs.access(TEST_SANDBOX_ENV.AMBIT_DEV_STATE_DIR)).rejects.toThrow();
    // Mount points the kubelet created on the host are gone too.
    await expect(fs.access("/run/ambit-e2e-config")).rejects.toThrow();
    await expect(fs.access("/run/secrets/ambit-e2e-tokens")).rejects.toThrow();
    expect(await rootNamespaceSnapshot()).toBe(before);
    const second = await ambit(["dev", "down"]);
    expect(second.exitCode, second.stderr).toBe(0);
  });

  it("up cleans a crashed sandbox first, and down cleans after a crash", async () => {
    const up = await ambit(["dev", "up", "--no-demo", "--nodes", "1"]);
    expect(up.exitCode, up.stderr).toBe(0);
    const state = JSON.parse(await fs.readFile(`${TEST_SANDBOX_ENV.AMBIT_DEV_STATE_DIR}/state.json`, "utf8"));
    process.kill(state.supervisorPid, "SIGKILL");
    await expect.poll(() => processStartTicks(state.supervisorPid)).toBeUndefined();
    expect((await sandboxNetns()).length).toBeGreaterThan(0);
    const again = await ambit(["dev", "up", "--no-demo", "--nodes", "1"]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain("clean up a sandbox that did not shut down");
    const again2 = JSON.parse(await fs.readFile(`${TEST_SANDBOX_ENV.AMBIT_DEV_STATE_DIR}/state.json`, "utf8"));
    process.kill(again2.supervisorPid, "SIGKILL");
    const down = await ambit(["dev", "down"]);
    expect(down.exitCode, down.stderr).toBe(0);
    expect(await sandboxNetns()).toEqual([]);
    expect(await rootNamespaceSnapshot()).toBe(before);
  }, 120_000);
});
