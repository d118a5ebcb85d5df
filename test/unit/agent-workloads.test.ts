// Destination resolution: ClusterIP to a ready endpoint's workload, pod IPs, passthrough, empty services.
import { describe, expect, it } from "vitest";
import { WorkloadIndex, resolveDestination } from "../../agent/state/index.ts";
import { meshRecords, workloadNameOf } from "../../controller/state/index.ts";
import type { KubeObject } from "../../kube/client.ts";

const pod = (name: string, ip: string, opts: { captured?: boolean; owner?: string; node?: string } = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: {
    name,
    namespace: "demo",
    uid: `uid-${name}`,
    annotations: opts.captured ? { "ambit.dev/redirection": "enabled" } : {},
    ...(opts.owner ? { ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: opts.owner, uid: "d", controller: true }] } : {}),
  },
  spec: { serviceAccountName: "payments", nodeName: opts.node ?? "node-2" },
  status: { podIP: ip },
});
const service: KubeObject = {
  apiVersion: "v1",
  kind: "Service",
  metadata: { name: "payments", namespace: "demo" },
  spec: { clusterIP: "10.96.0.12", ports: [{ name: "http", port: 80 }] },
};
const slice = (ready: boolean[]): KubeObject => ({
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: "payments-x", namespace: "demo", labels: { "kubernetes.io/service-name": "payments" } },
  ports: [{ name: "http", port: 8080 }],
  endpoints: ready.map((r, i) => ({ addresses: [`10.244.2.${i + 2}`], conditions: { ready: r } })),
});

describe("resolveDestination", () => {
  it("maps a ClusterIP to a ready endpoint's workload and target port", () => {
    const index = new WorkloadIndex();
    const r = meshRecords(
      [pod("payments-a", "10.244.2.2", { captured: true, owner: "payments" }), pod("payments-b", "10.244.2.3", { captured: true })],
      [service],
      [slice([false, true])],
    );
    index.replace(r.workloads, r.services);
    const d = resolveDestination(index, "10.96.0.12", 80, () => 0);
    expect(d).toMatchObject({ kind: "workload", port: 8080, workload: { name: "payments-b", serviceAccount: "payments", captured: true } });
  });

  it("resolves pod IPs directly, passes unknown addresses through, and reports services without endpoints", () => {
    const index = new WorkloadIndex();
    const r = meshRecords([pod("payments-a", "10.244.2.2")], [service], [slice([false])]);
    index.replace(r.workloads, r.services);
    expect(resolveDestination(index, "10.244.2.2", 8080)).toMatchObject({ kind: "workload", workload: { captured: false } });
    expect(resolveDestination(index, "192.0.2.1", 443)).toMatchObject({ kind: "passthrough", reason: "destination is outside the mesh" });
    expect(resolveDestination(index, "10.96.0.12", 80)).toMatchObject({ kind: "no-endpoint" });
  });

  it("names workloads like Istio does", () => {
    expect(workloadNameOf(pod("orders-6de88e2cdb-hq6qx", "1.1.1.1", { owner: "orders" }))).toBe("orders");
    expect(workloadNameOf(pod("standalone", "1.1.1.2"))).toBe("standalone");
  });
});
