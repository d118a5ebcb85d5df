// Public surface of the views: what the config stream pushes to each agent (per node) and to each waypoint and each sidecar.
export { MeshViews, type MeshViewSources, type ScopedPolicy, policySelects } from "./node-views.ts";
export { WaypointViews, type WaypointViewSources } from "./waypoint-views.ts";
export { SidecarViews } from "./sidecar-views.ts";
