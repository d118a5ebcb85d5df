// End to end on the sandbox: the agent DaemonSet captures a labelled namespace's running pods and carries their
// traffic between nodes only inside mutual TLS, attributed to the right identities.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { cpuTimes } from "../../bench/tools/process-stats.ts";
import { sniff } from "../support/netns.ts";
import { ROOT_REQUIRED, TEST_SANDBOX_ENV, ambit, configDump, freshSandboxWithMesh, fromAgent, isRoot, kubectl, sandboxNodes } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const NODE1 = `${TEST_SANDBOX_ENV.AMBIT_DEV_NAME_PREFIX}-node-1`;

const chain = (marker: string) => ambit(["dev", "exec", "demo/client", "--", "curl", "-s", "--max-time", "5", `http://orders.demo/${marker}`]);
const redirection = async () =>
  JSON.parse((await kubectl(["get", "pods", "-n", "demo", "-o", "json"])).stdout).items.map(
    (p: { metadata: { name: string; annotations?: Record<string, string> } }) =>
      `${p.metadata.name.split("-")[0]}=${p.metadata.annotations?.["ambit.dev/redirection"] ?? ""}`,
  );
const containerIds = async () => (await kubectl(["get", "pods", "-n", "demo", "-o", "jsonpath={.items[*].status.containerStatuses[0].containerID}"])).stdout;

