// Per-waypoint views for the config stream: every workload and service as agents get them, the trust bundle, and the routes, L7 policies and traffic policies of what the waypoint serves.
import type { CompiledL7Authorization } from "../../contract/l7-authorization.ts";
import { type CompiledTrafficPolicy, trafficPolicyKey } from "../../contract/traffic-policy.ts";
import { RESOURCE_TYPES, type ServiceSpec } from "../../contract/mesh.ts";
import { type ServicePortRoutes, routesKey } from "../../contract/routes.ts";
import { type Resource, resourceId } from "../../contract/stream.ts";
import { type WaypointRef, waypointKey } from "../../contract/waypoint.ts";
import { NodeViewMap } from "./node-views.ts";

export interface WaypointViewSources {
  /**
   * What every node's view shares (MeshViews.shared()): workloads without labels, services with their waypoint, the
   * trust bundle, the pod network. Which Services a waypoint serves is read from these very records, so a waypoint and
   * the agents that send it traffic never disagree.
   */
  shared(): ReadonlyMap<string, Resource>;
  /** Every Service port with routes (waypoint/routing compileRoutes); a new array when anything changed. */
  routes(): readonly ServicePortRoutes[];
  /** Every targetRef'd AuthorizationPolicy compiled for waypoints; a new array when anything changed. */
  l7Policies(): readonly CompiledL7Authorization[];
  /** Every BackendTrafficPolicy in effect somewhere (controller/traffic-policy); a new array when anything changed. Absent: none. */
  trafficPolicies?(): readonly CompiledTrafficPolicy[];
}

const EMPTY: ReadonlyMap<string, Resource> = new Map();

/**
 * Builds what each waypoint should hold. Resources are made once per input (each source returns a new array only when
 * something changed) and shared by every waypoint's view, so their content hashes are computed once per change.
 */
export class WaypointViews {
  readonly #src: WaypointViewSources;
  #bindings: { of: ReadonlyMap<string, Resource>; byService: Map<string, string> } | undefined;
  #routes: { of: readonly ServicePortRoutes[]; resources: Array<{ service: string; routes: ServicePortRoutes; resource: Resource }> } | undefined;
  #policies: { of: readonly CompiledL7Authorization[]; resources: Array<{ policy: CompiledL7Authorization; resource: Resource }> } | undefined;
  #trafficPolicies: { of: readonly CompiledTrafficPolicy[]; resources: Array<{ policy: CompiledTrafficPolicy; resource: Resource }> } | undefined;

  constructor(sources: WaypointViewSources) {
    this.#src = sources;
  }

