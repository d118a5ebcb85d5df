// A Service port's declared protocol: appProtocol first, then Istio's port-name convention, and how a waypoint serves each.
import { describe, expect, it } from "vitest";
import { declaredAppProtocol, portProtocol } from "../../contract/app-protocol.ts";
import { serviceSpecOf } from "../../controller/state/workloads.ts";

describe("declared application protocol", () => {
  it("takes appProtocol over the port name, lower-cased; a name counts only with a known protocol prefix", () => {
    expect(declaredAppProtocol({ name: "tcp-db", appProtocol: "HTTP" })).toBe("http");
    expect(declaredAppProtocol({ name: "grpc-api" })).toBe("grpc");
    expect(declaredAppProtocol({ name: "mysql" })).toBe("mysql");
    expect(declaredAppProtocol({ name: "web" })).toBeUndefined();
    expect(declaredAppProtocol({})).toBeUndefined();
  });

  it("serves HTTP family as HTTP, known opaque protocols at L4, and detects anything else", () => {
    for (const p of ["http", "http2", "grpc", "kubernetes.io/h2c"]) expect(portProtocol(p)).toBe("http");
    for (const p of ["tcp", "tls", "https", "mysql", "redis"]) expect(portProtocol(p)).toBe("opaque");
    expect(portProtocol(undefined)).toBe("detect");
    expect(portProtocol("example.com/custom")).toBe("detect");
  });

  it("is carried on the Service records the controller streams", () => {
    const svc = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "db", namespace: "shop" },
      spec: {
        clusterIP: "10.96.0.40",
        ports: [
          { name: "mysql", port: 3306 },
          { name: "admin", port: 8080, appProtocol: "http" },
          { name: "other", port: 9000 },
        ],
      },
    };
    expect(serviceSpecOf(svc, [])?.ports).toEqual([
      { port: 3306, endpoints: [], appProtocol: "mysql" },
      { port: 8080, endpoints: [], appProtocol: "http" },
      { port: 9000, endpoints: [] },
    ]);
  });
});
