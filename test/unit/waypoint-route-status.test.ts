// The status.parents the leader writes on a route: its own entries for parents bound to an ambit waypoint, other implementations' untouched, no needless writes.
import { describe, expect, it } from "vitest";
import { nextRouteParents } from "../../controller/waypoints/index.ts";
import { WAYPOINT_CONTROLLER_NAME } from "../../contract/waypoint.ts";
import type { KubeObject } from "../../kube/client.ts";
import type { RouteParentStatus } from "../../waypoint/routing/index.ts";

const ref = (name: string) => ({ group: "", kind: "Service", name });
const accepted = (name: string, status: "True" | "False" = "True"): RouteParentStatus => ({
  parentRef: ref(name),
  controllerName: WAYPOINT_CONTROLLER_NAME,
  conditions: [{ type: "Accepted", status, reason: status === "True" ? "Accepted" : "NoMatchingParent", message: name, observedGeneration: 1 }],
});
const istio = {
  parentRef: ref("legacy"),
  controllerName: "istio.io/mesh-controller",
  conditions: [{ type: "Accepted", status: "True", reason: "Accepted", message: "", lastTransitionTime: "2025-01-01T00:00:00Z" }],
};
const routeWith = (parents: unknown[]): KubeObject => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "HTTPRoute",
  metadata: { name: "r", namespace: "shop" },
  status: { parents },
});
const boundOnly =
  (...names: string[]) =>
  (p: RouteParentStatus) =>
    names.includes(p.parentRef.name ?? "");

describe("nextRouteParents", () => {
  it("writes ours only for bound parents, keeps other implementations' entries, and drops ours for parents no longer bound", () => {
    const first = nextRouteParents(routeWith([istio]), [accepted("reviews"), accepted("unbound")], boundOnly("reviews"), "T1");
    expect(first).toEqual([istio, { ...accepted("reviews"), conditions: [{ ...accepted("reviews").conditions[0], lastTransitionTime: "T1" }] }]);
    // Nothing changed: no write.
    expect(nextRouteParents(routeWith(first!), [accepted("reviews"), accepted("unbound")], boundOnly("reviews"), "T2")).toBeUndefined();
    // The Service was unbound from its waypoint: our entry goes, Istio's stays.
    expect(nextRouteParents(routeWith(first!), [accepted("reviews")], boundOnly(), "T3")).toEqual([istio]);
  });

  it("keeps a condition's lastTransitionTime while its status holds, and moves it when the status flips", () => {
    const first = nextRouteParents(routeWith([]), [accepted("reviews")], boundOnly("reviews"), "T1")!;
    const reworded = { ...accepted("reviews"), conditions: [{ ...accepted("reviews").conditions[0]!, message: "new words" }] };
    expect(nextRouteParents(routeWith(first), [reworded], boundOnly("reviews"), "T2")![0]!.conditions[0]).toMatchObject({
      message: "new words",
      lastTransitionTime: "T1",
    });
    expect(nextRouteParents(routeWith(first), [accepted("reviews", "False")], boundOnly("reviews"), "T3")![0]!.conditions[0]).toMatchObject({
      status: "False",
      lastTransitionTime: "T3",
    });
  });
});
