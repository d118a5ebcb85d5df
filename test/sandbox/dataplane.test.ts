// Two captured pods behind one node netns: their traffic crosses the node only inside mTLS (HBONE), with identities.
import net from "node:net";
import pino from "pino";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Dataplane } from "../../agent/dataplane/index.ts";
import { InPodCaptureDriver } from "../../agent/inpod/index.ts";
import type { Credentials, SpiffeId } from "../../agent/identity/index.ts";
import { AgentMetrics } from "../../agent/metrics/index.ts";
import { connectMarked, listenInNetns } from "../../agent/native/index.ts";
import { WorkloadIndex } from "../../agent/state/index.ts";
import { meshRecords } from "../../controller/state/index.ts";
import { run } from "../../host/exec.ts";
import type { KubeObject } from "../../kube/client.ts";
import { TestCa } from "../support/test-ca.ts";
import { sniff } from "../support/netns.ts";
import { ROOT_REQUIRED, isRoot } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const tag = process.pid;
const NODE = `ambit-dp-node-${tag}`;
const PODS = { orders: { netns: `ambit-dp-orders-${tag}`, ip: "10.126.0.2" }, payments: { netns: `ambit-dp-payments-${tag}`, ip: "10.126.0.3" } };
const NODE_IP = "10.126.0.1";
const nsPath = (n: string) => `/run/netns/${n}`;
const MARKER = "MARKER-7f3a9c-plaintext";

const podObject = (name: "orders" | "payments", captured: boolean, node = name === "orders" ? "node-1" : "node-2"): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: {
    name: `${name}-1`,
    namespace: "demo",
    uid: `uid-${name}`,
    labels: { app: name },
    annotations: { "ambit.dev/redirection": captured ? "enabled" : "disabled" },
  },
  spec: { serviceAccountName: name, nodeName: node },
  status: { podIP: PODS[name].ip },
});

