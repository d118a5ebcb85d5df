// The data path's decisions without a network: index + facts -> route, identities and the Istio labels they imply, both directions.
import { describe, expect, it } from "vitest";
import pino from "pino";
import {
  type InboundFacts,
  type InboundPolicy,
  type OutboundFacts,
  hboneSourceAddress,
  inboundEnds,
  outboundSource,
  planInbound,
  planOutbound,
} from "../../agent/dataplane/plan.ts";
import { ConnectionTelemetry, type TcpMetricsSink, accessRecord, connectionReport, tcpLabels, withLearned } from "../../agent/dataplane/telemetry.ts";
import type { TcpLabels } from "../../agent/metrics/index.ts";
import { type Workload, WorkloadIndex } from "../../agent/state/index.ts";

const TD = "cluster.local";
const workload = (name: string, ip: string, node: string, captured = true, labels: Record<string, string> = {}): Workload => ({
  uid: `uid-${name}`,
  namespace: "demo",
  name,
  workloadName: name,
  serviceAccount: name,
  node,
  ip,
  captured,
  labels,
});
const spiffe = (sa: string, ns = "demo") => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

const ORDERS = workload("orders", "10.244.1.2", "node-1");
function index(): WorkloadIndex {
  const i = new WorkloadIndex();
  i.replace(
    [
      ORDERS,
      workload("payments", "10.244.2.3", "node-2", true, { app: "payments" }),
      workload("fraud", "10.244.1.4", "node-1"),
      workload("legacy", "10.244.2.9", "node-2", false),
    ],
    [
      { namespace: "demo", name: "payments", clusterIP: "10.96.0.20", ports: [{ port: 80, endpoints: [{ ip: "10.244.2.3", port: 8080, ready: true }] }] },
      { namespace: "demo", name: "loop", clusterIP: "10.96.0.21", ports: [{ port: 80, endpoints: [{ ip: "10.244.2.3", port: 15006, ready: true }] }] },
      { namespace: "demo", name: "empty", clusterIP: "10.96.0.22", ports: [{ port: 80, endpoints: [{ ip: "10.244.2.3", port: 8080, ready: false }] }] },
    ],
  );
  i.setPodNetwork(["10.244.1.0/24", "10.244.2.0/24"]);
  return i;
}

/** Denies anything to port 9999, and names one AUDIT policy on every connection to fraud. */
const policy: InboundPolicy = {
  check: (c) => ({
    allowed: c.destinationPort !== 9999,
    reason: c.destinationPort === 9999 ? "deny-9999" : "allowed",
    ...(c.destination.name === "fraud" ? { audit: ["demo/audit-fraud"] } : {}),
  }),
};

const facts = (address: string, port: number, over: Partial<OutboundFacts> = {}): OutboundFacts => ({
  source: ORDERS,
  trustDomain: TD,
  originalDestination: { address, port },
  listenerAddress: { address: "127.0.0.1", port: 15001 },
  nodeName: "node-1",
  isLocalPod: (ip) => ["10.244.1.2", "10.244.1.4"].includes(ip),
  inPodNetwork: (ip) => index().inPodNetwork(ip),
  policy,
  ...over,
});

/** The labels a known destination workload implies, and how the connection crosses. */
const toWorkload = (name: string, security: string) => ({
  destination_workload: name,
  destination_workload_namespace: "demo",
  destination_principal: spiffe(name),
  connection_security_policy: security,
});
const SOURCE_LABELS = { reporter: "source", source_workload: "orders", source_workload_namespace: "demo", source_principal: spiffe("orders") };

