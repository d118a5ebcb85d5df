// Turns the controller's view for this waypoint into typed parts, refusing the whole version if any record is malformed.
import { RESOURCE_TYPES } from "../contract/mesh.ts";
import type { ServicePortRoutes } from "../contract/routes.ts";
import type { CompiledTrafficPolicy } from "../contract/traffic-policy.ts";
import type { Resource } from "../contract/stream.ts";
import { type MeshConfig, MeshConfigError, meshConfigFromView } from "../agent/config-client/index.ts";

/** What one config version holds for a waypoint. L7 policies stay raw: L7PolicyStore validates them. */
export interface WaypointConfigView extends MeshConfig {
  routes: ServicePortRoutes[];
  l7Authorizations: unknown[];
  trafficPolicies: CompiledTrafficPolicy[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The outline only: the route engine trusts the controller's compiled form, but a truncated record must not half apply. */
function checkRoutes(key: string, v: unknown): ServicePortRoutes {
  const ok =
    isObject(v) &&
    typeof v.namespace === "string" &&
    typeof v.service === "string" &&
    Number.isInteger(v.port) &&
    Array.isArray(v.producer) &&
    Array.isArray(v.consumer) &&
    [...v.producer, ...v.consumer].every((r) => isObject(r) && Array.isArray(r.rules) && (r.kind === "HTTPRoute" || r.kind === "GRPCRoute"));
  if (!ok) throw new MeshConfigError(`routes ${key} are malformed`);
  return v as unknown as ServicePortRoutes;
}

/** The outline: what ResiliencePolicies indexes by must be there; the settings are the controller's compiled form. */
function checkTrafficPolicy(key: string, v: unknown): CompiledTrafficPolicy {
  const ok =
    isObject(v) &&
    typeof v.namespace === "string" &&
    typeof v.name === "string" &&
    typeof v.creationTimestamp === "string" &&
    Array.isArray(v.targets) &&
    v.targets.every((t) => isObject(t) && typeof t.kind === "string" && typeof t.name === "string");
  if (!ok) throw new MeshConfigError(`traffic policy ${key} is malformed`);
  return v as unknown as CompiledTrafficPolicy;
}

export function waypointConfigFromView(view: ReadonlyMap<string, Resource>): WaypointConfigView {
  const mesh = meshConfigFromView(view);
  const routes: ServicePortRoutes[] = [];
  const l7Authorizations: unknown[] = [];
  const trafficPolicies: CompiledTrafficPolicy[] = [];
  for (const r of view.values()) {
    if (r.type === RESOURCE_TYPES.routes) routes.push(checkRoutes(r.key, r.value));
    else if (r.type === RESOURCE_TYPES.l7Authorization) l7Authorizations.push(r.value);
    else if (r.type === RESOURCE_TYPES.trafficPolicy) trafficPolicies.push(checkTrafficPolicy(r.key, r.value));
  }
  return { ...mesh, routes, l7Authorizations, trafficPolicies };
}
