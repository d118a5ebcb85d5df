// Helpers for sandbox tests of waypoints: echo backend manifests, HTTPRoutes, route status, and requests sent from a meshed pod (curl, http-load).
import path from "node:path";
import { expect } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { ambit, kubectl } from "./sandbox.ts";

export const APPS = path.join(REPO_ROOT, "test", "fixtures", "apps");
/** Pods run programs of this machine in the sandbox; Node 24 is the one running the tests. */
export const NODE = process.execPath;
/** The meshed pod requests are sent from unless a test says otherwise. */
export const CLIENT = "demo/orders";

/**
 * A Deployment `<app>-<version>` (one replica) running the echo backend in `namespace` (demo), labelled {app, version}.
 * `env` adds environment variables (the backend's VERSION and POD_NAME are always set).
 */
export function echoDeployment(app: string, version: string, serviceAccount: string, env: Record<string, string> = {}, namespace = "demo"): string {
  return `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${app}-${version}, namespace: ${namespace}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${app}, version: ${version}}}
  template:
    metadata: {labels: {app: ${app}, version: ${version}}}
    spec:
      serviceAccountName: ${serviceAccount}
      containers:
      - name: app
        image: ambit.dev/toolbox
        command: ["${NODE}", "${path.join(APPS, "echo-backend.ts")}"]
        env:
        - {name: VERSION, value: ${version}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
${Object.entries(env)
  .map(([k, v]) => `        - {name: ${k}, value: "${v}"}`)
  .join("\n")}
`;
}

export interface ServicePort {
  name: string;
  port: number;
  targetPort: number;
  appProtocol?: string;
}

/** The echo backend's one port (8080) as Service port 80. */
export const HTTP_PORT: ServicePort = { name: "http", port: 80, targetPort: 8080 };

/** A Service in namespace demo bound to the waypoint `waypoint` (label ambit.dev/use-waypoint). */
export function boundService(name: string, selector: string, ports: ServicePort[] = [HTTP_PORT]): string {
  const list = ports.map((p) => `{name: ${p.name}, port: ${p.port}, targetPort: ${p.targetPort}${p.appProtocol ? `, appProtocol: ${p.appProtocol}` : ""}}`);
  return `
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo, labels: {ambit.dev/use-waypoint: waypoint}}
spec:
  selector: ${selector}
  ports: [${list.join(", ")}]
`;
}

export const serviceAccount = (name: string, namespace = "demo") =>
  `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ${name}, namespace: ${namespace}}\n`;

/** The waypoint Gateway of namespace demo. */
export const WAYPOINT_GATEWAY = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: demo}
spec:
  gatewayClassName: ambit-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
`;

export interface LoadSummary {
  count: number;
  statuses: Record<string, number>;
  versions: Record<string, number>;
  p50: number;
  p99: number;
  sequence?: number[];
  connections: number;
  errors: string[];
}

/** Runs the load client in demo/orders (a meshed pod): `count` requests over keep-alive connections. */
export async function load(url: string, opts: string[] = []): Promise<LoadSummary> {
  const r = await ambit(["dev", "exec", CLIENT, "--", NODE, path.join(APPS, "http-load.ts"), url, ...opts], { timeout: 120_000 });
  if (r.exitCode !== 0) throw new Error(`http-load ${url} failed (${r.exitCode}): ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as LoadSummary;
}

export interface CurlResult {
  status: number;
  /** The status line and header lines, as received. */
  headers: string;
  body: string;
}

/** One request with curl from a meshed pod (`<namespace>/<pod or deployment>`, demo/orders by default): status, headers and body as the client saw them. */
export async function curl(url: string, args: string[] = [], from = CLIENT): Promise<CurlResult> {
  const r = await ambit(["dev", "exec", from, "--", "curl", "-s", "-i", "--max-time", "8", ...args, url]);
  const [head = "", ...rest] = r.stdout.split(/\r?\n\r?\n/);
  return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(head)?.[1] ?? 0), headers: head, body: rest.join("\n\n") };
}

