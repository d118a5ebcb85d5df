// Gateway API routes in the controller: compiled from the informer caches for waypoints, and the status.parents the leader writes for Services bound to an ambit waypoint.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, pathFor } from "../../kube/client.ts";
import { stableStringify } from "../stream/index.ts";
import { GATEWAY_API_VERSION, WAYPOINT_CONTROLLER_NAME } from "../../contract/waypoint.ts";
import { type MeshRoute, type RouteCompileResult, type RouteParentStatus, type ServiceInfo, compileRoutes } from "../../waypoint/routing/index.ts";
import type { ServicePortRoutes } from "../../contract/routes.ts";
import { type WaypointLookup, serviceWaypoint } from "./binding.ts";
import { carryTransitions } from "./status.ts";

/** What the route compiler knows of a Service: its ports and their names (a parentRef's sectionName). */
export function serviceInfo(svc: KubeObject): ServiceInfo {
  const ports = (svc.spec?.ports ?? []) as Array<{ port: number; name?: string }>;
  return { ports: ports.map((p) => (p.name ? { port: p.port, name: p.name } : { port: p.port })) };
}

export interface CompiledMeshRoutes {
  /** The route objects compiled, in the order of `results`. */
  routes: KubeObject[];
  results: RouteCompileResult[];
  servicePorts: ServicePortRoutes[];
}

/** Every HTTPRoute and GRPCRoute (list items may lack `kind`: it is set from the informer they come from). */
export function compileMeshRoutes(
  httpRoutes: readonly KubeObject[],
  grpcRoutes: readonly KubeObject[],
  service: (namespace: string, name: string) => KubeObject | undefined,
): CompiledMeshRoutes {
  const routes = [...httpRoutes.map((r) => ({ ...r, kind: "HTTPRoute" })), ...grpcRoutes.map((r) => ({ ...r, kind: "GRPCRoute" }))];
  const { results, servicePorts } = compileRoutes(routes as unknown as MeshRoute[], {
    getService: (namespace, name) => {
      const svc = service(namespace, name);
      return svc ? serviceInfo(svc) : undefined;
    },
    controllerName: WAYPOINT_CONTROLLER_NAME,
  });
  return { routes, results, servicePorts };
}

type WrittenCondition = RouteParentStatus["conditions"][number] & { lastTransitionTime: string };
type WrittenParent = Omit<RouteParentStatus, "conditions"> & { conditions: WrittenCondition[] };

/**
 * The route's next `status.parents`, or undefined when it already says so. Ours are the entries for the parentRefs
 * `bound` accepts (Services bound to an ambit waypoint); every other implementation's entries stay as they are, and
 * entries of ours for parents no longer bound go. A condition keeps its lastTransitionTime while its status holds.
 */
export function nextRouteParents(
  route: KubeObject,
  compiled: RouteParentStatus[],
  bound: (parent: RouteParentStatus) => boolean,
  now: string,
): WrittenParent[] | undefined {
  const existing = ((route.status?.parents ?? []) as WrittenParent[]).filter((p) => typeof p === "object" && p !== null);
  const theirs = existing.filter((p) => p.controllerName !== WAYPOINT_CONTROLLER_NAME);
  const oursBefore = existing.filter((p) => p.controllerName === WAYPOINT_CONTROLLER_NAME);
  const ours: WrittenParent[] = compiled.filter(bound).map((p) => {
    const before = oursBefore.find((o) => stableStringify(o.parentRef) === stableStringify(p.parentRef));
    return {
      ...p,
      conditions: carryTransitions(p.conditions, before?.conditions, now),
    };
  });
  const next = [...theirs, ...ours];
  return stableStringify(next) === stableStringify(existing) ? undefined : next;
}

const ROUTE_PLURALS: Record<string, string> = { HTTPRoute: "httproutes", GRPCRoute: "grpcroutes" };

/**
 * Writes every route's status.parents that differs from what `nextRouteParents` says (the leader's duty). Each write is
 * conditional on the resourceVersion the cache holds: a concurrent write by another implementation makes it fail
 * (409), and the watch event that follows brings the newer object to compute from again.
 */
export async function writeRouteStatuses(
  client: KubeClient,
  compiled: CompiledMeshRoutes,
  bound: (routeNamespace: string, parent: RouteParentStatus) => boolean,
  log: Logger,
  now: () => string = () => new Date().toISOString(),
): Promise<number> {
  let written = 0;
  await Promise.all(
    compiled.routes.map(async (route, i) => {
      const namespace = route.metadata.namespace ?? "";
      const parents = nextRouteParents(route, compiled.results[i]!.parents, (p) => bound(namespace, p), now());
      if (!parents) return;
      const path = pathFor(GATEWAY_API_VERSION, ROUTE_PLURALS[route.kind]!, namespace, route.metadata.name, "status");
      try {
        await client.mergePatch(path, { metadata: { resourceVersion: route.metadata.resourceVersion }, status: { parents } });
        written++;
      } catch (err) {
        log.warn({ route: `${route.kind} ${namespace}/${route.metadata.name}`, err: String(err) }, "could not write route status; retrying on its next change");
      }
    }),
  );
  return written;
}

/** Whether a route's Service parent is bound to an existing ambit waypoint: the parents whose status is ours to write. */
export function boundToAmbitWaypoint(service: (namespace: string, name: string) => KubeObject | undefined, lookup: WaypointLookup) {
  return (routeNamespace: string, parent: RouteParentStatus): boolean => {
    const svc = service(parent.parentRef.namespace ?? routeNamespace, parent.parentRef.name ?? "");
    if (!svc) return false;
    const binding = serviceWaypoint(svc, lookup);
    return binding.bound && binding.gateway !== undefined;
  };
}