describe("planOutbound", () => {
  // ztunnel's build_request table, in small: where each destination goes, and the labels the source reports for it.
  const cases: Array<{ name: string; to: [string, number]; over?: Partial<OutboundFacts>; plan: object; labels: TcpLabels }> = [
    {
      name: "a captured pod on another node: HBONE, expecting its identity",
      to: ["10.244.2.3", 8080],
      plan: { route: "hbone", workload: { name: "payments" }, port: 8080, expectedIdentity: { namespace: "demo", serviceAccount: "payments" } },
      labels: { ...toWorkload("payments", "mutual_tls"), destination_app: "payments" },
    },
    {
      name: "a ClusterIP: a ready endpoint, reported with the address dialled",
      to: ["10.96.0.20", 80],
      plan: { route: "hbone", workload: { name: "payments" }, port: 8080, destination: { ip: "10.96.0.20", port: 80 } },
      labels: { ...toWorkload("payments", "mutual_tls"), destination_app: "payments" },
    },
    {
      name: "a captured pod of this node: the same-node path, policy checked here",
      to: ["10.244.1.4", 9090],
      plan: {
        route: "same-node",
        workload: { name: "fraud" },
        port: 9090,
        inbound: { source: { serviceAccount: "orders" }, sourceIp: "10.244.1.2", destinationIp: "10.244.1.4", destinationPort: 9090 },
        asDestination: { destination: { ip: "10.244.1.4", port: 9090 } },
        audit: { policies: ["demo/audit-fraud"], allowed: true },
      },
      labels: toWorkload("fraud", "mutual_tls"),
    },
    {
      name: "a captured pod of this node that policy denies: denied before anything opens",
      to: ["10.244.1.4", 9999],
      plan: { route: "deny", reason: "deny-9999", workload: { name: "fraud" }, audit: { allowed: false } },
      labels: toWorkload("fraud", "mutual_tls"),
    },
    {
      name: "a captured pod this agent does not hold (yet): HBONE, not a netns it lacks",
      to: ["10.244.1.4", 9090],
      over: { isLocalPod: () => false },
      plan: { route: "hbone", workload: { name: "fraud" } },
      labels: toWorkload("fraud", "mutual_tls"),
    },
    {
      name: "a pod the mesh does not capture: passthrough, still naming it",
      to: ["10.244.2.9", 80],
      plan: { route: "passthrough", workload: { name: "legacy" }, ip: "10.244.2.9" },
      labels: toWorkload("legacy", "none"),
    },
    {
      name: "outside the pod network: passthrough",
      to: ["93.184.216.34", 443],
      plan: { route: "passthrough", ip: "93.184.216.34", port: 443 },
      labels: { connection_security_policy: "none" },
    },
    {
      name: "an unnamed address of the pod network: an HBONE probe, its security still unknown",
      to: ["10.244.2.77", 8080],
      plan: { route: "hbone-probe", ip: "10.244.2.77", port: 8080 },
      labels: {},
    },
    {
      name: "a service without a ready endpoint: refused",
      to: ["10.96.0.22", 80],
      plan: { route: "refuse", refusal: "no_endpoint" },
      labels: {},
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planOutbound(index(), facts(...c.to, c.over));
      expect(plan).toMatchObject(c.plan);
      expect(tcpLabels("source", plan, "ok")).toEqual({ ...SOURCE_LABELS, ...c.labels, response_flags: "-" });
    });
  }

  it("resolves a ClusterIP to a ready endpoint, and refuses a service with none", () => {
    expect(planOutbound(index(), facts("10.96.0.20", 80))).toMatchObject({ route: "hbone", workload: { name: "payments" }, port: 8080 });
    expect(planOutbound(index(), facts("10.96.0.22", 80))).toMatchObject({ route: "refuse", refusal: "no_endpoint" });
  });

  it("passes through to a pod the mesh does not capture and to addresses outside the pod network", () => {
    // The agent's ports are ordinary ports outside the mesh.
    expect(planOutbound(index(), facts("93.184.216.34", 15008))).toMatchObject({ route: "passthrough" });
  });

  it("tries HBONE first for an address of the pod network that no config names yet", () => {
    expect(planOutbound(index(), facts("10.244.2.77", 8080))).toMatchObject({ route: "hbone-probe", ip: "10.244.2.77", port: 8080 });
    // Without a known pod network (an older controller), unknown addresses pass through as before.
    expect(planOutbound(index(), facts("10.244.2.77", 8080, { inPodNetwork: () => false }))).toMatchObject({ route: "passthrough" });
  });

  it("refuses the agent's own in-pod ports of a captured pod, directly or behind a Service", () => {
    for (const port of [15001, 15006, 15008]) {
      expect(planOutbound(index(), facts("10.244.2.3", port))).toMatchObject({ route: "refuse", refusal: "agent_port", workload: { name: "payments" } });
      expect(planOutbound(index(), facts("10.244.1.4", port))).toMatchObject({ route: "refuse", refusal: "agent_port" });
    }
    expect(planOutbound(index(), facts("10.96.0.21", 80))).toMatchObject({ route: "refuse", refusal: "agent_port" });
  });

  it("refuses a connection made to the agent's listener itself rather than redirected to it", () => {
    // The pod dials 127.0.0.1:15001 (loopback is not captured, so it reaches the listener unredirected): its
    // original destination is the listener, and sending it on would come straight back.
    expect(planOutbound(index(), facts("127.0.0.1", 15001))).toMatchObject({ route: "refuse", refusal: "self_connect" });
    expect(planOutbound(index(), facts("127.0.0.1", 8080))).toMatchObject({ route: "passthrough" });
  });

  it("reports the same-node destination's own view: its pod address, reporter destination", () => {
    const plan = planOutbound(index(), facts("10.244.1.4", 9090));
    if (plan.route !== "same-node") throw new Error(`expected same-node, got ${plan.route}`);
    expect(tcpLabels("destination", plan.asDestination, "ok")).toEqual({ ...tcpLabels("source", plan, "ok"), reporter: "destination" });
  });

  it("a probe's ends take what opening it learnt: the peer's identity inside mTLS, or plaintext", () => {
    const plan = planOutbound(index(), facts("10.244.2.77", 8080));
    const peer = { trustDomain: TD, namespace: "late", serviceAccount: "newcomer" };
    expect(tcpLabels("source", withLearned(plan, { security: "mutual_tls", peer }), "ok")).toMatchObject({
      destination_principal: spiffe("newcomer", "late"),
      destination_workload_namespace: "late",
      connection_security_policy: "mutual_tls",
    });
    expect(tcpLabels("source", withLearned(plan, { security: "none" }), "failed")).toMatchObject({ connection_security_policy: "none", response_flags: "UF" });
  });

  it("takes a pod the controller does not name yet as the source, as captured", () => {
    const pod = { uid: "u", namespace: "late", name: "new-1", netnsPath: "/x", ips: ["10.244.1.50"], serviceAccount: "newcomer" };
    expect(outboundSource(index(), pod, "node-1")).toMatchObject({ namespace: "late", serviceAccount: "newcomer", ip: "10.244.1.50", captured: true });
    const i = index();
    expect(outboundSource(i, { ...pod, ips: ["10.244.1.2"] }, "node-1")).toBe(i.workloadByIp("10.244.1.2"));
  });
});

