// An in-process waypoint for integration tests: real mTLS on loopback, test HBONE servers standing for each endpoint's node agent, and clients as source agents open them.
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { L7PolicyStore } from "../../agent/authorization/index.ts";
import { HboneConnectionPool, HboneServer } from "../../agent/hbone/index.ts";
import type { SpiffeId } from "../../agent/identity/index.ts";
import type { WorkloadIndex } from "../../agent/state/index.ts";
import type { ResiliencePolicies } from "../../waypoint/resilience/index.ts";
import type { RoutingTable } from "../../waypoint/routing/index.ts";
import { type WaypointMetrics, WaypointProxy, asSocket } from "../../waypoint/proxy/index.ts";
import { TestCa } from "./test-ca.ts";

export const demoId = (sa: string): SpiffeId => ({ trustDomain: "cluster.local", namespace: "demo", serviceAccount: sa });
/** The client every test sends from, and the waypoint (demo/waypoint) it sends to. */
export const ORDERS = demoId("orders");
export const WAYPOINT_REF = { namespace: "demo", name: "waypoint" };
export const WAYPOINT = demoId("waypoint");

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One waypoint and its surroundings; `close()` takes down everything it started, last first. */
export class WaypointHarness {
  readonly ca = TestCa.create();
  /** Endpoint pod IP -> loopback port of the test HBONE server standing for its node agent. */
  readonly agentPorts = new Map<string, number>();
  readonly #cleanups: Array<() => void> = [];
  readonly #log: Logger;
  #proxy: WaypointProxy | undefined;
  #waypointPort = 0;
  #client: HboneConnectionPool | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  get proxy(): WaypointProxy {
    if (!this.#proxy) throw new Error("start() the waypoint first");
    return this.#proxy;
  }

  /** Listens on a loopback port of its own, closed with the harness. */
  async listen(server: net.Server): Promise<number> {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    this.#cleanups.push(() => server.close());
    return (server.address() as net.AddressInfo).port;
  }

  /**
   * An HBONE server in front of `appPort` for the pod (its service account is its name), as the pod's node agent:
   * it presents the pod's certificate and hands each stream to the app. `checkDestination` sees what each CONNECT asked for.
   */
  async agentFor(pod: { name: string; ip: string }, appPort: number, checkDestination: (dst: { ip: string; port: number }) => void = () => {}) {
    const agent = new HboneServer({
      trustBundlePem: this.ca.rootPem,
      authorize: () => ({ allow: true }),
      connectUpstream: (dst) =>
        new Promise((resolve, reject) => {
          checkDestination(dst);
          const s = net.connect({ host: "127.0.0.1", port: appPort });
          s.once("connect", () => resolve(s)).once("error", reject);
        }),
      log: this.#log,
    });
    const credentials = this.ca.issue(demoId(pod.name));
    this.agentPorts.set(pod.ip, await this.listen(net.createServer((s) => agent.acceptConnection(s, credentials))));
    this.#cleanups.push(() => agent.close());
  }

  /** The waypoint itself, dialling every endpoint's agent on loopback (in a cluster: podIP:15008). */
  async start(opts: {
    index: WorkloadIndex;
    routes: RoutingTable;
    policies: L7PolicyStore;
    accessLog: Logger;
    metrics?: WaypointMetrics;
    resilience?: ResiliencePolicies;
    maxActiveRequests?: number;
  }): Promise<void> {
    const credentials = this.ca.issue(WAYPOINT);
    const upstream = new HboneConnectionPool({
      getClientCredentials: () => credentials,
      trustBundlePem: this.ca.rootPem,
      connect: (host) =>
        new Promise((resolve, reject) => {
          const s = net.connect({ host: "127.0.0.1", port: this.agentPorts.get(host)! });
          s.once("connect", () => resolve(s)).once("error", reject);
        }),
    });
    const proxy = new WaypointProxy({
      credentials,
      trustBundlePem: this.ca.rootPem,
      waypoint: WAYPOINT_REF,
      identity: WAYPOINT,
      index: opts.index,
      routes: opts.routes,
      policies: opts.policies,
      hbone: upstream,
      log: opts.accessLog,
      detectTimeoutMs: 200,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...(opts.resilience ? { resilience: opts.resilience } : {}),
      ...(opts.maxActiveRequests ? { maxActiveRequests: opts.maxActiveRequests } : {}),
    });
    this.#proxy = proxy;
    this.#waypointPort = await this.listen(net.createServer((s) => proxy.acceptConnection(s)));
    const client = new HboneConnectionPool({ getClientCredentials: () => this.ca.issue(ORDERS), trustBundlePem: this.ca.rootPem });
    this.#client = client;
    this.#cleanups.push(() => {
      proxy.close();
      upstream.close();
      client.close();
    });
  }

  /** A CONNECT stream from demo/orders to the waypoint, addressed to `vip`:`port`, as the source agent opens it. */
  connect(vip: string, port = 80): Promise<Duplex> {
    if (!this.#client) throw new Error("start() the waypoint first");
    return this.#client.openStream({
      source: ORDERS,
      destination: { ip: vip, port },
      dial: { host: "127.0.0.1", port: this.#waypointPort },
      expectedIdentity: WAYPOINT,
    });
  }

  /** An HTTP/1.1 client with one keep-alive connection, a CONNECT stream to the waypoint for `vip`:80; counts the connections it opened. */
  clientAgent(vip: string): http.Agent & { opened: number } {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 }) as http.Agent & { opened: number };
    agent.opened = 0;
    agent.createConnection = (_o, callback) => {
      agent.opened++;
      this.connect(vip).then(
        (s) => callback?.(null, asSocket(s)),
        (err: Error) => callback?.(err, undefined as unknown as net.Socket),
      );
      return undefined as unknown as net.Socket;
    };
    this.#cleanups.push(() => agent.destroy());
    return agent;
  }

  /** Runs `cleanup` when the harness closes (before what was started earlier). */
  defer(cleanup: () => void): void {
    this.#cleanups.push(cleanup);
  }

  close(): void {
    for (const c of this.#cleanups.splice(0).reverse()) c();
  }
}

/** One request on `agent`, whole: status, headers and body as the client got them. */
export function request(agent: http.Agent, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: "reviews.demo", path, method: opts.method ?? "GET", headers: opts.headers ?? {} }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}