describeTier(isRoot, ROOT_REQUIRED)("data path between captured pods", () => {
  const servers: net.Server[] = [];
  const received: string[] = [];
  const index = new WorkloadIndex();
  const metrics = new AgentMetrics();
  /** The agent's access log, parsed. */
  const logLines: Array<Record<string, unknown> & { msg: string; reporter?: string }> = [];
  const closes = (reporter: string) => logLines.filter((l) => l.msg === "connection closed" && l.reporter === reporter);
  let dataplane: Dataplane;
  let driver: InPodCaptureDriver;

  beforeAll(async () => {
    await execa("ip", ["netns", "add", NODE]);
    await run("ip", ["-batch", "-"], { netns: NODE, input: `link set lo up\nlink add br0 type bridge\naddr add ${NODE_IP}/24 dev br0\nlink set br0 up\n` });
    for (const [name, pod] of Object.entries(PODS)) {
      await execa("ip", ["netns", "add", pod.netns]);
      await execa("ip", ["link", "add", "eth0", "netns", pod.netns, "type", "veth", "peer", "name", `v-${name}`, "netns", NODE]);
      await run("ip", ["-batch", "-"], { netns: pod.netns, input: `link set lo up\naddr add ${pod.ip}/24 dev eth0\nlink set eth0 up\n` });
      await run("ip", ["-batch", "-"], { netns: NODE, input: `link set v-${name} master br0\nlink set v-${name} up\n` });
    }
    // The payments app: records what it receives, answers with its name.
    const app = net.createServer({ allowHalfOpen: true }, (s) => {
      let got = "";
      s.on("data", (d) => (got += d)).on("end", () => {
        received.push(`${got} from ${s.remoteAddress}`);
        s.end(`payments got ${got}`);
      });
    });
    app.listen({ fd: listenInNetns(nsPath(PODS.payments.netns), "0.0.0.0", 8080) });
    servers.push(app);

    const ca = TestCa.create();
    const certs = new Map<string, Credentials>();
    for (const sa of ["orders", "payments"]) certs.set(sa, ca.issue({ trustDomain: "cluster.local", namespace: "demo", serviceAccount: sa }));
    dataplane = new Dataplane({
      // The test's single agent plays node-1; payments counts as remote unless a test puts it on node-1.
      nodeName: "node-1",
      index,
      trustDomain: "cluster.local",
      trustBundlePem: ca.rootPem,
      credentialsFor: (id: SpiffeId) => certs.get(id.serviceAccount)!,
      localPodNetns: (ip) =>
        Object.values(PODS)
          .find((p) => p.ip === ip)
          ?.netns.replace(/^/, "/run/netns/"),
      metrics,
      log: pino({ level: "info" }, { write: (line: string) => logLines.push(JSON.parse(line)) }),
    });
    driver = new InPodCaptureDriver({ handlers: dataplane, probeSourceIps: [], log: pino({ level: "silent" }) });
  });

  afterAll(async () => {
    for (const [name, pod] of Object.entries(PODS))
      await driver?.release({ uid: `uid-${name}`, namespace: "demo", name, netnsPath: nsPath(pod.netns), ips: [pod.ip], serviceAccount: name }).catch(() => {});
    dataplane?.close();
    for (const s of servers) s.close();
    for (const ns of [NODE, PODS.orders.netns, PODS.payments.netns]) await execa("ip", ["netns", "del", ns], { reject: false });
  });

  const send = async (payload: string) => {
    const socket = await connectMarked(PODS.payments.ip, 8080, 0, nsPath(PODS.orders.netns));
    return new Promise<string>((resolve) => {
      let reply = "";
      socket
        .on("data", (d) => (reply += d))
        .on("end", () => resolve(reply))
        .on("error", (e: NodeJS.ErrnoException) => resolve(`ERR:${e.code}`));
      socket.end(payload);
    });
  };

  it("before capture the application's bytes cross the node in plaintext (so the check below can fail)", async () => {
    index.replace(meshRecords([podObject("orders", false), podObject("payments", false)], [], []).workloads, []);
    let reply = "";
    const dump = await sniff(NODE, "br0", "tcp and host 10.126.0.3", async () => {
      reply = await send(MARKER);
    });
    expect(reply).toBe(`payments got ${MARKER}`);
    expect(dump).toContain(MARKER);
  });

  it("once both pods are captured the same bytes travel only inside TLS, attributed to the source identity", async () => {
    for (const name of ["orders", "payments"] as const) {
      await driver.capture({ uid: `uid-${name}`, namespace: "demo", name, netnsPath: nsPath(PODS[name].netns), ips: [PODS[name].ip], serviceAccount: name });
    }
    index.replace(meshRecords([podObject("orders", true), podObject("payments", true)], [], []).workloads, []);
    let reply = "";
    const dump = await sniff(NODE, "br0", "tcp and host 10.126.0.3", async () => {
      reply = await send(`${MARKER}-2`);
    });
    expect(reply).toBe(`payments got ${MARKER}-2`);
    expect(dump).not.toContain(MARKER);
    // TLS 1.3 application data records (0x17 0x03 0x03) on the HBONE port.
    expect(dump).toMatch(/10\.126\.0\.3\.15008/);
    expect(dataplane.stats().hbone.connections).toBe(1);
    const text = await metrics.text();
    const line = text.split("\n").find((l) => l.startsWith("istio_tcp_connections_opened_total{") && l.includes('reporter="destination"'));
    expect(line).toContain('source_principal="spiffe://cluster.local/ns/demo/sa/orders"');
    expect(line).toContain('destination_principal="spiffe://cluster.local/ns/demo/sa/payments"');
    expect(line).toContain('connection_security_policy="mutual_tls"');
    expect(line).toContain('source_workload="orders-1"');
    // Byte counts, in Istio's sense (received = request bytes, sent = response bytes), on both agents' sides,
    // once the connection has closed: 25 bytes asked, 38 answered.
    const bytes = async (name: string, reporter: string) =>
      Number(new RegExp(`^${name}\\{reporter="${reporter}"[^}]*\\} (\\d+)$`, "m").exec(await metrics.text())?.[1]);
    await expect.poll(() => bytes("istio_tcp_received_bytes_total", "source"), { timeout: 5000 }).toBe(`${MARKER}-2`.length);
    await expect.poll(() => bytes("istio_tcp_received_bytes_total", "destination"), { timeout: 5000 }).toBe(`${MARKER}-2`.length);
    expect(await bytes("istio_tcp_sent_bytes_total", "source")).toBe(`payments got ${MARKER}-2`.length);
    expect(await bytes("istio_tcp_sent_bytes_total", "destination")).toBe(`payments got ${MARKER}-2`.length);
    // Each side's access log line names both ends the same way.
    const ends = {
      src: { workload: "orders-1", namespace: "demo", identity: "spiffe://cluster.local/ns/demo/sa/orders", ip: PODS.orders.ip },
      dst: { workload: "payments-1", namespace: "demo", identity: "spiffe://cluster.local/ns/demo/sa/payments", ip: PODS.payments.ip, port: 8080 },
      security: "mutual_tls",
    };
    expect(closes("source").at(-1)).toMatchObject({
      ...ends,
      pod: "demo/orders",
      bytesSent: `${MARKER}-2`.length,
      bytesReceived: `payments got ${MARKER}-2`.length,
    });
    expect(closes("destination").at(-1)).toMatchObject({
      ...ends,
      pod: "demo/payments-1",
      status: 200,
      bytesSent: `payments got ${MARKER}-2`.length,
      bytesReceived: `${MARKER}-2`.length,
    });
  });

  it("takes the same-node fast path without TLS when both pods are on this agent's node", async () => {
    index.replace(meshRecords([podObject("orders", true), podObject("payments", true, "node-1")], [], []).workloads, []);
    const before = received.length;
    expect(await send("same-node")).toBe("payments got same-node");
    expect(received.length).toBe(before + 1);
    // No new HBONE stream: the pooled connection from the previous test carries nothing new.
    expect(dataplane.stats().hbone.streams).toBe(0);
    const text = await metrics.text();
    expect(text).toMatch(/istio_tcp_connections_opened_total\{reporter="source",source_workload="orders-1"[^}]*destination_workload="payments-1"[^}]*\} [1-9]/);
    // Reported as the destination too, with the source identity, since no HBONE server sees it.
    expect(text).toMatch(
      /istio_tcp_connections_opened_total\{reporter="destination",source_workload="orders-1",[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/demo\/sa\/orders"[^}]*destination_workload="payments-1"[^}]*\} [1-9]/,
    );
    // And in the access log: a destination line next to the source line, as an HBONE server would write it.
    const destinationClose = closes("destination").at(-1);
    expect(destinationClose).toMatchObject({
      pod: "demo/payments-1",
      src: { identity: "spiffe://cluster.local/ns/demo/sa/orders", ip: PODS.orders.ip },
      dst: { workload: "payments-1", ip: PODS.payments.ip, port: 8080 },
      status: 200,
      bytesSent: "payments got same-node".length,
      bytesReceived: "same-node".length,
    });
    expect(closes("destination").length).toBe(2);
  });
});
