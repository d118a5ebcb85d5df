// Per-waypoint views: from cluster objects (Services, bindings, routes, targetRef'd policies) to what each waypoint receives.
import { describe, expect, it } from "vitest";
import { compileWaypointAuthorizationPolicy } from "../../controller/authorization/index.ts";
import { MeshViews, WaypointViews } from "../../controller/views/index.ts";
import { type WaypointLookup, compileMeshRoutes } from "../../controller/waypoints/index.ts";
import type { CompiledL7Authorization } from "../../contract/l7-authorization.ts";
import type { ServicePortRoutes } from "../../contract/routes.ts";
import type { CompiledTrafficPolicy, TrafficPolicyTarget } from "../../contract/traffic-policy.ts";
import { GATEWAY_API_VERSION, USE_WAYPOINT_LABEL, WAYPOINT_FOR_LABEL, WAYPOINT_GATEWAY_CLASS } from "../../contract/waypoint.ts";
import type { KubeObject } from "../../kube/client.ts";

const ns = (name: string, labels: Record<string, string> = {}): KubeObject => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
const gateway = (namespace: string, name: string, labels: Record<string, string> = {}, gatewayClassName = WAYPOINT_GATEWAY_CLASS): KubeObject => ({
  apiVersion: GATEWAY_API_VERSION,
  kind: "Gateway",
  metadata: { name, namespace, labels },
  spec: { gatewayClassName, listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }] },
});
let ip = 10;
const service = (namespace: string, name: string, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace, labels, resourceVersion: "1" },
  spec: { clusterIP: `10.96.0.${ip++}`, ports: [{ name: "http", port: 9080 }] },
});
const pod = (namespace: string, name: string): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace, uid: `uid-${name}`, labels: { app: name }, resourceVersion: "1" },
  spec: { nodeName: "node-1", serviceAccountName: name },
  status: { phase: "Running", podIP: `10.244.1.${ip++}` },
});
const route = (namespace: string, name: string, parent: { namespace?: string; name: string }): KubeObject => ({
  apiVersion: GATEWAY_API_VERSION,
  kind: "HTTPRoute",
  metadata: { name, namespace, creationTimestamp: "2026-01-01T00:00:00Z", generation: 1 },
  spec: {
    parentRefs: [{ group: "", kind: "Service", ...parent }],
    rules: [{ backendRefs: [{ name: parent.name, namespace: parent.namespace ?? namespace, port: 9080 }] }],
  },
});
const policy = (namespace: string, name: string, targetRefs: unknown[]): CompiledL7Authorization =>
  compileWaypointAuthorizationPolicy({
    apiVersion: "security.ambit.dev/v1",
    kind: "AuthorizationPolicy",
    metadata: { name, namespace },
    spec: { targetRefs, rules: [{ to: [{ operation: { methods: ["GET"] } }] }] },
  }).compiled;
const toGateway = (name: string) => ({ group: "gateway.networking.k8s.io", kind: "Gateway", name });
const toService = (name: string) => ({ group: "", kind: "Service", name });

/**
 * shop binds every Service to waypoint `waypoint` by its namespace label; `ratings` opts into `other-wp`, `plain` out.
 * `workload-wp` takes only workloads, so `by-pod` (which names it) is bound to nothing. demo has no waypoint.
 */