describe("planInbound (plaintext) and the HBONE server's checks", () => {
  const i = index();
  const inbound = (ip: string, port: number, over: Partial<InboundFacts> = {}): InboundFacts => ({
    sourceIp: "10.244.2.3",
    destination: { ip, port },
    workloadAt: (a) => i.workloadByIp(a),
    trustDomain: TD,
    policy,
    ...over,
  });
  const cases: Array<{ name: string; facts: InboundFacts; plan: object; labels: TcpLabels }> = [
    {
      name: "a plaintext client to a local pod its policy allows: delivered",
      facts: inbound("10.244.1.4", 8080),
      plan: { route: "deliver", workload: { name: "fraud" }, inbound: { sourceIp: "10.244.2.3", destinationPort: 8080 }, audit: { allowed: true } },
      labels: {
        source_workload: "payments",
        source_workload_namespace: "demo",
        destination_workload: "fraud",
        destination_workload_namespace: "demo",
        destination_principal: spiffe("fraud"),
        connection_security_policy: "none",
        response_flags: "-",
      },
    },
    {
      name: "one its policy denies",
      facts: inbound("10.244.1.4", 9999),
      plan: { route: "deny", reason: "deny-9999" },
      labels: { destination_workload: "fraud", response_flags: "DENIED" },
    },
    {
      name: "an address no one knows as a workload: denied, fail closed",
      facts: inbound("10.244.1.99", 8080, { sourceIp: "192.0.2.1" }),
      plan: { route: "deny", reason: "10.244.1.99 is not a known workload, so its policy cannot be checked" },
      labels: { connection_security_policy: "none", response_flags: "DENIED" },
    },
    {
      name: "the agent's own port: refused before policy",
      facts: inbound("10.244.1.4", 15008),
      plan: { route: "refuse", refusal: "agent_port" },
      labels: { destination_workload: "fraud", response_flags: "UF" },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planInbound(i, c.facts);
      expect(plan).toMatchObject(c.plan);
      const outcome = plan.route === "deliver" ? "ok" : plan.route === "refuse" ? "failed" : "denied";
      const labels = tcpLabels("destination", plan, outcome);
      expect(labels).toMatchObject({ reporter: "destination", ...c.labels });
      expect(labels.source_principal).toBeUndefined();
    });
  }

  it("an HBONE stream's ends carry the peer's proven identity and the source workload the controller names", () => {
    const ends = inboundEnds(i, inbound("10.244.1.4", 8080, { source: { trustDomain: TD, namespace: "demo", serviceAccount: "payments" } }), "mutual_tls");
    expect(tcpLabels("destination", ends, "ok")).toEqual({
      reporter: "destination",
      source_workload: "payments",
      source_workload_namespace: "demo",
      source_principal: spiffe("payments"),
      destination_workload: "fraud",
      destination_workload_namespace: "demo",
      destination_principal: spiffe("fraud"),
      connection_security_policy: "mutual_tls",
      response_flags: "-",
    });
  });

  it("an HBONE client may not claim another pod's address, nor hold one whose owner has another identity", () => {
    const id = { trustDomain: TD, namespace: "demo", serviceAccount: "payments" };
    const at = (a: string) => i.workloadByIp(a);
    expect(hboneSourceAddress(at, TD, id, "10.244.2.3", undefined)).toEqual({ address: "10.244.2.3" });
    expect(hboneSourceAddress(at, TD, id, "10.244.2.3", "10.244.1.2")).toHaveProperty("refused");
    expect(hboneSourceAddress(at, TD, id, "10.244.1.2", undefined)).toMatchObject({ refused: expect.stringContaining("belongs to demo/orders") });
    expect(hboneSourceAddress(at, TD, id, "192.0.2.1", undefined)).toEqual({ address: "192.0.2.1" });
  });
});

