// The agent's reading of waypoint bindings in a config version: kept when well formed, the whole version refused when not (never dropped).
import { describe, expect, it } from "vitest";
import { meshConfigFromView } from "../../agent/config-client/mesh-config.ts";
import type { Resource } from "../../contract/stream.ts";

const bundle: Resource = { type: "trustbundle", key: "default", value: { rootsPem: ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"] } };
const service = (waypoint: unknown): Resource => ({
  type: "service",
  key: "demo/payments",
  value: {
    namespace: "demo",
    name: "payments",
    clusterIP: "10.96.0.20",
    ports: [{ port: 80, endpoints: [] }],
    ...(waypoint === undefined ? {} : { waypoint }),
  },
});
const workload = (waypoint: unknown): Resource => ({
  type: "workload",
  key: "uid-1",
  value: {
    uid: "uid-1",
    namespace: "demo",
    name: "reviews-1",
    workloadName: "reviews",
    serviceAccount: "reviews",
    node: "node-1",
    ip: "10.244.1.7",
    captured: true,
    labels: {},
    ...(waypoint === undefined ? {} : { waypoint }),
  },
});
const view = (...rs: Resource[]) => new Map(rs.map((r) => [`${r.type}/${r.key}`, r]));

describe("waypoint bindings in the mesh config", () => {
  it("keeps a Service's and a workload's waypoint", () => {
    const c = meshConfigFromView(view(bundle, service({ namespace: "demo", name: "waypoint" }), workload({ namespace: "demo", name: "waypoint" })));
    expect(c.services[0]?.waypoint).toEqual({ namespace: "demo", name: "waypoint" });
    expect(c.workloads[0]?.waypoint).toEqual({ namespace: "demo", name: "waypoint" });
  });

  it("refuses the whole version when a waypoint binding is malformed, rather than reading the destination as unbound", () => {
    for (const bad of ["demo/waypoint", { namespace: "demo" }, { namespace: "demo", name: "" }, null]) {
      expect(() => meshConfigFromView(view(bundle, service(bad))), JSON.stringify(bad)).toThrow(/service demo\/payments is malformed/);
      expect(() => meshConfigFromView(view(bundle, workload(bad))), JSON.stringify(bad)).toThrow(/workload uid-1 is malformed/);
    }
  });
});
