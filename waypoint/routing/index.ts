// Public surface of the waypoint's L7 route engine: compile Gateway API routes (controller side), plan each request (waypoint side).
export { compileRoute, compileRoutes } from "./compile.ts";
export type { CompileContext, RouteAttachment, RouteCompileResult, ServiceInfo, ServicePort } from "./compile.ts";
export { RouteErrorCode, RouteValidationError } from "./errors.ts";
export { applyHeaderModifier, replacePrefix } from "./filters.ts";
export { durationMs } from "./fields.ts";
export type { ForwardRequest } from "./filters.ts";
export type { GRPCRoute, HTTPRoute, MeshRoute, ParentReference, RouteCondition, RouteParentStatus } from "./gateway-api.ts";
export type { HeaderMap, RandomSource } from "./match.ts";
export { RoutingTable } from "./plan.ts";
export type { RoutePlan, RouteRef, WaypointRequest } from "./plan.ts";