describe("connection telemetry", () => {
  function recorder() {
    const lines: Array<Record<string, unknown>> = [];
    const series: Array<[string, TcpLabels, object?]> = [];
    const refused: object[] = [];
    const sink: TcpMetricsSink = {
      connectionOpened: (labels) => void series.push(["opened", labels]),
      connectionClosed: (labels, bytes) => void series.push(["closed", labels, bytes]),
      connectionsRefused: { inc: (labels) => void refused.push(labels) },
    };
    const log = pino({ level: "info", base: undefined, timestamp: false }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    return { lines, series, refused, telemetry: new ConnectionTelemetry(sink, log) };
  }
  const plan = planOutbound(index(), facts("10.96.0.20", 80));

  it("an access record names both ends, the address dialled and the security", () => {
    expect(accessRecord(connectionReport("source", plan, "ok", "demo/orders-1"))).toEqual({
      pod: "demo/orders-1",
      event: "connection",
      reporter: "source",
      src: { workload: "orders", namespace: "demo", identity: spiffe("orders"), ip: "10.244.1.2" },
      dst: { workload: "payments", namespace: "demo", identity: spiffe("payments"), ip: "10.96.0.20", port: 80 },
      security: "mutual_tls",
    });
  });

  it("counts bytes as Istio does and logs them from each reporter's side", () => {
    const { lines, series, telemetry } = recorder();
    const source = connectionReport("source", plan, "ok", "demo/orders-1");
    const destination = connectionReport("destination", plan, "ok", "demo/payments-1");
    telemetry.closed(source, { asked: 10, answered: 300 }, 12.4);
    telemetry.closed(destination, { asked: 10, answered: 300 }, 12.6, "reset");
    expect(series.map((s) => s[2])).toEqual([
      { sent: 300, received: 10 },
      { sent: 300, received: 10 },
    ]);
    expect(lines[0]).toMatchObject({ msg: "connection closed", bytesSent: 10, bytesReceived: 300, durationMs: 12 });
    expect(lines[0]).not.toHaveProperty("status");
    expect(lines[1]).toMatchObject({ bytesSent: 300, bytesReceived: 10, durationMs: 13, status: 200, error: "reset" });
  });

  it("a refused outbound connection opens and closes its series with UF, and is counted as refused", () => {
    const { lines, series, refused, telemetry } = recorder();
    const noEndpoint = planOutbound(index(), facts("10.96.0.22", 80));
    telemetry.outboundFailed(
      connectionReport("source", noEndpoint, "failed", "demo/orders-1"),
      { message: "no endpoint", code: "AMBIT_E_NO_ENDPOINT" },
      "no_endpoint",
    );
    expect(series.map(([what, labels]) => [what, labels.response_flags])).toEqual([
      ["opened", "UF"],
      ["closed", "UF"],
    ]);
    expect(refused).toEqual([{ direction: "outbound", reason: "no_endpoint" }]);
    expect(lines[0]).toMatchObject({
      pod: "demo/orders-1",
      dst: { address: "10.96.0.22", port: 80 },
      code: "AMBIT_E_NO_ENDPOINT",
      msg: "outbound connection refused",
    });
  });

  it("an HBONE stream answered 401 is counted once, opened and closed, DENIED", () => {
    const { lines, series, telemetry } = recorder();
    const ends = inboundEnds(
      index(),
      { destination: { ip: "10.244.1.4", port: 80 }, workloadAt: (a) => index().workloadByIp(a), trustDomain: TD },
      "mutual_tls",
    );
    const source = { trustDomain: TD, namespace: "demo", serviceAccount: "payments" };
    const event = {
      phase: "close" as const,
      source,
      destination: { ip: "10.244.1.4", port: 80 },
      status: 401,
      bytesSent: 0,
      bytesReceived: 0,
      durationMs: 1,
      error: "deny",
    };
    telemetry.hboneStream(connectionReport("destination", ends, "denied", "demo/fraud"), event);
    expect(series.map(([what, labels]) => [what, labels.response_flags])).toEqual([
      ["opened", "DENIED"],
      ["closed", "DENIED"],
    ]);
    expect(lines[0]).toMatchObject({ status: 401, error: "deny", msg: "connection closed" });
  });
});

describe("waypoints in the plan", () => {
  const WAYPOINT = { namespace: "demo", name: "waypoint" };
  /** payments' Service is bound to the waypoint; `reviews` (a pod) is bound for workloads; the waypoint's pods as given. */
  function boundIndex(waypointEndpoints: Array<{ ip: string; port: number; ready: boolean }> | undefined): WorkloadIndex {
    const i = new WorkloadIndex();
    i.replace(
      [ORDERS, workload("payments", "10.244.2.3", "node-2"), { ...workload("reviews", "10.244.1.7", "node-1"), waypoint: WAYPOINT }],
      [
        {
          namespace: "demo",
          name: "payments",
          clusterIP: "10.96.0.20",
          ports: [{ port: 80, endpoints: [{ ip: "10.244.2.3", port: 8080, ready: true }] }],
          waypoint: WAYPOINT,
        },
        ...(waypointEndpoints
          ? [{ namespace: "demo", name: "waypoint", clusterIP: "10.96.0.30", ports: [{ port: 15008, endpoints: waypointEndpoints }] }]
          : []),
      ],
    );
    return i;
  }

  it("a Service bound to a ready waypoint: HBONE to a waypoint pod, addressed to the Service VIP:port, expecting the waypoint's identity", () => {
    const plan = planOutbound(boundIndex([{ ip: "10.244.2.8", port: 15008, ready: true }]), facts("10.96.0.20", 80));
    expect(plan).toMatchObject({
      route: "waypoint",
      waypoint: WAYPOINT,
      dial: { ip: "10.244.2.8", port: 15008 },
      destination: { ip: "10.96.0.20", port: 80 },
      expectedIdentity: { trustDomain: TD, namespace: "demo", serviceAccount: "waypoint" },
      security: "mutual_tls",
    });
  });

  it("a pod bound for workloads, addressed by its IP (even on the same node), goes to the waypoint too", () => {
    const plan = planOutbound(boundIndex([{ ip: "10.244.2.8", port: 15008, ready: true }]), facts("10.244.1.7", 9080, { isLocalPod: () => true }));
    expect(plan).toMatchObject({ route: "waypoint", destination: { ip: "10.244.1.7", port: 9080 }, dial: { ip: "10.244.2.8" } });
  });

  it("a missing waypoint, or one with no ready pod, refuses the connection instead of going around it", () => {
    expect(planOutbound(boundIndex(undefined), facts("10.96.0.20", 80))).toMatchObject({
      route: "refuse",
      refusal: "no_waypoint",
      reason: "10.96.0.20:80 is bound to waypoint demo/waypoint, which does not exist (no Service demo/waypoint)",
    });
    expect(planOutbound(boundIndex([{ ip: "10.244.2.8", port: 15008, ready: false }]), facts("10.96.0.20", 80))).toMatchObject({
      route: "refuse",
      refusal: "no_waypoint",
      reason: "10.96.0.20:80 is bound to waypoint demo/waypoint, which has no ready pod on port 15008",
    });
  });

  it("a pod bound to a waypoint accepts mesh traffic only from the waypoint's identity, and no plaintext", () => {
    const i = boundIndex([{ ip: "10.244.2.8", port: 15008, ready: true }]);
    const inbound = (source: InboundFacts["source"]) =>
      planInbound(i, {
        ...(source ? { source } : {}),
        sourceIp: "10.244.2.8",
        destination: { ip: "10.244.1.7", port: 9080 },
        workloadAt: (ip) => i.workloadByIp(ip),
        trustDomain: TD,
      });
    expect(inbound({ trustDomain: TD, namespace: "demo", serviceAccount: "waypoint" })).toMatchObject({ route: "deliver" });
    expect(inbound({ trustDomain: TD, namespace: "demo", serviceAccount: "orders" })).toMatchObject({
      route: "deny",
      reason: `demo/reviews is bound to waypoint demo/waypoint and accepts traffic only from it, not from ${spiffe("orders")}`,
    });
    expect(inbound(undefined)).toMatchObject({ route: "deny", reason: expect.stringContaining("not from a plaintext client") });
  });
});
