// The waypoint's data path: each HBONE CONNECT stream served as HTTP (L7 policy, routing, resilience) or carried at L4.
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { Duplex, Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import type { Logger } from "pino";
import type { L7PolicyStore } from "../../agent/authorization/index.ts";
import type { HboneConnectionPool } from "../../agent/hbone/index.ts";
import type { Credentials, SpiffeId } from "../../agent/identity/index.ts";
import { formatSpiffeId } from "../../agent/identity/index.ts";
import { relay } from "../../agent/relay/index.ts";
import type { ServiceEntry, Workload, WorkloadIndex } from "../../agent/state/index.ts";
import type { BackendTarget } from "../../contract/routes.ts";
import { type WaypointRef, waypointKey } from "../../contract/waypoint.ts";
import { applyHeaderModifier, type RoutePlan, type RoutingTable } from "../routing/index.ts";
import { WaypointError, WaypointErrorCode } from "./errors.ts";
import { forward } from "./forward.ts";
import { type ConnectStream, WaypointHboneListener } from "./hbone-listener.ts";
import { detectProtocol } from "./sniff.ts";
import { type Endpoint, UpstreamPool, type UpstreamResponse, asSocket, forwardableHeaders } from "./upstream.ts";

export interface WaypointProxyOptions {
  /** The waypoint pod's own certificate (its SPIFFE identity, from the controller's CA) and the roots clients chain to. */
  credentials: Credentials;
  trustBundlePem: string;
  waypoint: WaypointRef;
  identity: SpiffeId;
  /** Services by VIP and name, workloads by IP: the waypoint's config view. */
  index: WorkloadIndex;
  routes: RoutingTable;
  /** Asked on every request, so a policy change applies to the next request of a live connection. */
  policies: L7PolicyStore;
  /** Upstream HBONE, presenting `credentials`; its `connect` option decides how endpoints' agents are dialled. */
  hbone: HboneConnectionPool;
  log: Logger;
  random?: () => number;
  /** How long a client may stay silent before its stream is taken for a server-first protocol and carried at L4. */
  detectTimeoutMs?: number;
}

/** What a CONNECT stream addressed: a Service port (by its VIP) or one workload. */
type Addressed = { kind: "service"; service: ServiceEntry; port: number } | { kind: "workload"; workload: Workload; port: number };

interface StreamContext {
  connect: ConnectStream;
  addressed: Addressed;
}

/** One HTTP request, whichever version carried it. */
interface Call {
  version: "http1" | "http2";
  method: string;
  path: string;
  authority: string;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  respond(status: number, headers: Record<string, string | string[]>, body: string | UpstreamResponse): void;
}

/** Envoy's bodies, so clients and scripts written against Istio read the same. */
const NO_HEALTHY_UPSTREAM = "no healthy upstream";
/** A retried request's body is kept in memory; a larger one is refused rather than sent once without its retries. */
const MAX_RETRY_BODY = 1024 * 1024;

export class WaypointProxy {
  readonly #opts: Required<Omit<WaypointProxyOptions, "routes">>;
  #routes: RoutingTable;
  readonly #listener: WaypointHboneListener;
  readonly #upstream: UpstreamPool;
  readonly #http1 = http.createServer((req, res) => this.#onHttp1(req, res));
  /** The CONNECT stream each HTTP/1.1 connection arrived on (http.Server hands requests their socket, the stream). */
  readonly #contexts = new WeakMap<object, StreamContext>();
  readonly #me: string;

  constructor(opts: WaypointProxyOptions) {
    this.#opts = { random: Math.random, detectTimeoutMs: 1_000, ...opts };
    this.#routes = opts.routes;
    this.#me = waypointKey(opts.waypoint);
    this.#upstream = new UpstreamPool(opts.hbone, opts.identity);
    this.#listener = new WaypointHboneListener({
      credentials: opts.credentials,
      trustBundlePem: opts.trustBundlePem,
      log: opts.log,
      accept: (target) => {
        const addressed = this.#resolve(target);
        return addressed instanceof WaypointError ? addressed.message : undefined;
      },
      onStream: (connect) => void this.#onStream(connect),
    });
  }

  /** A new config version's routes; requests already being forwarded keep the plan they got. */
  setRoutes(routes: RoutingTable): void {
    this.#routes = routes;
  }

  /** Serves one TCP connection accepted on the waypoint's HBONE port. */
  acceptConnection(socket: net.Socket): void {
    this.#listener.acceptConnection(socket);
  }

  /** A renewed certificate or new roots: new client connections get them; upstream asks its pool per connection. */
  updateCredentials(credentials: Credentials, trustBundlePem: string): void {
    this.#listener.updateCredentials(credentials, trustBundlePem);
  }

  /** Open client HBONE connections. */
  get connections(): number {
    return this.#listener.connections;
  }

  /** GOAWAY to every client; resolves with how many connections were cut at the deadline. Then close(). */
  async drain(deadlineMs: number): Promise<number> {
    const cut = await this.#listener.drain(deadlineMs);
    this.close();
    return cut;
  }

  close(): void {
    this.#listener.close();
    this.#upstream.close();
    this.#http1.close();
  }

  /** Only what is bound to this waypoint: the waypoint is no open proxy into the mesh for any certificate holder. */
  #resolve(target: { ip: string; port: number }): Addressed | WaypointError {
    const { index } = this.#opts;
    const service = index.serviceByIp(target.ip);
    const unknown = (why: string) => new WaypointError(WaypointErrorCode.unknownDestination, 400, `${target.ip}:${target.port} ${why}`);
    if (service) {
      if (!service.ports.has(target.port)) return unknown(`is not a port of service ${service.namespace}/${service.name}`);
      if (!service.waypoint || waypointKey(service.waypoint) !== this.#me)
        return unknown(`is service ${service.namespace}/${service.name}, not bound to waypoint ${this.#me}`);
      return { kind: "service", service, port: target.port };
    }
    const workload = index.workloadByIp(target.ip);
    if (workload?.waypoint && waypointKey(workload.waypoint) === this.#me) return { kind: "workload", workload, port: target.port };
    return unknown(`is neither a service nor a workload bound to waypoint ${this.#me}`);
  }

  async #onStream(connect: ConnectStream): Promise<void> {
    const addressed = this.#resolve(connect.target);
    if (addressed instanceof WaypointError) return void connect.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    const context: StreamContext = { connect, addressed };
    const protocol = await detectProtocol(connect.stream, this.#opts.detectTimeoutMs);
    if (protocol === "tcp") return this.#carryL4(context);
    const socket = asSocket(connect.stream);
    if (protocol === "http1") {
      this.#contexts.set(socket, context);
      this.#http1.emit("connection", socket);
      return;
    }
    const session = http2.performServerHandshake(socket);
    session.on("error", () => session.destroy());
    session.on("stream", (stream, headers) => {
      stream.on("error", () => {});
      void this.#handle(context, http2Call(stream, headers, connect.target));
    });
  }

  #onHttp1(req: http.IncomingMessage, res: http.ServerResponse): void {
    const context = this.#contexts.get(req.socket);
    if (!context) return void res.destroy();
    const call: Call = {
      version: "http1",
      method: req.method ?? "GET",
      path: req.url ?? "/",
      authority: req.headers.host ?? `${context.connect.target.ip}:${context.connect.target.port}`,
      headers: req.headers,
      body: req,
      respond: (status, headers, body) => {
        res.writeHead(status, headers);
        if (typeof body === "string") res.end(body);
        else body.body.pipe(res);
      },
    };
    void this.#handle(context, call);
  }

  /** Not HTTP: bytes to the addressed Service's endpoint (or pod) through its agent, as the source agent would have sent them. */
  async #carryL4(context: StreamContext): Promise<void> {
    const { connect } = context;
    const endpoint = this.#pickAddressed(context.addressed);
    const line = { source: formatSpiffeId(connect.source), destination: `${connect.target.ip}:${connect.target.port}`, protocol: "tcp" };
    if (endpoint instanceof WaypointError) {
      this.#opts.log.info({ ...line, code: endpoint.code, error: endpoint.message }, "connection");
      return void connect.stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    }
    let upstream: Duplex;
    try {
      upstream = await this.#upstream.openStream(endpoint);
    } catch (err) {
      this.#opts.log.info(
        { ...line, upstream: `${endpoint.ip}:${endpoint.port}`, code: WaypointErrorCode.upstream, error: (err as Error).message },
        "connection",
      );
      return void connect.stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    }
    relay(connect.stream, upstream, (counts) =>
      this.#opts.log.info({ ...line, upstream: `${endpoint.ip}:${endpoint.port}`, bytesReceived: counts.aToB, bytesSent: counts.bToA }, "connection"),
    );
  }

  async #handle(context: StreamContext, call: Call): Promise<void> {
    const started = performance.now();
    const { connect, addressed } = context;
    const service = addressed.kind === "service" ? { namespace: addressed.service.namespace, name: addressed.service.name } : undefined;
    const line: Record<string, unknown> = {
      method: call.method,
      path: call.path,
      protocol: call.version,
      source: formatSpiffeId(connect.source),
      destination: `${connect.target.ip}:${connect.target.port}`,
    };
    const finish = (status: number, extra: Record<string, unknown> = {}) =>
      this.#opts.log.info({ ...line, status, durationMs: Math.round((performance.now() - started) * 10) / 10, ...extra }, "request");

    const decision = this.#opts.policies.check({
      waypoint: this.#opts.waypoint,
      ...(service ? { service } : {}),
      source: connect.source,
      ...(connect.sourceAddress ? { sourceIp: connect.sourceAddress } : {}),
      destinationIp: connect.target.ip,
      destinationPort: connect.target.port,
      method: call.method,
      path: call.path,
      host: call.authority,
      headers: call.headers,
    });
    line.policy = decision.reason;
    if (!decision.allowed && decision.response) {
      call.body.resume();
      call.respond(decision.response.status, { ...decision.response.headers }, decision.response.body);
      return finish(decision.response.status);
    }

    const headers = forwardableHeaders(call.headers);
    const plan: RoutePlan = this.#routes.plan(
      {
        destination: service ? { namespace: service.namespace, service: service.name, port: addressed.port } : undefined,
        clientNamespace: connect.source.namespace,
        scheme: "http",
        method: call.method,
        path: call.path,
        authority: call.authority,
        headers,
      },
      this.#opts.random,
    );
    if ("route" in plan && plan.route)
      line.route = `${plan.route.kind} ${plan.route.namespace}/${plan.route.name} rule ${plan.route.ruleName ?? plan.route.ruleIndex}`;
    if (plan.action === "respond") {
      call.body.resume();
      call.respond(plan.status, {}, "");
      return finish(plan.status, { reason: plan.reason });
    }
    if (plan.action === "redirect") {
      call.body.resume();
      const responseHeaders = plan.responseModifiers.reduce(applyHeaderModifier, { location: plan.location });
      call.respond(plan.status, responseHeaders, "");
      return finish(plan.status);
    }

    const forwarding =
      plan.action === "forward"
        ? { pick: () => this.#pickBackend(plan.backend), request: plan.request, retry: plan.retry, timeouts: plan.timeouts, modifiers: plan.responseModifiers }
        : {
            pick: () => this.#pickAddressed(addressed),
            request: { method: call.method, path: call.path, authority: call.authority, headers },
            retry: undefined,
            timeouts: undefined,
            modifiers: [],
          };
    let body: Buffer | Readable = call.body;
    if (forwarding.retry) {
      body = await buffer(call.body);
      if (body.length > MAX_RETRY_BODY) {
        call.respond(413, {}, "");
        return finish(413);
      }
    }
    const result = await forward({
      upstream: this.#upstream,
      pick: forwarding.pick,
      version: call.version,
      request: { ...forwarding.request, headers: forwardableHeaders(forwarding.request.headers), body },
      retry: forwarding.retry,
      timeouts: forwarding.timeouts,
      random: this.#opts.random,
    });
    const upstream = result.endpoint ? `${result.endpoint.ip}:${result.endpoint.port}` : undefined;
    if ("error" in result.outcome) {
      const { error } = result.outcome;
      call.respond(error.status, { "content-type": "text/plain" }, error.code === WaypointErrorCode.timeout ? "upstream request timeout" : NO_HEALTHY_UPSTREAM);
      return finish(error.status, { upstream, attempts: result.attempts, code: error.code, error: error.message });
    }
    const { response } = result.outcome;
    response.headers = forwarding.modifiers.reduce(applyHeaderModifier, response.headers);
    call.respond(response.status, response.headers, response);
    finish(response.status, { upstream, attempts: result.attempts });
  }

  /** An endpoint of the addressed Service port (ready, at random, as kube-proxy picks), or the addressed pod itself. */
  #pickAddressed(addressed: Addressed): Endpoint | WaypointError {
    if (addressed.kind === "workload") return this.#endpointOf(addressed.workload, addressed.port);
    return this.#pickBackend({ namespace: addressed.service.namespace, service: addressed.service.name, port: addressed.port });
  }

  #pickBackend(backend: BackendTarget): Endpoint | WaypointError {
    const name = `${backend.namespace}/${backend.service}:${backend.port}`;
    const ready = (this.#opts.index.serviceByName(backend.namespace, backend.service)?.ports.get(backend.port) ?? []).filter((e) => e.ready);
    if (ready.length === 0) return new WaypointError(WaypointErrorCode.noEndpoint, 503, `${name} has no ready endpoint`);
    const pick = ready[Math.floor(this.#opts.random() * ready.length)]!;
    const workload = this.#opts.index.workloadByIp(pick.ip);
    if (!workload) return new WaypointError(WaypointErrorCode.noEndpoint, 503, `endpoint ${pick.ip} of ${name} is not a known pod`);
    return this.#endpointOf(workload, pick.port);
  }

  /** The pod must be captured: its agent terminates HBONE and proves the pod's identity, which the waypoint expects. */
  #endpointOf(workload: Workload, port: number): Endpoint | WaypointError {
    if (!workload.captured)
      return new WaypointError(
        WaypointErrorCode.noEndpoint,
        503,
        `pod ${workload.namespace}/${workload.name} is not captured, so no agent can take HBONE for it`,
      );
    const identity = { trustDomain: this.#opts.identity.trustDomain, namespace: workload.namespace, serviceAccount: workload.serviceAccount };
    return { ip: workload.ip, port, identity };
  }
}

/** An HTTP/2 request on the core API; gRPC's trailers are passed on from the backend's stream. */
function http2Call(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, target: { ip: string; port: number }): Call {
  return {
    version: "http2",
    method: String(headers[":method"] ?? "GET"),
    path: String(headers[":path"] ?? "/"),
    authority: String(headers[":authority"] ?? headers.host ?? `${target.ip}:${target.port}`),
    headers,
    body: stream,
    respond: (status, responseHeaders, body) => {
      if (stream.destroyed) return;
      if (typeof body === "string") {
        stream.respond({ ":status": status, ...responseHeaders }, { endStream: body === "" });
        if (body !== "") stream.end(body);
        return;
      }
      let trailers: http2.OutgoingHttpHeaders = {};
      body.body.once("trailers", (t: http2.IncomingHttpHeaders) => (trailers = forwardableHeaders(t)));
      stream.respond({ ":status": status, ...responseHeaders }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      body.body.pipe(stream);
    },
  };
}
