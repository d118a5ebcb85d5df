// Compiles HTTPRoutes and GRPCRoutes attached to Services (GAMMA) into the wire form waypoints route by, and the status the controller writes back.
import { routesKey, type CompiledRoute, type ServicePortRoutes, type UnresolvedReason } from "../../contract/routes.ts";
import { WAYPOINT_CONTROLLER_NAME } from "../../contract/waypoint.ts";
import { acceptedReasonFor, RouteErrorCode, RouteValidationError } from "./errors.ts";
import { isObject, listAt, type Report } from "./fields.ts";
import type { GRPCRouteRule, HTTPRouteRule, MeshRoute, ParentReference, RouteCondition, RouteParentStatus } from "./gateway-api.ts";
import { routeAgeOrder } from "./match.ts";
import { compileGrpcRule, compileHttpRule, type ResolveBackend } from "./rules.ts";

export interface ServicePort {
  port: number;
  /** Matched by a parentRef's sectionName. */
  name?: string;
}

/** What the compiler needs to know of a Service. */
export interface ServiceInfo {
  ports: ServicePort[];
}

export interface CompileContext {
  /** The Service in the controller's informer cache, or undefined when there is none. */
  getService(namespace: string, name: string): ServiceInfo | undefined;
  /**
   * Whether a route in `from.namespace` may send traffic to a Service in another namespace (a ReferenceGrant check).
   * Absent: always, since mesh routes only reach Services the client could reach anyway (GEP-1294 needs no ReferenceGrant).
   */
  referencePermitted?(from: { kind: MeshRoute["kind"]; namespace: string }, to: { namespace: string; name: string }): boolean;
  /** `status.parents[].controllerName`; default WAYPOINT_CONTROLLER_NAME (contract/waypoint.ts). */
  controllerName?: string;
}

/** A Service port the route attaches to through one of its parentRefs. */
export interface RouteAttachment {
  namespace: string;
  service: string;
  port: number;
  /** The route is in another namespace than the Service: it applies only to clients of its own namespace. */
  consumer: boolean;
}

export interface RouteCompileResult {
  /** The valid rules; undefined when the route is not accepted at all. */
  route: CompiledRoute | undefined;
  attachments: RouteAttachment[];
  /** Every validation error, route-wide ones and those that dropped a rule. */
  errors: RouteValidationError[];
  /** One entry per Service parentRef (other parents are not the mesh's to judge). */
  parents: RouteParentStatus[];
}

const SECTION_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Condition messages are capped by the API at 32768 characters. */
const MAX_MESSAGE = 32_768;