  viewFor(waypoint: WaypointRef): ReadonlyMap<string, Resource> {
    const shared = this.#src.shared();
    const byService = this.#bindingsOf(shared);
    const me = waypointKey(waypoint);
    const added = new Map<string, Resource>();
    const mine = this.#routeResources().filter(({ service }) => byService.get(service) === me);
    for (const { resource } of mine) added.set(resourceId(resource), resource);
    for (const { policy, resource } of this.#policyResources()) if (appliesTo(policy, waypoint, me, byService)) added.set(resourceId(resource), resource);
    const reach = trafficReach(me, byService, mine);
    for (const { policy, resource } of this.#trafficPolicyResources()) if (trafficPolicyApplies(policy, reach)) added.set(resourceId(resource), resource);
    return new NodeViewMap(shared, EMPTY, added);
  }

  /**
   * Every route and every traffic policy, for sidecars: a sidecar routes whatever its pod calls, as Istio's sidecars
   * apply every VirtualService and DestinationRule of the mesh. The same resource objects as the waypoints' views.
   */
  everyRouteAndTrafficPolicy(): Resource[] {
    return [...this.#routeResources().map((r) => r.resource), ...this.#trafficPolicyResources().map((p) => p.resource)];
  }

  /** `namespace/service` → `namespace/name` of the waypoint its ClusterIP traffic goes through. */
  #bindingsOf(shared: ReadonlyMap<string, Resource>): Map<string, string> {
    if (this.#bindings?.of === shared) return this.#bindings.byService;
    const byService = new Map<string, string>();
    for (const r of shared.values()) {
      if (r.type !== RESOURCE_TYPES.service) continue;
      const spec = r.value as ServiceSpec;
      if (spec.waypoint) byService.set(r.key, waypointKey(spec.waypoint));
    }
    this.#bindings = { of: shared, byService };
    return byService;
  }

  #routeResources() {
    const routes = this.#src.routes();
    if (this.#routes?.of !== routes)
      this.#routes = {
        of: routes,
        resources: routes.map((r) => ({
          service: `${r.namespace}/${r.service}`,
          routes: r,
          resource: { type: RESOURCE_TYPES.routes, key: routesKey(r), value: r },
        })),
      };
    return this.#routes.resources;
  }

  #trafficPolicyResources() {
    const policies = this.#src.trafficPolicies?.() ?? [];
    if (this.#trafficPolicies?.of !== policies)
      this.#trafficPolicies = {
        of: policies,
        resources: policies.map((p) => ({ policy: p, resource: { type: RESOURCE_TYPES.trafficPolicy, key: trafficPolicyKey(p), value: p } })),
      };
    return this.#trafficPolicies.resources;
  }

  #policyResources() {
    const policies = this.#src.l7Policies();
    if (this.#policies?.of !== policies)
      this.#policies = {
        of: policies,
        resources: policies.map((p) => ({ policy: p, resource: { type: RESOURCE_TYPES.l7Authorization, key: `${p.namespace}/${p.name}`, value: p } })),
      };
    return this.#policies.resources;
  }
}

/**
 * A Gateway target: that waypoint itself. A Service target: the waypoint the Service is bound to. "namespace" (an
 * invalid policy whose targets cannot be read): every waypoint that is a Gateway of the namespace or serves one of its
 * Services, so it fails closed there.
 */
function appliesTo(policy: CompiledL7Authorization, waypoint: WaypointRef, me: string, byService: ReadonlyMap<string, string>): boolean {
  const isMe = (kind: "Gateway" | "Service", name: string) =>
    kind === "Gateway" ? policy.namespace === waypoint.namespace && name === waypoint.name : byService.get(`${policy.namespace}/${name}`) === me;
  if (policy.targets !== "namespace") return policy.targets.some((t) => isMe(t.kind, t.name));
  if (policy.namespace === waypoint.namespace) return true;
  for (const [service, bound] of byService) if (bound === me && service.startsWith(`${policy.namespace}/`)) return true;
  return false;
}

/** `namespace/name` of Services and `namespace/kind/name` of routes whose traffic policies a waypoint applies. */
interface TrafficReach {
  services: Set<string>;
  routes: Set<string>;
}

/**
 * A waypoint applies traffic policies where it routes: the Services bound to it, the routes attached to those, and
 * the backends those routes send to (as Istio applies a DestinationRule wherever its host is the destination).
 */
function trafficReach(me: string, byService: ReadonlyMap<string, string>, mine: ReadonlyArray<{ routes: ServicePortRoutes }>): TrafficReach {
  const services = new Set<string>();
  for (const [service, bound] of byService) if (bound === me) services.add(service);
  const routes = new Set<string>();
  for (const { routes: port } of mine)
    for (const route of [...port.producer, ...port.consumer]) {
      routes.add(`${route.namespace}/${route.kind}/${route.name}`);
      for (const rule of route.rules) for (const b of rule.backends) services.add(`${b.namespace}/${b.service}`);
    }
  return { services, routes };
}

function trafficPolicyApplies(policy: CompiledTrafficPolicy, reach: TrafficReach): boolean {
  return policy.targets.some((t) =>
    t.kind === "Service" ? reach.services.has(`${policy.namespace}/${t.name}`) : reach.routes.has(`${policy.namespace}/${t.kind}/${t.name}`),
  );
}
