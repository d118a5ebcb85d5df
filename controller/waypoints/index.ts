// Waypoints in the controller: which Services and pods are bound to which waypoint, and the Deployment behind each waypoint Gateway.
export { type Binding, type WaypointLookup, isWaypointGateway, serviceWaypoint, waypointFor, workloadWaypoint } from "./binding.ts";
export { MANAGED_BY, MANAGED_BY_LABEL, WAYPOINT_PORTS, type WaypointDeploymentSettings, waypointObjects } from "./deployment.ts";
export { DESIRED_HASH_ANNOTATION, WaypointReconciler, type WaypointSources } from "./reconciler.ts";
export { type GatewayCondition, carryTransitions, waypointGatewayProblems, waypointGatewayStatus } from "./status.ts";
export { type CompiledMeshRoutes, boundToAmbitWaypoint, compileMeshRoutes, nextRouteParents, serviceInfo, writeRouteStatuses } from "./routes.ts";