const isServiceParent = (p: ParentReference): boolean => isObject(p) && p.group === "" && p.kind === "Service";
const message = (parts: string[]): string => {
  const text = parts.join("; ");
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 3)}...` : text;
};

/** Validates one route, resolves its parents and backends, and says which Service ports it attaches to. */
export function compileRoute(route: MeshRoute, ctx: CompileContext): RouteCompileResult {
  const errors: RouteValidationError[] = [];
  let currentRule: number | undefined;
  const report: Report = (code, path, detail) => errors.push(new RouteValidationError(code, path, detail, currentRule));
  const unresolved: { reason: UnresolvedReason; message: string }[] = [];

  const meta = isObject(route) && isObject(route.metadata) ? route.metadata : {};
  const namespace = typeof meta.namespace === "string" ? meta.namespace : "";
  const name = typeof meta.name === "string" ? meta.name : "";
  if (namespace === "" || name === "") report(RouteErrorCode.malformed, "metadata", "must have a namespace and a name");
  const spec = isObject(route) && isObject(route.spec) ? route.spec : {};

  const parentRefs = listAt(spec.parentRefs, "spec.parentRefs", 32, report);
  const serviceParents = checkParents(parentRefs, namespace, report);

  const resolve: ResolveBackend = (ref, path) => {
    const fail = (reason: UnresolvedReason, detail: string) => {
      unresolved.push({ reason, message: `${path}: ${detail}` });
      return reason;
    };
    if (ref.group !== "" || ref.kind !== "Service")
      return fail("InvalidKind", `backends of kind ${ref.group === "" ? "" : `${ref.group}/`}${ref.kind} are not supported, only Services`);
    if (ref.namespace !== namespace && ctx.referencePermitted?.({ kind: route.kind, namespace }, { namespace: ref.namespace, name: ref.service }) === false) {
      return fail("RefNotPermitted", `Service ${ref.namespace}/${ref.service} is in another namespace and no ReferenceGrant allows this route to use it`);
    }
    const service = ctx.getService(ref.namespace, ref.service);
    if (service === undefined) return fail("BackendNotFound", `Service ${ref.namespace}/${ref.service} not found`);
    if (!service.ports.some((p) => p.port === ref.port)) return fail("BackendNotFound", `Service ${ref.namespace}/${ref.service} has no port ${ref.port}`);
    return undefined;
  };

  const ruleSpecs = compileRuleSpecs(route, report);
  const ruleCtx = { routeNamespace: namespace, resolve, report };
  const rules: CompiledRoute["rules"] = [];
  ruleSpecs.forEach((ruleSpec, i) => {
    currentRule = i;
    const rule = route.kind === "GRPCRoute" ? compileGrpcRule(ruleSpec, i, ruleCtx) : compileHttpRule(ruleSpec, i, ruleCtx);
    if (rule !== undefined) (rules as unknown[]).push(rule);
  });
  currentRule = undefined;

  const routeErrors = errors.filter((e) => e.rule === undefined);
  const droppedRules = [...new Set(errors.flatMap((e) => (e.rule === undefined ? [] : [e.rule])))];
  const accepted = routeErrors.length === 0 && (droppedRules.length === 0 || rules.length > 0);
  const compiled: CompiledRoute | undefined = accepted
    ? ({
        kind: route.kind,
        namespace,
        name,
        creationTimestamp: typeof meta.creationTimestamp === "string" ? meta.creationTimestamp : "",
        rules,
      } as CompiledRoute)
    : undefined;

  const controllerName = ctx.controllerName ?? WAYPOINT_CONTROLLER_NAME;
  const generation = typeof meta.generation === "number" ? { observedGeneration: meta.generation } : {};
  const condition = (type: RouteCondition["type"], ok: boolean, reason: string, text: string): RouteCondition => ({
    type,
    status: ok ? "True" : "False",
    reason,
    message: text,
    ...generation,
  });
  const resolvedRefs =
    unresolved.length === 0
      ? condition("ResolvedRefs", true, "ResolvedRefs", "all backend references resolved")
      : condition("ResolvedRefs", false, (unresolved[0] as { reason: string }).reason, message(unresolved.map((u) => u.message)));

  const attachments: RouteAttachment[] = [];
  const parents: RouteParentStatus[] = serviceParents.map(({ ref, serviceNamespace }) => {
    const conditions: RouteCondition[] = [];
    const ports = attachedPorts(ref, serviceNamespace, ctx);
    if (!accepted) {
      const first = (routeErrors[0] ?? errors[0]) as RouteValidationError;
      conditions.push(condition("Accepted", false, acceptedReasonFor(first.code), message(errors.map((e) => e.message))));
    } else if (typeof ports === "string") {
      conditions.push(condition("Accepted", false, "NoMatchingParent", ports));
    } else {
      conditions.push(
        condition(
          "Accepted",
          true,
          "Accepted",
          `attached to ${ports.length === 1 ? "port" : "ports"} ${ports.join(", ")} of Service ${serviceNamespace}/${ref.name}`,
        ),
      );
      for (const port of ports) attachments.push({ namespace: serviceNamespace, service: ref.name as string, port, consumer: serviceNamespace !== namespace });
      if (droppedRules.length > 0) {
        const dropped = errors.filter((e) => e.rule !== undefined);
        const text = `Dropped Rule(s) ${droppedRules.map((i) => `${i}${ruleNameOf(ruleSpecs[i])}`).join(", ")}: ${dropped.map((e) => e.message).join("; ")}`;
        conditions.push(condition("PartiallyInvalid", true, acceptedReasonFor((dropped[0] as RouteValidationError).code), message([text])));
      }
    }
    conditions.push(resolvedRefs);
    return { parentRef: ref, controllerName, conditions };
  });
  return { route: compiled, attachments: dedupeAttachments(attachments), errors, parents };
}

/** Compiles every route and groups the accepted ones by the Service port they attach to: the resources streamed to waypoints. */
export function compileRoutes(routes: MeshRoute[], ctx: CompileContext): { servicePorts: ServicePortRoutes[]; results: RouteCompileResult[] } {
  const byPort = new Map<string, ServicePortRoutes>();
  const results = routes.map((route) => compileRoute(route, ctx));
  for (const result of results) {
    if (result.route === undefined) continue;
    for (const a of result.attachments) {
      const key = routesKey(a);
      let entry = byPort.get(key);
      if (entry === undefined) {
        entry = { namespace: a.namespace, service: a.service, port: a.port, producer: [], consumer: [] };
        byPort.set(key, entry);
      }
      (a.consumer ? entry.consumer : entry.producer).push(result.route);
    }
  }
  const servicePorts = [...byPort.keys()].sort().map((key) => {
    const entry = byPort.get(key) as ServicePortRoutes;
    entry.producer.sort(routeAgeOrder);
    entry.consumer.sort(routeAgeOrder);
    return entry;
  });
  return { servicePorts, results };
}

const ruleNameOf = (rule: { name?: unknown } | undefined): string => (isObject(rule) && typeof rule.name === "string" ? ` (${rule.name})` : "");

/** The rules to compile: an HTTPRoute without rules has the API's default rule (match "/", no backend). */
function compileRuleSpecs(route: MeshRoute, report: Report): (HTTPRouteRule & GRPCRouteRule)[] {
  const rules = (route.spec?.rules ?? undefined) as (HTTPRouteRule & GRPCRouteRule)[] | undefined;
  const given = rules === undefined && route.kind === "HTTPRoute" ? [{}] : listAt(rules, "spec.rules", 16, report);
  let total = 0;
  const names = new Set<string>();
  given.forEach((rule, i) => {
    if (!isObject(rule)) return;
    total += Array.isArray(rule.matches) ? rule.matches.length : 0;
    if (rule.name === undefined) return;
    if (typeof rule.name !== "string" || rule.name.length > 253 || !SECTION_NAME.test(rule.name)) {
      report(RouteErrorCode.malformed, `spec.rules[${i}].name`, "must be a lower-case DNS name (RFC 1123)");
    } else if (names.has(rule.name)) {
      report(
        RouteErrorCode.duplicateRuleName,
        `spec.rules[${i}].name`,
        `rule name "${rule.name}" is used by an earlier rule; names must be unique within a route`,
      );
    }
    if (typeof rule.name === "string") names.add(rule.name);
  });
  if (total > 128) report(RouteErrorCode.tooMany, "spec.rules", `must have at most 128 matches across all rules, has ${total}`);
  return given;
}

/** The Service parentRefs, checked; a malformed or repeated one makes the whole route invalid, as the API server's validation would. */
function checkParents(refs: ParentReference[], routeNamespace: string, report: Report): { ref: ParentReference; serviceNamespace: string }[] {
  const seen = new Set<string>();
  const out: { ref: ParentReference; serviceNamespace: string }[] = [];
  refs.forEach((ref, i) => {
    const at = `spec.parentRefs[${i}]`;
    if (!isServiceParent(ref)) return;
    if (typeof ref.name !== "string" || ref.name === "") return report(RouteErrorCode.invalidParent, `${at}.name`, "must name the Service");
    if (ref.port !== undefined && (!Number.isInteger(ref.port) || ref.port < 1 || ref.port > 65535)) {
      return report(RouteErrorCode.invalidParent, `${at}.port`, `must be a port number from 1 to 65535 (got ${JSON.stringify(ref.port)})`);
    }
    const serviceNamespace = ref.namespace ?? routeNamespace;
    const key = `${serviceNamespace}/${ref.name}:${ref.port ?? ""}:${ref.sectionName ?? ""}`;
    if (seen.has(key))
      return report(RouteErrorCode.invalidParent, at, "repeats an earlier parentRef: parentRefs to one Service need distinct port or sectionName");
    seen.add(key);
    out.push({ ref, serviceNamespace });
  });
  return out;
}

/** The Service ports a parentRef selects, or why it selects none (the NoMatchingParent message). */
function attachedPorts(ref: ParentReference, serviceNamespace: string, ctx: CompileContext): number[] | string {
  const service = ctx.getService(serviceNamespace, ref.name as string);
  if (service === undefined) return `Service ${serviceNamespace}/${ref.name} not found`;
  const ports = service.ports.filter((p) => (ref.port === undefined || p.port === ref.port) && (ref.sectionName === undefined || p.name === ref.sectionName));
  if (ports.length === 0) {
    const wanted = [ref.port === undefined ? "" : `port ${ref.port}`, ref.sectionName === undefined ? "" : `port named "${ref.sectionName}"`]
      .filter(Boolean)
      .join(" and ");
    return `Service ${serviceNamespace}/${ref.name} has no ${wanted || "ports"}`;
  }
  return ports.map((p) => p.port);
}

function dedupeAttachments(list: RouteAttachment[]): RouteAttachment[] {
  const seen = new Set<string>();
  return list.filter((a) => !seen.has(routesKey(a)) && (seen.add(routesKey(a)), true));
}
