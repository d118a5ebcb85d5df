// The waypoint's routing decision for one request, without I/O: forward (where, with which request), redirect, answer an error, or pass through.
import {
  routesKey,
  type BackendTarget,
  type CompiledRoute,
  type HeaderModifier,
  type RouteRetry,
  type RouteTimeouts,
  type ServicePortRoutes,
} from "../../contract/routes.ts";
import { applyFilters, isRedirect, type ForwardRequest } from "./filters.ts";
import { chooseBackend, ServicePortRouteTable, type HeaderMap, type RandomSource } from "./match.ts";

export interface WaypointRequest {
  /** The Service port the client addressed (the HBONE :authority VIP:port); undefined when it addressed a workload directly. */
  destination: BackendTarget | undefined;
  /** Namespace of the client workload: selects its consumer routes. */
  clientNamespace: string;
  scheme: "http" | "https";
  method: string;
  /** Path and optional `?query`, as on the request line. */
  path: string;
  authority: string;
  /** Lower-case names. */
  headers: HeaderMap;
}

/** Which route and rule decided: for access logs, metrics and `ambit explain`. */
export interface RouteRef {
  kind: CompiledRoute["kind"];
  namespace: string;
  name: string;
  ruleIndex: number;
  ruleName?: string;
}

export type RoutePlan =
  /** No route is attached to the destination for this client: send the request on to where it was addressed. */
  | { action: "passthrough" }
  | {
      action: "forward";
      backend: BackendTarget;
      request: ForwardRequest;
      responseModifiers: HeaderModifier[];
      mirrors: BackendTarget[];
      timeouts?: RouteTimeouts;
      retry?: RouteRetry;
      protocol: "http" | "grpc";
      route: RouteRef;
    }
  | { action: "redirect"; status: number; location: string; responseModifiers: HeaderModifier[]; route: RouteRef }
  /**
   * Answer locally. 404 `no-rule-matched`: routes are attached but none matches (the spec's 404). 500 `no-backend`: the
   * rule has no backend or all weights are 0; 500 `backend-unresolved`: the chosen backend did not resolve. gRPC clients
   * get the status the proxy maps these to (UNIMPLEMENTED, UNAVAILABLE).
   */
  | { action: "respond"; status: 404 | 500; reason: "no-rule-matched" | "no-backend" | "backend-unresolved"; protocol: "http" | "grpc"; route?: RouteRef };

/** Every Service port's routes of one config version, ready to route requests. */
export class RoutingTable {
  readonly #tables = new Map<string, ServicePortRouteTable>();

  constructor(servicePorts: Iterable<ServicePortRoutes>) {
    for (const routes of servicePorts) this.#tables.set(routesKey(routes), new ServicePortRouteTable(routes));
  }

  plan(request: WaypointRequest, random: RandomSource = Math.random): RoutePlan {
    const table = request.destination && this.#tables.get(routesKey(request.destination));
    if (table === undefined) return { action: "passthrough" };
    const selection = table.select(request, request.clientNamespace);
    if (selection === "no-routes") return { action: "passthrough" };
    if (selection === "no-rule-matched") {
      const protocol = /^application\/grpc/i.test(String(request.headers["content-type"] ?? "")) ? "grpc" : "http";
      return { action: "respond", status: 404, reason: "no-rule-matched", protocol };
    }
    const { protocol } = selection;
    const { route, rule, match } = selection;
    const ref: RouteRef = {
      kind: route.kind,
      namespace: route.namespace,
      name: route.name,
      ruleIndex: rule.index,
      ...(rule.name === undefined ? {} : { ruleName: rule.name }),
    };
    const ctx = {
      scheme: request.scheme,
      servicePort: (request.destination as BackendTarget).port,
      matchedPrefix: "path" in match && match.path.type === "PathPrefix" ? match.path.value : undefined,
      random,
    };
    const initial = {
      request: { method: request.method, path: request.path, authority: request.authority, headers: request.headers },
      responseModifiers: [],
      mirrors: [],
    };
    const afterRule = applyFilters(rule.filters, initial, ctx);
    if (isRedirect(afterRule)) return { action: "redirect", ...afterRule, route: ref };
    const backend = chooseBackend(rule.backends, random);
    if (backend === undefined) return { action: "respond", status: 500, reason: "no-backend", protocol, route: ref };
    if (backend.unresolved !== undefined) return { action: "respond", status: 500, reason: "backend-unresolved", protocol, route: ref };
    const outcome = applyFilters(backend.filters, afterRule, ctx);
    if (isRedirect(outcome)) return { action: "redirect", ...outcome, route: ref };
    return {
      action: "forward",
      backend: { namespace: backend.namespace, service: backend.service, port: backend.port },
      ...outcome,
      ...(rule.timeouts === undefined ? {} : { timeouts: rule.timeouts }),
      ...(rule.retry === undefined ? {} : { retry: rule.retry }),
      protocol,
      route: ref,
    };
  }
}
