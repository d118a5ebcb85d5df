// The outbound routing decision, without a network: every route, and every refusal that keeps the agent from looping on itself.
import { describe, expect, it } from "vitest";
import { type OutboundFacts, planOutbound } from "../../agent/dataplane/plan.ts";
import { type Workload, WorkloadIndex } from "../../agent/state/index.ts";

const workload = (name: string, ip: string, node: string, captured = true): Workload => ({
  uid: `uid-${name}`,
  namespace: "demo",
  name,
  workloadName: name,
  serviceAccount: name,
  node,
  ip,
  captured,
  labels: {},
});

function index(): WorkloadIndex {
  const i = new WorkloadIndex();
  i.replace(
    [
      workload("orders", "10.244.1.2", "node-1"),
      workload("payments", "10.244.2.3", "node-2"),
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

const facts = (address: string, port: number, over: Partial<OutboundFacts> = {}): OutboundFacts => ({
  originalDestination: { address, port },
  listenerAddress: { address: "127.0.0.1", port: 15001 },
  nodeName: "node-1",
  isLocalPod: (ip) => ["10.244.1.2", "10.244.1.4"].includes(ip),
  inPodNetwork: (ip) => index().inPodNetwork(ip),
  ...over,
});

describe("planOutbound", () => {
  it("sends a captured pod on another node over HBONE, and one on this node through the same-node path", () => {
    expect(planOutbound(index(), facts("10.244.2.3", 8080))).toMatchObject({ route: "hbone", workload: { name: "payments" }, port: 8080 });
    expect(planOutbound(index(), facts("10.244.1.4", 9090))).toMatchObject({ route: "same-node", workload: { name: "fraud" }, port: 9090 });
  });

  it("a captured pod that this agent does not hold (yet) goes over HBONE, not to a netns it lacks", () => {
    expect(planOutbound(index(), facts("10.244.1.4", 9090, { isLocalPod: () => false }))).toMatchObject({ route: "hbone", workload: { name: "fraud" } });
  });

  it("resolves a ClusterIP to a ready endpoint, and refuses a service with none", () => {
    expect(planOutbound(index(), facts("10.96.0.20", 80))).toMatchObject({ route: "hbone", workload: { name: "payments" }, port: 8080 });
    expect(planOutbound(index(), facts("10.96.0.22", 80))).toMatchObject({ route: "refuse", refusal: "no_endpoint" });
  });

  it("passes through to a pod the mesh does not capture and to addresses outside the pod network", () => {
    expect(planOutbound(index(), facts("10.244.2.9", 80))).toMatchObject({ route: "passthrough", workload: { name: "legacy" }, ip: "10.244.2.9" });
    expect(planOutbound(index(), facts("93.184.216.34", 443))).toMatchObject({ route: "passthrough", ip: "93.184.216.34", port: 443 });
    // The agent's ports are ordinary ports outside the mesh.
    expect(planOutbound(index(), facts("93.184.216.34", 15008))).toMatchObject({ route: "passthrough" });
  });

  it("tries HBONE first for an address of the pod network that no config names yet", () => {
    expect(planOutbound(index(), facts("10.244.2.77", 8080))).toEqual({ route: "hbone-probe", ip: "10.244.2.77", port: 8080 });
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
});
