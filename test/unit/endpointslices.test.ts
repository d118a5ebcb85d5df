// EndpointSlice construction: selection, readiness, terminating pods and named target ports.
import { describe, expect, it } from "vitest";
import { desiredSlice } from "../../sandbox/controllers/endpointslices.ts";
import type { KubeObject } from "../../kube/client.ts";

const service: KubeObject = {
  apiVersion: "v1",
  kind: "Service",
  metadata: { name: "orders", namespace: "demo", uid: "abcdef-1" },
  spec: { selector: { app: "orders" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
};
const pod = (name: string, opts: { ready?: boolean; ip?: string; app?: string; deleting?: boolean } = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: {
    name,
    namespace: "demo",
    uid: `uid-${name}`,
    labels: { app: opts.app ?? "orders" },
    ...(opts.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
  },
  spec: { nodeName: "node-1", containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080 }] }] },
  status: {
    phase: "Running",
    ...(opts.ip === "" ? {} : { podIP: opts.ip ?? `10.244.1.${name.length}` }),
    conditions: [{ type: "Ready", status: opts.ready === false ? "False" : "True" }],
  },
});

describe("desiredSlice", () => {
  it("lists selected pods with IPs, resolves the named target port and owns the slice by the Service", () => {
    const slice = desiredSlice(service, [pod("b", { ip: "10.244.1.3" }), pod("a", { ip: "10.244.1.2" }), pod("x", { app: "other" }), pod("noip", { ip: "" })]);
    expect(slice.metadata.labels?.["kubernetes.io/service-name"]).toBe("orders");
    expect(slice.metadata.ownerReferences?.[0]).toMatchObject({ kind: "Service", uid: "abcdef-1" });
    expect(slice.ports).toEqual([{ name: "http", protocol: "TCP", port: 8080 }]);
    expect((slice.endpoints as Array<{ addresses: string[] }>).map((e) => e.addresses[0])).toEqual(["10.244.1.2", "10.244.1.3"]);
  });

  it("marks unready and terminating pods as not ready", () => {
    const slice = desiredSlice(service, [pod("a", { ready: false }), pod("bb", { deleting: true })]);
    const conditions = (slice.endpoints as Array<{ conditions: object }>).map((e) => e.conditions);
    expect(conditions).toEqual([
      { ready: false, serving: false, terminating: false },
      { ready: false, serving: true, terminating: true },
    ]);
  });
});
