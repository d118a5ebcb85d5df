// The comparison's scenarios on one sandbox: a namespace each with the same client (node-1) and server (node-2) pods, meshed the scenario's way.
import os from "node:os";
import path from "node:path";
import fs from "node:fs/promises";
import { execa } from "execa";
import { REPO_ROOT } from "../../sandbox/config.ts";
import type { ScenarioName } from "../report/index.ts";
import type { benchSandbox } from "../tools/bench-sandbox.ts";
import { NODE, SERVER, waitFor } from "../tools/bench-sandbox.ts";
import { type NginxSidecar, findNginx, startNginxSidecar, writeNginxSidecarCerts } from "../tools/nginx-sidecar.ts";

export const BULK = path.join(REPO_ROOT, "bench", "tools", "bulk-tcp.ts");

/** The server pod's three ports: 1 KiB HTTP/1.1 answers, gRPC unary (1 KiB), and a bulk TCP sink. */
export const PORTS = { http: 8080, grpc: 8081, bulk: 9000 } as const;
/** Where a client pod's app dials its nginx sidecar for each server port, and where the server's nginx listens. */
const NGINX = {
  client: { http: 15001, grpc: 15002, bulk: 15003 },
  server: { http: 15443, grpc: 15444, bulk: 15445 },
} as const;

export const SCENARIOS: Array<{ name: ScenarioName; description: string }> = [
  { name: "direct", description: "no mesh: the client calls the server's Service, kube-proxy picks the pod" },
  { name: "ambient", description: "ambient L4: both pods captured by their node agents, HBONE (mTLS HTTP/2 CONNECT) between the nodes" },
  { name: "ambient-same-node", description: "ambient L4 with the server on the client's node: one agent, no TLS hop" },
  { name: "ambient-waypoint", description: "ambient with the Service bound to a waypoint (on the server's node) with an HTTPRoute: L7 between the agents" },
  {
    name: "sidecar",
    description: "Ambit sidecar mode: the proxy in each pod (in-pod capture, mTLS with the pod's identity, L7 at both ends) with the same HTTPRoute",
  },
  {
    name: "nginx-sidecar",
    description: "Debian nginx (stream module) in each pod doing mutual TLS 1.3: a C proxy baseline, L4 only, the app dials it on localhost",
  },
];

/** What a scenario's client dials for each load, and the proxy processes it measures. */
export interface ScenarioTarget {
  name: ScenarioName;
  namespace: string;
  /** The client pod's network namespace (the sandbox's `ip netns` name): the load runs there, as the pod's app. */
  clientNetns: string;
  targets: { http: string; grpc: string; bulk: string };
}

type Sandbox = ReturnType<typeof benchSandbox>;

interface PodJson {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName: string };
  status: { podIP?: string; conditions?: Array<{ type: string; status: string }>; containerStatuses?: Array<{ name: string; containerID?: string }> };
}

const pid = (p: PodJson, container?: string) =>
  Number((container ? p.status.containerStatuses?.find((c) => c.name === container) : p.status.containerStatuses?.[0])?.containerID?.replace("sandbox://", ""));

const namespaceOf: Record<ScenarioName, string> = {
  direct: "b-direct",
  ambient: "b-ambient",
  "ambient-same-node": "b-ambient",
  "ambient-waypoint": "b-waypoint",
  sidecar: "b-sidecar",
  "nginx-sidecar": "b-nginx",
};

const podSpec = (name: string, namespace: string, node: string, containers: Array<Record<string, unknown>>, labels: Record<string, string> = {}) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace, labels: { app: name, ...labels } },
  spec: { nodeName: node, containers },
});

/** The server pod: the three servers as containers of one pod (one app behind one proxy). */
const serverPod = (name: string, namespace: string, node: string) =>
  podSpec(name, namespace, node, [
    { name: "http", image: "bench", command: [NODE, SERVER], env: [{ name: "PORT", value: String(PORTS.http) }] },
    {
      name: "grpc",
      image: "bench",
      command: [NODE, SERVER],
      env: [
        { name: "PORT", value: String(PORTS.grpc) },
        { name: "PROTOCOL", value: "grpc" },
      ],
    },
    { name: "bulk", image: "bench", command: [NODE, BULK, "server", "--port", String(PORTS.bulk)] },
  ]);

