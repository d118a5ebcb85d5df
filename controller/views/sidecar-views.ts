// Per-sidecar views for the config stream: what every node shares, the pod's own record, the policies selecting it, and every route and traffic policy.
import { type Resource, resourceId } from "../../contract/stream.ts";
import type { MeshViews } from "./node-views.ts";
import { NodeViewMap } from "./node-views.ts";
import type { WaypointViews } from "./waypoint-views.ts";

/**
 * A sidecar is one pod's proxy at both ends: as a client it routes (every HTTPRoute/GRPCRoute and BackendTrafficPolicy,
 * since its pod may call any Service), as a server it enforces the AuthorizationPolicies and PeerAuthentications that
 * select its pod, with the agent's own policy code. It gets no other pod's labels and no waypoint's L7 policies.
 */
export class SidecarViews {
  readonly #mesh: MeshViews;
  readonly #waypoints: WaypointViews;

  constructor(mesh: MeshViews, waypoints: WaypointViews) {
    this.#mesh = mesh;
    this.#waypoints = waypoints;
  }

  viewFor(pod: { namespace: string; pod: string }): ReadonlyMap<string, Resource> {
    const { own, policies, shared } = this.#mesh.viewForPod(pod.namespace, pod.pod);
    const added = new Map(policies);
    for (const r of this.#waypoints.everyRouteAndTrafficPolicy()) added.set(resourceId(r), r);
    return new NodeViewMap(shared, own, added);
  }
}