/** The value of one response header in curl's head (case-insensitive name), undefined when absent. */
export function headerOf(res: CurlResult, name: string): string | undefined {
  const line = res.headers.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

export const apply = async (yaml: string) => {
  const r = await kubectl(["apply", "-f", "-"], { input: yaml });
  if (r.exitCode !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
};

export interface RouteOptions {
  /** The route's namespace (demo). */
  namespace?: string;
  /** The parent Service's namespace, written into the parentRef when set. */
  parentNamespace?: string;
  /** The parentRef's port (80); null leaves it out: the route then applies to every port of the Service. */
  port?: number | null;
  kind?: "HTTPRoute" | "GRPCRoute";
}

/** An HTTPRoute attached to Service `parent` port 80, with the given rules (YAML, indented as under `rules:`). */
export const route = (name: string, parent: string, rules: string, opts: RouteOptions = {}) => {
  const port = opts.port === undefined ? 80 : opts.port;
  const parentRef = [`group: ""`, "kind: Service", `name: ${parent}`];
  if (opts.parentNamespace !== undefined) parentRef.push(`namespace: ${opts.parentNamespace}`);
  if (port !== null) parentRef.push(`port: ${port}`);
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: ${opts.kind ?? "HTTPRoute"}
metadata: {name: ${name}, namespace: ${opts.namespace ?? "demo"}}
spec:
  parentRefs: [{${parentRef.join(", ")}}]
  rules:
${rules}
`;
};

/** Waits until the route's status says the waypoint accepted it (it is then in the waypoint's config within a moment). */
export async function routeAccepted(name: string, opts: { namespace?: string; kind?: "httproute" | "grpcroute" } = {}): Promise<void> {
  await expect
    .poll(
      async () =>
        (
          await kubectl([
            "get",
            opts.kind ?? "httproute",
            "-n",
            opts.namespace ?? "demo",
            name,
            "-o",
            'jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status}',
          ])
        ).stdout,
      { timeout: 20_000 },
    )
    .toBe("True");
}

/** The waypoint pod's name (one replica). */
export async function waypointPod(): Promise<string> {
  return (await kubectl(["get", "pods", "-n", "demo", "-l", "gateway.networking.k8s.io/gateway-name=waypoint", "-o", "jsonpath={.items[0].metadata.name}"]))
    .stdout;
}

/** Waits (bounded) until the waypoint is Programmed and every pod with `selector` in `namespace` is captured (`count` of them). */
export async function waitForWaypointAndPods(selector: string, count: number, namespace = "demo"): Promise<void> {
  const want = Array(count).fill("enabled").join(" ");
  for (let i = 0; ; i++) {
    const ready = (await kubectl(["get", "gateway", "-n", "demo", "waypoint", "-o", 'jsonpath={.status.conditions[?(@.type=="Programmed")].status}'])).stdout;
    const pods = (await kubectl(["get", "pods", "-n", namespace, "-l", selector, "-o", "jsonpath={.items[*].metadata.annotations.ambit\\.dev/redirection}"]))
      .stdout;
    if (ready === "True" && pods === want) return;
    if (i > 300) throw new Error(`waypoint or ${namespace} pods ${selector} not ready within 60 s (Programmed=${ready}, capture: ${pods})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface GrpcCallResult {
  status?: number;
  grpcStatus?: string;
  messages?: string[];
  version?: string;
  error?: string;
}

/** One gRPC call from demo/orders with test/fixtures/apps/grpc-call.ts (`opts`: --header k:v...). */
export async function grpcCall(authority: string, method: string, message: string, opts: string[] = []): Promise<GrpcCallResult> {
  const r = await ambit(["dev", "exec", CLIENT, "--", NODE, path.join(APPS, "grpc-call.ts"), authority, method, message, ...opts]);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as GrpcCallResult;
}

export interface GrpcLoadSummary {
  count: number;
  statuses: Record<string, number>;
  grpcStatuses: Record<string, number>;
  versions: Record<string, number>;
  errors: string[];
}

/** `count` gRPC calls one after another on one connection from demo/orders, summed up. */
export async function grpcLoad(authority: string, method: string, count: number): Promise<GrpcLoadSummary> {
  const r = await ambit(["dev", "exec", CLIENT, "--", NODE, path.join(APPS, "grpc-call.ts"), authority, method, "hi", "--count", String(count)], {
    timeout: 120_000,
  });
  if (r.exitCode !== 0) throw new Error(`grpc-call ${authority} failed (${r.exitCode}): ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as GrpcLoadSummary;
}