function cluster() {
  const namespaces = [ns("shop", { [USE_WAYPOINT_LABEL]: "waypoint" }), ns("demo")];
  const gateways = [
    gateway("shop", "waypoint"),
    gateway("shop", "other-wp"),
    gateway("shop", "workload-wp", { [WAYPOINT_FOR_LABEL]: "workload" }),
    gateway("shop", "istio-wp", {}, "istio-waypoint"),
  ];
  const services = [
    service("shop", "reviews"),
    service("shop", "ratings", { [USE_WAYPOINT_LABEL]: "other-wp" }),
    service("shop", "plain", { [USE_WAYPOINT_LABEL]: "none" }),
    service("shop", "by-pod", { [USE_WAYPOINT_LABEL]: "workload-wp" }),
    service("demo", "orders"),
  ];
  const lookup: WaypointLookup = {
    namespace: (name) => namespaces.find((n) => n.metadata.name === name),
    gateway: (namespace, name) => gateways.find((g) => g.metadata.namespace === namespace && g.metadata.name === name),
  };
  const meshViews = new MeshViews({
    pods: () => [pod("shop", "reviews-v1"), pod("demo", "orders-1")],
    services: () => services,
    endpointSlices: () => [],
    policies: () => [],
    trustBundle: () => ({ rootsPem: ["root"] }),
    podNetwork: () => ({ podCidrs: ["10.244.0.0/16"] }),
    rootNamespace: "ambit-system",
    waypoints: lookup,
  });
  const svc = (namespace: string, name: string) => services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
  const state = {
    routes: [
      route("shop", "reviews-producer", { name: "reviews" }),
      route("demo", "reviews-consumer", { namespace: "shop", name: "reviews" }),
      route("shop", "ratings-route", { name: "ratings" }),
      route("shop", "plain-route", { name: "plain" }),
      route("shop", "by-pod-route", { name: "by-pod" }),
      route("demo", "orders-route", { name: "orders" }),
    ],
    policies: [
      policy("shop", "at-gateway", [toGateway("waypoint")]),
      policy("shop", "for-ratings", [toService("ratings")]),
      policy("shop", "for-plain", [toService("plain")]),
      policy("shop", "unreadable", [{ kind: "Gateway" }]),
      policy("demo", "for-orders", [toService("orders")]),
      policy("demo", "unreadable-demo", [{ kind: 7 }]),
    ],
    trafficPolicies: [] as CompiledTrafficPolicy[],
  };
  let compiled: ServicePortRoutes[] = compileMeshRoutes(state.routes, [], svc).servicePorts;
  const views = new WaypointViews({
    shared: () => meshViews.shared(),
    routes: () => compiled,
    l7Policies: () => state.policies,
    trafficPolicies: () => state.trafficPolicies,
  });
  const recompile = () => (compiled = compileMeshRoutes(state.routes, [], svc).servicePorts);
  return { views, meshViews, state, recompile };
}

const own = (view: ReadonlyMap<string, unknown>) => [...view.keys()].filter((k) => k.startsWith("routes/") || k.startsWith("l7authorization/")).sort();

describe("WaypointViews", () => {
  it.each([
    [
      "shop/waypoint: its Services' producer and consumer routes, policies at its Gateway, and the unreadable policy of its namespace",
      { namespace: "shop", name: "waypoint" },
      ["l7authorization/shop/at-gateway", "l7authorization/shop/unreadable", "routes/shop/reviews:9080"],
    ],
    [
      "shop/other-wp: the Service that opted into it and the policy targeting that Service",
      { namespace: "shop", name: "other-wp" },
      ["l7authorization/shop/for-ratings", "l7authorization/shop/unreadable", "routes/shop/ratings:9080"],
    ],
    [
      "shop/workload-wp: a waypoint for workloads serves no Service, so no routes; only the namespace-wide failure",
      { namespace: "shop", name: "workload-wp" },
      ["l7authorization/shop/unreadable"],
    ],
    ["demo/nothing: no such waypoint, nothing of its own", { namespace: "demo", name: "nothing" }, ["l7authorization/demo/unreadable-demo"]],
    ["ops/waypoint: another namespace's waypoint of the same name gets nothing of shop's", { namespace: "ops", name: "waypoint" }, []],
  ])("%s", (_, waypoint, expected) => {
    const { views } = cluster();
    expect(own(views.viewFor(waypoint))).toEqual(expected);
  });

  it("holds every workload and Service as agents get them (labels aside), the trust bundle and the pod network", () => {
    const { views, meshViews } = cluster();
    const view = views.viewFor({ namespace: "shop", name: "waypoint" });
    const shared = [...meshViews.shared().keys()];
    expect(shared.sort()).toEqual([
      "network/default",
      "service/demo/orders",
      "service/shop/by-pod",
      "service/shop/plain",
      "service/shop/ratings",
      "service/shop/reviews",
      "trustbundle/default",
      "workload/uid-orders-1",
      "workload/uid-reviews-v1",
    ]);
    for (const key of shared) expect(view.get(key)).toBe(meshViews.shared().get(key));
    expect(view.get("workload/uid-reviews-v1")?.value).toMatchObject({ name: "reviews-v1", labels: {} });
    expect(view.get("service/shop/reviews")?.value).toMatchObject({ waypoint: { namespace: "shop", name: "waypoint" } });
    expect(view.size).toBe(shared.length + 3);
  });

  it("a route's value holds producer and consumer routes of the port; a route change reaches only the waypoint serving it", () => {
    const { views, state, recompile } = cluster();
    const mine = views.viewFor({ namespace: "shop", name: "waypoint" });
    expect(mine.get("routes/shop/reviews:9080")?.value).toMatchObject({
      namespace: "shop",
      service: "reviews",
      port: 9080,
      producer: [{ kind: "HTTPRoute", namespace: "shop", name: "reviews-producer" }],
      consumer: [{ kind: "HTTPRoute", namespace: "demo", name: "reviews-consumer" }],
    });
    const other = views.viewFor({ namespace: "shop", name: "other-wp" });
    state.routes = state.routes.filter((r) => r.metadata.name !== "reviews-consumer");
    recompile();
    expect(views.viewFor({ namespace: "shop", name: "waypoint" }).get("routes/shop/reviews:9080")?.value).toMatchObject({ consumer: [] });
    // Unchanged resources are the very same objects (their hashes are reused by the stream).
    expect(views.viewFor({ namespace: "shop", name: "other-wp" }).get("routes/shop/ratings:9080")?.value).toEqual(other.get("routes/shop/ratings:9080")?.value);
  });
});

