// The Gateway API mesh conformance world (Services echo, echo-v1, echo-v2) for route engine tests, and helpers to send requests through it.
import { parseAllDocuments } from "yaml";
import type { BackendTarget } from "../../contract/routes.ts";
import { compileRoutes, type CompileContext, type MeshRoute, type RoutePlan, RoutingTable, type ServiceInfo } from "../../waypoint/routing/index.ts";

export const MESH_NS = "gateway-conformance-mesh";
export const CONSUMER_NS = "gateway-conformance-mesh-consumer";

const versionedPorts = [
  { port: 80, name: "http" },
  { port: 8080, name: "http-alt" },
  { port: 443, name: "https" },
  { port: 9090, name: "tcp" },
  { port: 7070, name: "grpc" },
];

/** conformance/mesh/manifests.yaml: echo selects both versions; all three Services have the same five ports. */
export const MESH_SERVICES: Record<string, ServiceInfo> = {
  [`${MESH_NS}/echo`]: { ports: versionedPorts },
  [`${MESH_NS}/echo-v1`]: { ports: versionedPorts },
  [`${MESH_NS}/echo-v2`]: { ports: versionedPorts },
};

export const meshContext = (services: Record<string, ServiceInfo> = MESH_SERVICES): CompileContext => ({
  getService: (namespace, name) => services[`${namespace}/${name}`],
});

export const parseRoutes = (manifests: string): MeshRoute[] => parseAllDocuments(manifests).map((d) => d.toJS() as MeshRoute);

export function meshTable(manifests: string, ctx: CompileContext = meshContext()): RoutingTable {
  const { servicePorts, results } = compileRoutes(parseRoutes(manifests), ctx);
  const errors = results.flatMap((r) => r.errors.map((e) => e.message));
  if (errors.length > 0) throw new Error(`conformance manifests did not compile: ${errors.join("; ")}`);
  return new RoutingTable(servicePorts);
}

export interface TestRequest {
  service?: string;
  port?: number;
  /** Absent destination: the client addressed a pod IP, not a Service. */
  toPod?: boolean;
  client?: string;
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  scheme?: "http" | "https";
}

export function send(table: RoutingTable, r: TestRequest = {}, random: () => number = Math.random): RoutePlan {
  const service = r.service ?? "echo";
  const port = r.port ?? 80;
  const headers = Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return table.plan(
    {
      destination: r.toPod ? undefined : { namespace: MESH_NS, service, port },
      clientNamespace: r.client ?? MESH_NS,
      scheme: r.scheme ?? "http",
      method: r.method ?? "GET",
      path: r.path ?? "/",
      authority: r.host ?? (port === 80 ? service : `${service}:${port}`),
      headers,
    },
    random,
  );
}

/** The Service that ends up answering: the routed backend, or the addressed Service when no route applies. */
export function answeringService(plan: RoutePlan, addressed: string): string | undefined {
  if (plan.action === "forward") return plan.backend.service;
  if (plan.action === "passthrough") return addressed;
  return undefined;
}

export const target = (service: string, port: number, namespace = MESH_NS): BackendTarget => ({ namespace, service, port });

/** Deterministic uniform numbers in [0, 1) (mulberry32), so weighted choices are repeatable. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A header of the forwarded request or of the response after modifiers, joined as the echo server shows repeated values. */
export const joined = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(",") : v);