const service = (name: string, namespace: string, labels: Record<string, string> = {}) => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace, labels },
  spec: {
    selector: { app: name },
    ports: [
      { name: "http", port: PORTS.http, targetPort: PORTS.http },
      // Declared, as a gRPC service is: proxies that read HTTP serve it as HTTP/2 from the first byte.
      { name: "grpc", port: PORTS.grpc, targetPort: PORTS.grpc, appProtocol: "kubernetes.io/h2c" },
      { name: "tcp-bulk", port: PORTS.bulk, targetPort: PORTS.bulk },
    ],
  },
});

/** A route as a minimal production one: a path match, a response header set, the Service as backend (the waypoint and the sidecar both run it). */
const route = (namespace: string) => ({
  apiVersion: "gateway.networking.k8s.io/v1",
  kind: "HTTPRoute",
  metadata: { name: "server", namespace },
  spec: {
    parentRefs: [{ group: "", kind: "Service", name: "server", port: PORTS.http }],
    rules: [
      {
        matches: [{ path: { type: "PathPrefix", value: "/" } }],
        filters: [{ type: "ResponseHeaderModifier", responseHeaderModifier: { set: [{ name: "x-ambit-bench", value: "routed" }] } }],
        backendRefs: [{ name: "server", port: PORTS.http }],
      },
    ],
  },
});

const namespace = (name: string, mode?: string) => ({
  apiVersion: "v1",
  kind: "Namespace",
  metadata: { name, labels: mode ? { "ambit.dev/dataplane-mode": mode } : {} },
});

/** Every scenario's objects; the waypoint's Gateway is created apart (its pod must land on node-2). */
export function scenarioObjects(): object[] {
  const client = (ns: string) => podSpec("client", ns, "node-1", [{ name: "app", image: "ambit.dev/toolbox" }]);
  return [
    namespace("b-direct"),
    namespace("b-ambient", "ambient"),
    namespace("b-waypoint", "ambient"),
    namespace("b-sidecar", "sidecar"),
    namespace("b-nginx"),
    ...["b-direct", "b-ambient", "b-waypoint", "b-sidecar", "b-nginx"].flatMap((ns) => [
      client(ns),
      serverPod("server", ns, "node-2"),
      service("server", ns, ns === "b-waypoint" ? { "ambit.dev/use-waypoint": "waypoint" } : {}),
    ]),
    serverPod("server-local", "b-ambient", "node-1"),
    service("server-local", "b-ambient"),
    route("b-waypoint"),
    route("b-sidecar"),
  ];
}

const ready = (p: PodJson) => p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** The running scenarios: their targets, the proxy processes of each, and the nginx sidecars this run started. */
export class Scenarios {
  readonly #sb: Sandbox;
  readonly #nginx: NginxSidecar[] = [];
  /** nginx-sidecar's two proxies (client pod, server pod), by role. */
  #nginxByRole: Partial<Record<"nginx-client" | "nginx-server", NginxSidecar>> = {};
  #dir = "";

  constructor(sb: Sandbox) {
    this.#sb = sb;
  }

