// Public surface of the per-node views: what the config stream pushes to each agent.
export { MeshViews, type MeshViewSources, type ScopedPolicy, policySelects } from "./node-views.ts";