describeTier(isRoot, ROOT_REQUIRED)("L4 mesh on the sandbox", () => {
  beforeAll(async () => {
    await freshSandboxWithMesh();
  }, 180_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("before enrolling, the application's bytes cross the node link in plaintext", async () => {
    let answer = "";
    const dump = await sniff(NODE1, "eth0", "tcp", async () => (answer = (await chain("MARKER-before-7c1")).stdout));
    expect(answer).toContain('"service":"fraud"');
    expect(dump).toContain("MARKER-before-7c1");
  });

  it("labelling the namespace captures its running pods without restarting them; traffic is then only TLS", async () => {
    const before = await containerIds();
    expect((await kubectl(["label", "ns", "demo", "ambit.dev/dataplane-mode=ambient"])).exitCode).toBe(0);
    await expect.poll(redirection, { timeout: 15_000 }).toEqual(["client=enabled", "fraud=enabled", "orders=enabled", "payments=enabled", "payments=enabled"]);
    expect(await containerIds()).toBe(before);

    let answer = "";
    const dump = await sniff(NODE1, "eth0", "tcp", async () => (answer = (await chain("MARKER-after-9d2")).stdout));
    const trace = JSON.parse(answer);
    expect([trace.service, trace.next.service, trace.next.next.service]).toEqual(["orders", "payments", "fraud"]);
    expect(dump).not.toContain("MARKER-after-9d2");
    expect(dump).toMatch(/\.15008: Flags/);
  });

  it("refuses connections to a captured pod's own agent ports at once, so no pod can make an agent loop on itself", async () => {
    // A connect to <captured pod>:15006 used to be delivered to the agent's own listener there, which delivered it
    // again: 20,000 fds in seconds, a core at 100%, on and on after the client left. Here every such connection is
    // refused at the first hop, from a pod outside the mesh and from one inside it.
    type Pod = { metadata: { name: string }; spec: { nodeName: string }; status: { podIP: string; containerStatuses?: Array<{ containerID?: string }> } };
    const agents = (JSON.parse((await kubectl(["get", "pods", "-n", "ambit-system", "-l", "app=ambit-agent", "-o", "json"])).stdout).items as Pod[]).map((p) =>
      Number(p.status.containerStatuses?.[0]?.containerID?.replace("sandbox://", "")),
    );
    const fds = async () => Promise.all(agents.map(async (pid) => (await fs.readdir(`/proc/${pid}/fd`)).length));
    const cpu = async () => (await Promise.all(agents.map(cpuTimes))).reduce((sum, t) => sum + t.user + t.kernel, 0);
    const payments = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=payments", "-o", "jsonpath={.items[0].status.podIP}"])).stdout;
    const [fdsBefore, cpuBefore] = [await fds(), await cpu()];
    const attempts: Array<[string, string]> = [
      ["legacy/client", `http://${payments}:15006/`],
      ["legacy/client", `http://${payments}:15001/`],
      ["demo/client", `http://${payments}:15006/`],
      ["demo/client", `http://${payments}:15001/`],
      ["demo/client", `http://${payments}:15008/`],
      // Loopback is not captured: this one reaches the client's own outbound listener unredirected.
      ["demo/client", "http://127.0.0.1:15001/"],
    ];
    for (const [pod, url] of attempts) {
      const r = await ambit(["dev", "exec", pod, "--", "curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", url]);
      // Closed by the agent without an answer (curl 52 empty reply, 56 reset), never left hanging (28).
      expect({ url, pod, exit: r.exitCode, answered: r.stdout }).toMatchObject({ exit: expect.toBeOneOf([52, 56]), answered: "000" });
    }
    // Nothing keeps going after the clients left: the agents' descriptors are back where they were.
    await expect.poll(async () => (await fds()).map((n, i) => n - fdsBefore[i]!).every((d) => d <= 10), { timeout: 5_000, interval: 250 }).toBe(true);
    console.log(
      `self-connect attempts: agent fds before ${JSON.stringify(fdsBefore)}, after ${JSON.stringify(await fds())}; agents' CPU for ${attempts.length} attempts ${((await cpu()) - cpuBefore).toFixed(2)} s`,
    );
    const refused = (await Promise.all(["node-1", "node-2"].map((n) => fromAgent(n, (ip) => `http://${ip}:15020/metrics`))))
      .join("\n")
      .split("\n")
      .filter((l) => l.startsWith("ambit_connections_refused_total{") && /reason="(agent_port|self_connect)"/.test(l))
      .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
    expect(refused).toBeGreaterThanOrEqual(attempts.length - 1);
  });

  it("the destination agent attributes the connection to the source identity", async () => {
    // Cross-node on purpose: orders asks a payments pod on the other node by its address. Through the Service the
    // agent may pick a payments pod on orders' own node, and that connection never reaches another agent.
    type Pod = { metadata: { name: string; labels: Record<string, string> }; spec: { nodeName: string }; status: { podIP: string } };
    const pods = JSON.parse((await kubectl(["get", "pods", "-n", "demo", "-o", "json"])).stdout).items as Pod[];
    const orders = pods.find((p) => p.metadata.labels.app === "orders")!;
    const payments = pods.find((p) => p.metadata.labels.app === "payments" && p.spec.nodeName !== orders.spec.nodeName);
    if (!payments) throw new Error(`the sandbox scheduled every payments pod on orders' node ${orders.spec.nodeName}; this test needs one on the other node`);
    const answer = await ambit([
      "dev",
      "exec",
      `demo/${orders.metadata.name}`,
      "--",
      "curl",
      "-s",
      "--max-time",
      "5",
      `http://${payments.status.podIP}:8080/attribution`,
    ]);
    expect(JSON.parse(answer.stdout)).toMatchObject({ service: "payments", node: payments.spec.nodeName });

    const stdout = await fromAgent(payments.spec.nodeName, (ip) => `http://${ip}:15020/metrics`);
    const line = stdout
      .split("\n")
      .find(
        (l) =>
          l.startsWith("istio_tcp_connections_opened_total{") &&
          l.includes('reporter="destination"') &&
          l.includes('destination_workload="payments"') &&
          l.includes('source_workload="orders"'),
      );
    expect(
      line,
      stdout
        .split("\n")
        .filter((l) => l.startsWith("istio_tcp_connections_opened"))
        .join("\n"),
    ).toBeDefined();
    expect(line).toContain('source_principal="spiffe://cluster.local/ns/demo/sa/orders"');
    expect(line).toContain('destination_principal="spiffe://cluster.local/ns/demo/sa/payments"');
    expect(line).toContain('connection_security_policy="mutual_tls"');

    // Access logs: the source agent (orders' node) and the destination agent (payments' node) each log the close.
    const agentPodOn = async (nodeName: string) =>
      (
        await kubectl([
          "get",
          "pods",
          "-n",
          "ambit-system",
          "-l",
          "app=ambit-agent",
          "--field-selector",
          `spec.nodeName=${nodeName}`,
          "-o",
          "jsonpath={.items[0].metadata.name}",
        ])
      ).stdout;
    const lastClose = async (nodeName: string, reporter: string) =>
      (await ambit(["dev", "logs", `ambit-system/${await agentPodOn(nodeName)}`])).stdout
        .split("\n")
        .filter((l) => l.includes('"msg":"connection closed"'))
        .map((l) => JSON.parse(l))
        .filter((l) => l.reporter === reporter && l.src.identity === "spiffe://cluster.local/ns/demo/sa/orders" && l.dst.ip === payments.status.podIP)
        .at(-1);
    const ends = {
      src: { workload: "orders", namespace: "demo", identity: "spiffe://cluster.local/ns/demo/sa/orders", ip: orders.status.podIP },
      dst: { workload: "payments", namespace: "demo", identity: "spiffe://cluster.local/ns/demo/sa/payments", ip: payments.status.podIP, port: 8080 },
      security: "mutual_tls",
    };
    // The close lines are written when each agent sees its side finish, which can be just after curl has its
    // answer, so poll for them rather than reading the log once.
    await expect.poll(() => lastClose(orders.spec.nodeName, "source"), { timeout: 5_000 }).toMatchObject({ ...ends, pod: `demo/${orders.metadata.name}` });
    await expect
      .poll(() => lastClose(payments.spec.nodeName, "destination"), { timeout: 5_000 })
      .toMatchObject({ ...ends, pod: `demo/${payments.metadata.name}`, status: 200 });
    const [source, destination] = [await lastClose(orders.spec.nodeName, "source"), await lastClose(payments.spec.nodeName, "destination")];
    // Both sides count the same bytes: what orders sent is what payments' side received, and back.
    expect(source.bytesReceived).toBeGreaterThan(0);
    expect({ asked: destination.bytesReceived, answered: destination.bytesSent }).toEqual({ asked: source.bytesSent, answered: source.bytesReceived });
  });

  it("lets the legacy client in (PERMISSIVE), and nobody without a mesh certificate onto 15008", async () => {
    const legacy = await ambit(["dev", "exec", "legacy/client", "--", "curl", "-s", "--max-time", "5", "http://orders.demo/"]);
    expect(legacy.stdout).toContain('"service":"orders"');
    const paymentsIp = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=payments", "-o", "jsonpath={.items[0].status.podIP}"])).stdout;
    const noCert = await ambit([
      "dev",
      "exec",
      "legacy/client",
      "--",
      "curl",
      "-vsk",
      "--http2",
      "--max-time",
      "5",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `https://${paymentsIp}:15008/`,
    ]);
    // Something listens on 15008 and speaks TLS (its certificate arrived), asks for a client certificate, and ends a
    // client without one before any HTTP: no status code. (Whether curl prints the TLS 1.3 alert, "certificate
    // required", or only sees the connection close depends on which it reads first.)
    expect(noCert.stderr).toMatch(/Server certificate:/);
    expect(noCert.stderr).toMatch(/Request CERT/);
    expect(noCert.exitCode).not.toBe(0);
    expect(noCert.stdout).not.toMatch(/^[1-5]\d\d$/);
  });

  /**
   * 40 new client connections a second for 14 s, each crossing three captured hops (two of them cross-node), while
   * `replace` replaces both agents; the tally of what the client saw.
   */
  async function replacedUnderLoad(path_: string, replace: () => Promise<void>): Promise<Record<string, unknown>> {
    const node = path.join(REPO_ROOT, "node_modules", "node", "bin", "node");
    const load = ambit([
      "dev",
      "exec",
      "demo/client",
      "--",
      node,
      path.join(REPO_ROOT, "bench", "tools", "connection-load.ts"),
      `http://orders.demo/${path_}`,
      "40",
      "14",
      '"service":"fraud"',
    ]);
    await new Promise((r) => setTimeout(r, 2000));
    const before = (await kubectl(["get", "pods", "-n", "ambit-system", "-l", "app=ambit-agent", "-o", "jsonpath={.items[*].metadata.uid}"])).stdout.split(" ");
    await replace();
    await expect
      .poll(
        async () => {
          const pods = JSON.parse((await kubectl(["get", "pods", "-n", "ambit-system", "-l", "app=ambit-agent", "-o", "json"])).stdout).items as Array<{
            metadata: { uid: string };
          }>;
          return pods.length === 2 && pods.every((p) => !before.includes(p.metadata.uid));
        },
        { timeout: 40_000, interval: 500 },
      )
      .toBe(true);
    const tally = JSON.parse((await load).stdout);
    console.log(`agents replaced under load (${path_}): ${JSON.stringify(tally)}`);
    return tally;
  }
  const expectNoFailure = (t: Record<string, unknown>) =>
    expect({
      sent: t.sent,
      ok: t.ok,
      refused: t.refused,
      reset: t.reset,
      timeout: t.timeout,
      badAnswer: t.badAnswer,
      other: t.other,
      errors: t.errors,
    }).toEqual({ sent: 560, ok: 560, refused: 0, reset: 0, timeout: 0, badAnswer: 0, other: 0, errors: {} });

  it("restarts the agents under steady new-connection load without a refused or reset connection", async () => {
    // The new agent opens its listeners next to the old one's (SO_REUSEPORT), becomes Ready, then the old one
    // closes its listeners (queued connections migrate) and drains.
    const tally = await replacedUnderLoad("restart", async () => {
      expect((await kubectl(["rollout", "restart", "daemonset/ambit-agent", "-n", "ambit-system"])).exitCode).toBe(0);
    });
    expectNoFailure(tally);
  });

  it("deleting the agent pods under the same load refuses nothing: each keeps serving until its successor is ready", async () => {
    // Here the DaemonSet starts the successor only after the old agent was told to stop (SIGTERM); an agent that
    // closed its listeners at once refused connections until the new one had opened its own.
    const tally = await replacedUnderLoad("delete", async () => {
      expect((await kubectl(["delete", "pod", "-n", "ambit-system", "-l", "app=ambit-agent", "--wait=false"])).exitCode).toBe(0);
    });
    expectNoFailure(tally);
  });

  it("an agent killed while pods run is replaced by one that finds and captures them all again, with no CNI event", async () => {
    // Killed at once (no grace): its listeners die with it; the replacement hears no CNI ADD for the running pods,
    // so it must find each pod's netns itself, by IP in the node's netns directory, as on a real node.
    const before = (await kubectl(["get", "pods", "-n", "ambit-system", "-l", "app=ambit-agent", "-o", "jsonpath={.items[*].metadata.name}"])).stdout.split(
      " ",
    );
    expect((await kubectl(["delete", "pod", "-n", "ambit-system", ...before, "--grace-period=0", "--force", "--wait=true", "--timeout=60s"])).exitCode).toBe(0);
    await expect
      .poll(async () => (await kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-agent", "--timeout=30s"])).exitCode, {
        timeout: 60_000,
      })
      .toBe(0);
    const after = (await kubectl(["get", "pods", "-n", "ambit-system", "-l", "app=ambit-agent", "-o", "jsonpath={.items[*].metadata.name}"])).stdout.split(" ");
    expect(after.filter((p) => before.includes(p))).toEqual([]);
    // Every running demo pod is captured by a new agent: the chain answers, and only TLS crosses the node link.
    await expect.poll(async () => (await chain("probe")).stdout, { timeout: 30_000 }).toContain('"service":"fraud"');
    let answer = "";
    const dump = await sniff(NODE1, "eth0", "tcp", async () => (answer = (await chain("MARKER-recaptured-5e8")).stdout));
    expect(answer).toContain('"service":"fraud"');
    expect(dump).not.toContain("MARKER-recaptured-5e8");
    expect(dump).toMatch(/\.15008: Flags/);
    // Each found in its node's netns directory (the agent's hostPath), not through anything the sandbox told it.
    const enrolled = (await Promise.all((await sandboxNodes()).map(async (n) => (await configDump(n.name)).enrollment)))
      .flat()
      .filter((p) => p.namespace === "demo");
    expect(enrolled.map((p) => `${p.name.split("-")[0]}:${p.captured}:${p.netnsPath?.startsWith("/var/run/netns/")}`).sort()).toEqual(
      ["client", "fraud", "orders", "payments", "payments"].map((n) => `${n}:true:true`),
    );
  });

  it("captures a new pod of an enrolled namespace through the chained CNI plugin, and holds it back while no agent runs", async () => {
    const pod = (ns: string, name: string) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns },
      spec: { containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }] },
    });
    const apply = (items: object[]) => kubectl(["apply", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items }) });
    const state = async (ns: string, name: string) => {
      const p = JSON.parse((await kubectl(["get", "pod", "-n", ns, name, "-o", "json"])).stdout);
      return `${p.status?.phase}/${p.metadata.annotations?.["ambit.dev/redirection"] ?? "-"}`;
    };
    expect(
      (
        await apply([
          { apiVersion: "v1", kind: "Namespace", metadata: { name: "meshed", labels: { "ambit.dev/dataplane-mode": "ambient" } } },
          { apiVersion: "v1", kind: "Namespace", metadata: { name: "plain" } },
          pod("meshed", "first"),
        ])
      ).exitCode,
    ).toBe(0);
    // Captured by the CNI ADD, before its container ran: the annotation is there as soon as it is Running.
    await expect.poll(() => state("meshed", "first"), { timeout: 20_000 }).toBe("Running/enabled");

    // CNI CHECK, run as a runtime runs it, reports a captured pod whose rules were removed behind the agent's back.
    const first = JSON.parse((await kubectl(["get", "pod", "-n", "meshed", "first", "-o", "json"])).stdout);
    const plugin = (command: "CHECK" | "DEL") =>
      execa(path.join(REPO_ROOT, "cni", "bin", "ambit-cni"), [], {
        reject: false,
        extendEnv: false,
        env: {
          CNI_COMMAND: command,
          CNI_CONTAINERID: first.metadata.uid,
          CNI_NETNS: "/dev/null",
          CNI_IFNAME: "eth0",
          CNI_PATH: "/usr/lib/cni",
          CNI_ARGS: `K8S_POD_NAMESPACE=meshed;K8S_POD_NAME=first;K8S_POD_UID=${first.metadata.uid}`,
        },
        input: JSON.stringify({
          cniVersion: "1.0.0",
          name: "ambit-sandbox",
          type: "ambit-cni",
          agentSocket: `${TEST_SANDBOX_ENV.AMBIT_DEV_STATE_DIR}/nodes/${first.spec.nodeName}/var/run/ambit/cni.sock`,
          prevResult: { cniVersion: "1.0.0", ips: [{ address: `${first.status.podIP}/24` }] },
        }),
      });
    const check = () => plugin("CHECK");
    expect((await check()).exitCode).toBe(0);
    const netns = `/run/netns/${first.metadata.annotations["sandbox.ambit.dev/netns"]}`;
    // The agent's periodic verification may repair the rule between its removal and the CHECK: try again then.
    let broken = await check();
    for (let i = 0; i < 3 && broken.exitCode === 0; i++) {
      await execa("nsenter", [`--net=${netns}`, "--", "iptables", "-t", "nat", "-D", "OUTPUT", "-j", "AMBIT-OUTPUT"]);
      broken = await check();
    }
    expect(broken.exitCode).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({
      code: 100,
      details: "AMBIT_E_CNI_CHECK",
      msg: expect.stringContaining("capture rules are missing or partial"),
    });

    // A CNI DEL for the pod, which still runs: the agent asks the API and keeps it captured, and the verification
    // that follows every CNI event puts the missing rule back.
    expect((await plugin("DEL")).exitCode).toBe(0);
    await expect.poll(async () => (await check()).exitCode, { timeout: 10_000, interval: 300 }).toBe(0);
    expect(await state("meshed", "first")).toBe("Running/enabled");
    const rules = (await execa("nsenter", [`--net=${netns}`, "--", "iptables-save", "-t", "nat"])).stdout;
    expect(rules).toContain("-A OUTPUT -j AMBIT-OUTPUT");
    expect(rules).toContain("-A PREROUTING -j AMBIT-PREROUTING");

    // No agent runs, while its DaemonSet and the CNI installer stay (an agent that crashes or has not started yet):
    // the agent container replaced by one that never serves, and the pods deleted to take it.
    const noAgent = JSON.stringify([
      { op: "replace", path: "/spec/updateStrategy", value: { type: "OnDelete" } },
      { op: "add", path: "/spec/template/spec/containers/0/command", value: ["sleep", "infinity"] },
    ]);
    expect((await kubectl(["patch", "daemonset", "-n", "ambit-system", "ambit-agent", "--type", "json", "-p", noAgent])).exitCode).toBe(0);
    const agentPods = async () => (await kubectl(["get", "pods", "-n", "ambit-system", "-l", "app=ambit-agent", "-o", "json"])).stdout;
    const before = (JSON.parse(await agentPods()).items as Array<{ metadata: { name: string } }>).map((p) => p.metadata.name);
    expect((await kubectl(["delete", "pod", "-n", "ambit-system", ...before, "--wait=true", "--timeout=90s"])).exitCode).toBe(0);
    // The replacements: both containers started, the installer ready (Ambit chained), no agent serving.
    await expect
      .poll(
        async () => {
          const items = JSON.parse(await agentPods()).items as Array<{
            metadata: { name: string };
            spec: { nodeName: string };
            status?: { containerStatuses?: Array<{ name: string; ready: boolean }> };
          }>;
          const replaced = items.filter((p) => !before.includes(p.metadata.name) && p.status?.containerStatuses?.find((c) => c.name === "install-cni")?.ready);
          return new Set(replaced.map((p) => p.spec.nodeName)).size;
        },
        { timeout: 60_000 },
      )
      .toBe((await sandboxNodes()).length);
    expect((await apply([pod("meshed", "second"), pod("plain", "other")])).exitCode).toBe(0);
    // Not enrolled: the plugin asks the API and lets it start. Enrolled: it must not start uncaptured.
    await expect.poll(() => state("plain", "other"), { timeout: 20_000 }).toBe("Running/-");
    expect(await state("meshed", "second")).toBe("Pending/-");

    // The agent back (kubectl apply of the chart would keep both changes: they are not in its last-applied
    // configuration), the sleepers replaced: the held-back pod starts, captured.
    const agentBack = JSON.stringify([
      { op: "replace", path: "/spec/updateStrategy", value: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } },
      { op: "remove", path: "/spec/template/spec/containers/0/command" },
    ]);
    expect((await kubectl(["patch", "daemonset", "-n", "ambit-system", "ambit-agent", "--type", "json", "-p", agentBack])).exitCode).toBe(0);
    const sleepers = (JSON.parse(await agentPods()).items as Array<{ metadata: { name: string } }>).map((p) => p.metadata.name);
    expect((await kubectl(["delete", "pod", "-n", "ambit-system", ...sleepers, "--wait=false", "--ignore-not-found"])).exitCode).toBe(0);
    await expect.poll(() => state("meshed", "second"), { timeout: 60_000 }).toBe("Running/enabled");
    await expect
      .poll(async () => (await kubectl(["wait", "-n", "ambit-system", "--for=condition=Ready", "pod", "-l", "app=ambit-agent", "--timeout=30s"])).exitCode, {
        timeout: 60_000,
      })
      .toBe(0);
  });

  it("respects the pod opt-out label and releases everything when the namespace label goes", async () => {
    const fraud = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=fraud", "-o", "jsonpath={.items[0].metadata.name}"])).stdout;
    expect((await kubectl(["label", "pod", "-n", "demo", fraud, "ambit.dev/dataplane-mode=none"])).exitCode).toBe(0);
    await expect.poll(redirection, { timeout: 15_000 }).toContain("fraud=disabled");
    await expect.poll(async () => JSON.parse((await chain("opt-out")).stdout).next?.next?.service, { timeout: 10_000 }).toBe("fraud");

    expect((await kubectl(["label", "ns", "demo", "ambit.dev/dataplane-mode-"])).exitCode).toBe(0);
    await expect
      .poll(redirection, { timeout: 15_000 })
      .toEqual(["client=disabled", "fraud=disabled", "orders=disabled", "payments=disabled", "payments=disabled"]);
    // A keep-alive connection that was inside a tunnel when its pod was released may be reset once (see the
    // issue note: draining released pods' connections is the next step); the chain must answer right after.
    await expect.poll(async () => JSON.parse((await chain("released")).stdout).next?.next?.service, { timeout: 10_000 }).toBe("fraud");
    // With their last pods released, the nodes no longer hold (or renew) the demo identities; they keep their
    // own, and those of pods still captured (the "meshed" namespace of the test above).
    for (const node of ["node-1", "node-2"]) {
      const identities = async () => (await configDump(node)).certificates.map((c) => c.identity);
      await expect.poll(async () => (await identities()).filter((id) => id.includes("/ns/demo/")), { timeout: 10_000 }).toEqual([]);
      expect(await identities()).toContain("spiffe://cluster.local/ns/ambit-system/sa/ambit-agent");
    }
  });
});