  async #pods(ns: string, selector?: string): Promise<PodJson[]> {
    const args = ["get", "pods", "-n", ns, "-o", "json", ...(selector ? ["-l", selector] : [])];
    return (JSON.parse((await this.#sb.kubectl(args)).stdout).items as PodJson[]).filter((p) => !p.metadata.deletionTimestamp);
  }

  /** The sandbox's pods and their netns, read once every scenario pod is ready (bench pods do not change after). */
  #status: Promise<{ pods: Array<{ namespace: string; name: string; netns: string }> }> | undefined;

  async #netnsOf(ns: string, pod: string): Promise<string> {
    this.#status ??= this.#sb
      .ambit(["dev", "status", "-o", "json"])
      .then((r) => JSON.parse(r.stdout) as { pods: Array<{ namespace: string; name: string; netns: string }> })
      .catch((err: unknown) => {
        this.#status = undefined;
        throw err;
      });
    const found = (await this.#status).pods.find((p) => p.namespace === ns && p.name === pod);
    if (!found) throw new Error(`no netns known for pod ${ns}/${pod}`);
    return found.netns;
  }

  async #clusterIp(ns: string, name: string): Promise<string> {
    return (await this.#sb.kubectl(["get", "svc", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}"])).stdout;
  }

  /** Creates every scenario, the waypoint pinned to node-2, and the nginx sidecars; resolves once all are ready. */
  async setUp(progress: (line: string) => void): Promise<void> {
    const { kubectl } = this.#sb;
    progress("scenario namespaces and pods");
    await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: scenarioObjects() }));
    progress("waypoint (pinned to node-2)");
    await kubectl(["patch", "node", "node-1", "--type=merge", "-p", JSON.stringify({ spec: { unschedulable: true } })]);
    try {
      await kubectl(
        ["apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "gateway.networking.k8s.io/v1",
          kind: "Gateway",
          metadata: { name: "waypoint", namespace: "b-waypoint" },
          spec: { gatewayClassName: "ambit-waypoint", listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }] },
        }),
      );
      await waitFor(
        "the waypoint pod scheduled",
        async () => (await this.#pods("b-waypoint", "gateway.networking.k8s.io/gateway-name=waypoint")).some((p) => p.spec.nodeName),
        60_000,
      );
    } finally {
      await kubectl(["patch", "node", "node-1", "--type=merge", "-p", JSON.stringify({ spec: { unschedulable: false } })]);
    }
    progress("waiting for every scenario pod to be ready");
    await waitFor(
      "every scenario pod ready",
      async () => {
        const all = (await Promise.all(["b-direct", "b-ambient", "b-waypoint", "b-sidecar", "b-nginx"].map((ns) => this.#pods(ns)))).flat();
        return all.length === 12 && all.every(ready);
      },
      180_000,
    );
    // Connection-per-request loads fill the client's ephemeral ports with TIME_WAIT (../shared/facts.md, traps):
    // reuse them in the bench pods' own netns (created by the sandbox; nothing outside them changes).
    for (const ns of ["b-direct", "b-ambient", "b-waypoint", "b-sidecar", "b-nginx"])
      for (const p of await this.#pods(ns)) {
        if (p.metadata.labels?.["gateway.networking.k8s.io/gateway-name"]) continue;
        await execa("ip", ["netns", "exec", await this.#netnsOf(ns, p.metadata.name), "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"]);
      }
    progress("nginx sidecars (client and server pods of b-nginx)");
    await this.#startNginx();
  }

  async #startNginx(): Promise<void> {
    const nginx = findNginx();
    this.#dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-bench-nginx-"));
    const certs = await writeNginxSidecarCerts(path.join(this.#dir, "certs"), { namespace: "b-nginx" });
    const server = (await this.#pods("b-nginx", "app=server"))[0]!;
    const serverIp = server.status.podIP!;
    const pair = (role: "client" | "server", key: keyof typeof PORTS) =>
      role === "client"
        ? { listen: `127.0.0.1:${NGINX.client[key]}`, upstream: `${serverIp}:${NGINX.server[key]}` }
        : { listen: String(NGINX.server[key]), upstream: `127.0.0.1:${PORTS[key]}` };
    for (const role of ["server", "client"] as const) {
      const leaf = role === "client" ? certs.client : certs.server;
      const prefix = path.join(this.#dir, role);
      await fs.mkdir(prefix, { recursive: true });
      const started = await startNginxSidecar(
        {
          role,
          ...pair(role, "http"),
          extra: [pair(role, "grpc"), pair(role, "bulk")],
          certFile: leaf.certFile,
          keyFile: leaf.keyFile,
          caFile: certs.caFile,
          ...(role === "client" ? { expectedPeerSan: certs.server.dnsName } : {}),
          prefix,
          loadModule: nginx.loadModule,
          rlimitNofile: 65536,
          workerConnections: 16384,
        },
        { netns: await this.#netnsOf("b-nginx", role === "client" ? "client" : "server"), nginx },
      );
      this.#nginx.push(started);
      this.#nginxByRole[role === "client" ? "nginx-client" : "nginx-server"] = started;
    }
  }

  readonly #targets = new Map<ScenarioName, Promise<ScenarioTarget>>();

  /** What the scenario's client dials (looked up once: pods and Services do not change during a run). */
  target(name: ScenarioName): Promise<ScenarioTarget> {
    let t = this.#targets.get(name);
    if (!t) {
      t = this.#lookUpTarget(name);
      this.#targets.set(name, t);
      t.catch(() => this.#targets.delete(name));
    }
    return t;
  }

  async #lookUpTarget(name: ScenarioName): Promise<ScenarioTarget> {
    const ns = namespaceOf[name];
    const clientNetns = await this.#netnsOf(ns, "client");
    if (name === "nginx-sidecar")
      return {
        name,
        namespace: ns,
        clientNetns,
        targets: { http: `127.0.0.1:${NGINX.client.http}`, grpc: `127.0.0.1:${NGINX.client.grpc}`, bulk: `127.0.0.1:${NGINX.client.bulk}` },
      };
    const ip = await this.#clusterIp(ns, name === "ambient-same-node" ? "server-local" : "server");
    return { name, namespace: ns, clientNetns, targets: { http: `${ip}:${PORTS.http}`, grpc: `${ip}:${PORTS.grpc}`, bulk: `${ip}:${PORTS.bulk}` } };
  }

  /** The proxy processes a scenario's traffic crosses, by role, with the PIDs to measure (nginx: its worker). */
  async proxies(name: ScenarioName): Promise<Partial<Record<string, number[]>>> {
    const agents = await this.#sb.agentPids();
    switch (name) {
      case "direct":
        return {};
      case "ambient":
        return { "agent-client": [agents["node-1"]!], "agent-server": [agents["node-2"]!] };
      case "ambient-same-node":
        return { "agent-client": [agents["node-1"]!] };
      case "ambient-waypoint": {
        const wp = (await this.#pods("b-waypoint", "gateway.networking.k8s.io/gateway-name=waypoint"))[0]!;
        return { "agent-client": [agents["node-1"]!], "agent-server": [agents["node-2"]!], waypoint: [pid(wp)] };
      }
      case "sidecar": {
        const pods = await this.#pods("b-sidecar");
        const of = (app: string) =>
          pid(
            pods.find((p) => p.metadata.labels?.app === app)!,
            "ambit-proxy",
          );
        return { "sidecar-client": [of("client")], "sidecar-server": [of("server")] };
      }
      case "nginx-sidecar": {
        const out: Partial<Record<string, number[]>> = {};
        for (const [role, n] of Object.entries(this.#nginxByRole)) out[role] = await n.workerPids();
        return out;
      }
    }
  }

  /** Every process of a scenario's proxies, for memory: nginx's master as well as its worker. */
  async memoryPids(name: ScenarioName): Promise<Partial<Record<string, number[]>>> {
    const cpu = await this.proxies(name);
    if (name !== "nginx-sidecar") return cpu;
    const out: Partial<Record<string, number[]>> = {};
    for (const [role, n] of Object.entries(this.#nginxByRole)) out[role] = [n.pid, ...(await n.workerPids())];
    return out;
  }

  async tearDown(): Promise<void> {
    await Promise.all(this.#nginx.map((n) => n.stop().catch(() => {})));
    if (this.#dir) await fs.rm(this.#dir, { recursive: true, force: true });
  }
}