const trafficPolicy = (namespace: string, name: string, ...targets: TrafficPolicyTarget[]): CompiledTrafficPolicy => ({
  namespace,
  name,
  creationTimestamp: "2026-01-01T00:00:00Z",
  targets,
  loadBalancer: { type: "LeastRequest" },
});

describe("WaypointViews: BackendTrafficPolicies", () => {
  it("a waypoint gets the policies of its Services, of the routes attached to them, and of those routes' backends", () => {
    const { views, state, recompile } = cluster();
    state.routes = [
      ...state.routes,
      {
        ...route("shop", "reviews-to-plain", { name: "reviews" }),
        spec: { parentRefs: [{ group: "", kind: "Service", name: "reviews" }], rules: [{ backendRefs: [{ name: "plain", port: 9080 }] }] },
      },
    ];
    recompile();
    state.trafficPolicies = [
      trafficPolicy("shop", "for-reviews", { kind: "Service", name: "reviews" }),
      trafficPolicy("shop", "for-producer-route", { kind: "HTTPRoute", name: "reviews-producer" }),
      trafficPolicy("demo", "for-consumer-route", { kind: "HTTPRoute", name: "reviews-consumer" }),
      trafficPolicy("shop", "for-plain-backend", { kind: "Service", name: "plain" }),
      trafficPolicy("shop", "for-ratings", { kind: "Service", name: "ratings" }),
      trafficPolicy("demo", "for-orders", { kind: "Service", name: "orders" }),
      trafficPolicy("shop", "grpc-of-same-name", { kind: "GRPCRoute", name: "reviews-producer" }),
    ];
    const keys = (waypoint: { namespace: string; name: string }) => [...views.viewFor(waypoint).keys()].filter((k) => k.startsWith("trafficpolicy/")).sort();
    expect(keys({ namespace: "shop", name: "waypoint" })).toEqual([
      "trafficpolicy/demo/for-consumer-route",
      "trafficpolicy/shop/for-plain-backend",
      "trafficpolicy/shop/for-producer-route",
      "trafficpolicy/shop/for-reviews",
    ]);
    expect(keys({ namespace: "shop", name: "other-wp" })).toEqual(["trafficpolicy/shop/for-ratings"]);
    expect(keys({ namespace: "shop", name: "workload-wp" })).toEqual([]);
    expect(views.viewFor({ namespace: "shop", name: "waypoint" }).get("trafficpolicy/shop/for-reviews")?.value).toBe(state.trafficPolicies[0]);
  });
});
