// Which waypoint a Service or a pod is bound to: labels on the object and its namespace, opt-out, the Gateway's waypoint-for, a missing waypoint.
import { describe, expect, it } from "vitest";
import { type WaypointLookup, serviceWaypoint, workloadWaypoint } from "../../controller/waypoints/index.ts";
import type { KubeObject } from "../../kube/client.ts";

const ns = (name: string, labels: Record<string, string> = {}): KubeObject => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
const gw = (namespace: string, name: string, labels: Record<string, string> = {}, gatewayClassName = "ambit-waypoint"): KubeObject => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "Gateway",
  metadata: { name, namespace, labels },
  spec: { gatewayClassName, listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }] },
});
const svc = (namespace: string, name: string, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace, labels },
});
const pod = (namespace: string, name: string, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace, labels },
});

function lookup(namespaces: KubeObject[], gateways: KubeObject[]): WaypointLookup {
  return {
    namespace: (name) => namespaces.find((n) => n.metadata.name === name),
    gateway: (namespace, name) => gateways.find((g) => g.metadata.namespace === namespace && g.metadata.name === name),
  };
}

const ref = (b: ReturnType<typeof serviceWaypoint>) => (b.bound ? `${b.waypoint.namespace}/${b.waypoint.name}${b.gateway ? "" : " (missing)"}` : "none");

describe("waypoint binding", () => {
  const world = lookup(
    [ns("shop", { "ambit.dev/use-waypoint": "waypoint" }), ns("plain"), ns("infra")],
    [
      gw("shop", "waypoint"),
      gw("shop", "for-pods", { "ambit.dev/waypoint-for": "workload" }),
      gw("shop", "for-all", { "ambit.dev/waypoint-for": "all" }),
      gw("infra", "shared"),
      gw("shop", "envoy", {}, "istio"),
    ],
  );

  it("binds a Service through its namespace's label, and through its own, which wins", () => {
    expect(ref(serviceWaypoint(svc("shop", "payments"), world))).toBe("shop/waypoint");
    expect(ref(serviceWaypoint(svc("shop", "payments", { "ambit.dev/use-waypoint": "for-all" }), world))).toBe("shop/for-all");
    expect(ref(serviceWaypoint(svc("plain", "web"), world))).toBe("none");
  });

  it("`none` on the object opts it out of its namespace's waypoint", () => {
    const b = serviceWaypoint(svc("shop", "payments", { "ambit.dev/use-waypoint": "none" }), world);
    expect(b).toEqual({ bound: false, reason: "service shop/payments opts out with ambit.dev/use-waypoint=none" });
  });

  it("a waypoint in another namespace is named with use-waypoint-namespace", () => {
    expect(ref(serviceWaypoint(svc("plain", "web", { "ambit.dev/use-waypoint": "shared", "ambit.dev/use-waypoint-namespace": "infra" }), world))).toBe(
      "infra/shared",
    );
  });

  it("follows the Gateway's waypoint-for: Services bind to service/all waypoints, pods to workload/all ones", () => {
    expect(ref(serviceWaypoint(svc("shop", "a", { "ambit.dev/use-waypoint": "for-pods" }), world))).toBe("none");
    expect(ref(workloadWaypoint(pod("shop", "a", { "ambit.dev/use-waypoint": "for-pods" }), world))).toBe("shop/for-pods");
    expect(ref(workloadWaypoint(pod("shop", "a", { "ambit.dev/use-waypoint": "for-all" }), world))).toBe("shop/for-all");
    // The namespace names a service waypoint: its pods are not bound by it.
    expect(workloadWaypoint(pod("shop", "a"), world)).toMatchObject({ bound: false, reason: expect.stringContaining("ambit.dev/waypoint-for=service") });
  });

  it("a missing waypoint still binds (traffic fails rather than bypassing it); a pod only by its own label", () => {
    const missing = serviceWaypoint(svc("plain", "web", { "ambit.dev/use-waypoint": "gone" }), world);
    expect(missing).toMatchObject({ bound: true, waypoint: { namespace: "plain", name: "gone" }, gateway: undefined });
    expect(missing.reason).toContain("does not exist");
    expect(ref(workloadWaypoint(pod("plain", "p", { "ambit.dev/use-waypoint": "gone" }), world))).toBe("plain/gone (missing)");
    const nsOnly = lookup([ns("x", { "ambit.dev/use-waypoint": "gone" })], []);
    expect(ref(serviceWaypoint(svc("x", "s"), nsOnly))).toBe("x/gone (missing)");
    expect(ref(workloadWaypoint(pod("x", "p"), nsOnly))).toBe("none");
  });

  it("a Gateway of another class is no waypoint: binding to it fails closed like a missing one", () => {
    expect(ref(serviceWaypoint(svc("shop", "a", { "ambit.dev/use-waypoint": "envoy" }), world))).toBe("shop/envoy (missing)");
  });

  it("the waypoint's own pods and Service are never bound, even in a namespace bound to it", () => {
    const own = { "gateway.networking.k8s.io/gateway-name": "waypoint" };
    expect(serviceWaypoint(svc("shop", "waypoint", own), world)).toEqual({ bound: false, reason: "service shop/waypoint belongs to waypoint shop/waypoint" });
    expect(ref(workloadWaypoint(pod("shop", "waypoint-abc", { ...own, "ambit.dev/use-waypoint": "for-all" }), world))).toBe("none");
  });
});
