// The waypoint's data path: each HBONE CONNECT stream served as HTTP (L7 policy, routing, resilience) or carried at L4.
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { type Duplex, type Readable, Transform, pipeline } from "node:stream";
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
import { type CircuitBreaker, type ResiliencePolicies, type ServiceResilience } from "../resilience/index.ts";
import { applyHeaderModifier, type RoutePlan, type RoutingTable } from "../routing/index.ts";
import { WaypointError, WaypointErrorCode } from "./errors.ts";
import { ResponseFlags } from "./flags.ts";
import { forward } from "./forward.ts";
import { type AcceptTarget, type ConnectStream, WaypointHboneListener } from "./hbone-listener.ts";
import { type RequestLabels, WaypointMetrics } from "./metrics.ts";
import { portProtocol } from "../../contract/app-protocol.ts";
import { maxActiveRequests } from "../../contract/proxy-heap.ts";
import { detectProtocol } from "./sniff.ts";
import { type RequestDestination, destinationLabels, grpcStatus, requestProtocol, sourceLabels, streamSource } from "./telemetry.ts";
import { type TraceRandom, cryptoRandom, traceHop, withTrace } from "./tracing.ts";
import {
  type Endpoint,
  type OpenUpstream,
  UpstreamPool,
  type UpstreamRequest,
  type UpstreamResponse,
  asSocket,
  forwardableHeaders,
  hboneOpener,
} from "./upstream.ts";

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
  /** BackendTrafficPolicies of this config version (faults, circuit breaking, outlier detection, load balancing, retry budget). */
  resilience?: ResiliencePolicies;
  /** How long a client may stay silent before its stream is taken for a server-first protocol and carried at L4. */
  detectTimeoutMs?: number;
  /** Where requests are counted (Istio's request metrics); a private instance when absent. */
  metrics?: WaypointMetrics;
  /** New trace, span and request ids. */
  traceRandom?: TraceRandom;
  /** What this proxy is: the waypoint (the default) or one end of a sidecar, which serves the same engine differently. */
  role?: ProxyRole;
  /** Requests served at once; past it a request is answered 503 (flag OM). Default: what the heap limit allows (contract/proxy-heap.ts). */
  maxActiveRequests?: number;
}

/**
 * A sidecar runs this engine at both ends of its pod: as the client's (`source`: what the app dialled, any Service or
 * pod of the mesh, with routes) and as the server's (`destination`: its own pod only, the app on localhost).
 */
export interface ProxyRole {
  /** Istio's `reporter` label of the request metrics. */
  reporter: "waypoint" | "source" | "destination";
  /** What a stream addressed, or why it is refused; the waypoint's default accepts only what is bound to it. */
  resolve?(target: { ip: string; port: number }): Addressed | WaypointError;
  /** How a request reaches a pod; the waypoint's default: HBONE to a captured pod, which must prove its identity. */
  endpointOf?(workload: Workload, port: number): Endpoint | WaypointError;
  /** How an endpoint is dialled; the default is HBONE from `identity` (the waypoint's, the sidecar client's). */
  openUpstream?: OpenUpstream;
  /** Istio's `connection_security_policy` for the request metrics. */
  connectionSecurity?(connect: ConnectStream): "mutual_tls" | "none" | "unknown";
  /** Whether an HBONE stream is accepted at all (before 200); the default accepts what `resolve` does. */
  admit?: AcceptTarget;
  /** Whether L7 authorization runs per request (the waypoint's targetRef'd policies); a sidecar checks L4 policy per connection instead. */
  l7Authorization?: boolean;
}

/** What a CONNECT stream addressed: a Service port (by its VIP) or one workload. */
export type Addressed = { kind: "service"; service: ServiceEntry; port: number } | { kind: "workload"; workload: Workload; port: number };

interface StreamContext {
  connect: ConnectStream;
  addressed: Addressed;
  /** The source's request labels, looked up once per stream: every request on it comes from the same pod. */
  source: RequestLabels;
}

/** How sending a response ended, for the flags, the status reported and the response size. */
interface Delivered {
  /** Body bytes sent to the client. */
  bytes: number;
  /** False when the client went away before the response headers: Envoy then reports status 0. */
  headersSent: boolean;
  /** The client went away before the response was complete (DC). */
  downstreamClosed: boolean;
  /** The backend's response ended before its body did (UC); the client's response is reset. */
  upstreamClosed: boolean;
  /** The backend's gRPC status, from its trailers (or headers, for a trailers-only response). */
  grpcStatus: string | undefined;
}

/** One HTTP request, whichever version carried it. */
interface Call {
  version: "http1" | "http2";
  method: string;
  path: string;
  authority: string;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  /** Aborted when the client goes away before its response is complete. */
  gone: AbortSignal;
  /** Sends the response; resolves once it was delivered in full or the exchange ended early. */
  respond(status: number, headers: Record<string, string | string[]>, body: string | UpstreamResponse): Promise<Delivered>;
}

/** HTTP/2 requests one client connection may have in flight at the proxy (SETTINGS_MAX_CONCURRENT_STREAMS; gRPC's usual 100). */
export const MAX_STREAMS_PER_CLIENT_CONNECTION = 100;

/** Envoy's bodies, so clients and scripts written against Istio read the same. */
const NO_HEALTHY_UPSTREAM = "no healthy upstream";
/** A retried request's body is kept in memory; a larger one is refused rather than sent once without its retries. */
const MAX_RETRY_BODY = 1024 * 1024;

export class WaypointProxy {
  readonly #opts: Required<Omit<WaypointProxyOptions, "routes" | "resilience" | "role">> & Pick<WaypointProxyOptions, "resilience">;
  /** Requests being served now, against `maxActiveRequests`. */
  #activeRequests = 0;
  readonly #metrics: WaypointMetrics;
  #routes: RoutingTable;
  readonly #listener: WaypointHboneListener;
  readonly #upstream: UpstreamPool;
  // Envoy's idle timeout (1 h), not Node's 5 s: a client's idle keep-alive connection lasts as long as it would to
  // the app itself, and a client reusing one just after 5 s does not race the proxy closing it.
  readonly #http1 = http.createServer({ keepAliveTimeout: CLIENT_IDLE_TIMEOUT_MS }, (req, res) => this.#onHttp1(req, res));
  /** The CONNECT stream each HTTP/1.1 connection arrived on (http.Server hands requests their socket, the stream). */
  readonly #contexts = new WeakMap<object, StreamContext>();
  readonly #me: string;
  /** Requests waiting for a connection slot of a circuit breaker, oldest first. */
  readonly #pendingByBreaker = new WeakMap<CircuitBreaker, Array<() => void>>();
  readonly #role: Required<Omit<ProxyRole, "openUpstream" | "admit">>;
  readonly #admitStream: AcceptTarget;

  constructor(opts: WaypointProxyOptions) {
    this.#opts = {
      random: Math.random,
      detectTimeoutMs: 1_000,
      traceRandom: cryptoRandom,
      maxActiveRequests: maxActiveRequests(),
      ...opts,
      metrics: opts.metrics ?? new WaypointMetrics(),
    };
    this.#metrics = this.#opts.metrics;
    this.#routes = opts.routes;
    this.#me = waypointKey(opts.waypoint);
    const role = opts.role ?? { reporter: "waypoint" };
    this.#role = {
      reporter: role.reporter,
      resolve: role.resolve ?? ((target) => this.#resolveBound(target)),
      endpointOf: role.endpointOf ?? ((workload, port) => this.#capturedEndpoint(workload, port)),
      connectionSecurity: role.connectionSecurity ?? (() => "mutual_tls"),
      l7Authorization: role.l7Authorization ?? true,
    };
    this.#upstream = new UpstreamPool(role.openUpstream ?? hboneOpener(opts.hbone, opts.identity));
    this.#admitStream =
      role.admit ??
      ((target) => {
        const addressed = this.#role.resolve(target);
        return addressed instanceof WaypointError ? addressed.message : undefined;
      });
    this.#listener = new WaypointHboneListener({
      credentials: opts.credentials,
      trustBundlePem: opts.trustBundlePem,
      log: opts.log,
      accept: this.#admitStream,
      onStream: (connect) => this.serveStream(connect),
    });
  }

  /**
   * Circuit breaking as Envoy's HTTP connection pool: every request takes a parallel-request slot; an HTTP/1.1 request
   * also needs a connection slot (one request per connection) and waits for one as a pending request. Past the
   * parallel or pending limit it overflows (503, UO). Resolves with the release, "overflow", or "gone".
   */
  async #admit(breaker: CircuitBreaker, version: "http1" | "http2", gone: AbortSignal): Promise<(() => void) | "overflow" | "gone"> {
    const request = breaker.tryAcquire("request");
    if (!request.admitted) return "overflow";
    if (version === "http2") return request.release;
    let connection = breaker.tryAcquire("connection");
    if (!connection.admitted) {
      const pending = breaker.tryAcquire("pending");
      if (!pending.admitted) {
        request.release();
        return "overflow";
      }
      const waiters = this.#pendingByBreaker.get(breaker) ?? [];
      this.#pendingByBreaker.set(breaker, waiters);
      while (!connection.admitted && !gone.aborted) {
        // A waiter whose client leaves takes itself out of the queue: a freed slot must wake one that still waits.
        await new Promise<void>((resolve) => {
          const wake = () => {
            gone.removeEventListener("abort", leave);
            resolve();
          };
          const leave = () => {
            waiters.splice(waiters.indexOf(wake), 1);
            resolve();
          };
          waiters.push(wake);
          gone.addEventListener("abort", leave, { once: true });
        });
        connection = breaker.tryAcquire("connection");
      }
      pending.release();
      if (!connection.admitted) {
        request.release();
        return "gone";
      }
    }
    const slot = connection;
    return () => {
      slot.release();
      request.release();
      // The longest-waiting pending request takes the freed connection.
      this.#pendingByBreaker.get(breaker)?.shift()?.();
    };
  }

  /** The policies of a new config version; breakers, ejections and budgets of unchanged policies carry on. */
  setResilience(policies: ResiliencePolicies): void {
    this.#opts.resilience = policies;
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

  /**
   * Admits every stream being served again (the role's `admit`, else what `resolve` accepts) and closes those now
   * refused: a sidecar calls it when its pod's policies change. Returns how many were closed.
   */
  recheckStreams(): number {
    return this.#listener.recheck(this.#admitStream);
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

  /**
   * Serves one stream already accepted: for a sidecar, a CONNECT stream its own HBONE server checked (inbound), or a
   * socket its pod's app opened (outbound). What it addressed is resolved again by the role; a refusal resets it.
   */
  serveStream(connect: ConnectStream): void {
    void this.#onStream(connect);
  }

  /** Only what is bound to this waypoint: the waypoint is no open proxy into the mesh for any certificate holder. */
  #resolveBound(target: { ip: string; port: number }): Addressed | WaypointError {
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
    const addressed = this.#role.resolve(connect.target);
    if (addressed instanceof WaypointError) return resetStream(connect.stream, http2.constants.NGHTTP2_REFUSED_STREAM);
    const context: StreamContext = {
      connect,
      addressed,
      source: sourceLabels(streamSource(this.#opts.index, connect.source, connect.sourceAddress)),
    };
    const declared = addressed.kind === "service" ? portProtocol(addressed.service.appProtocols.get(addressed.port)) : "detect";
    // A port declared as something else than HTTP is carried at L4 unread, whatever its bytes look like.
    if (declared === "opaque") return this.#carryL4(context);
    // A declared HTTP port waits for its client however long (HTTP speaks first); a silent one is not taken for L4.
    const protocol = await detectProtocol(connect.stream, declared === "http" ? DECLARED_HTTP_WAIT_MS : this.#opts.detectTimeoutMs);
    if (protocol === "tcp" && declared === "http") {
      this.#opts.log.info(
        { source: formatSpiffeId(connect.source), destination: `${connect.target.ip}:${connect.target.port}` },
        "bytes that are not HTTP on a port declared as HTTP (appProtocol): stream reset",
      );
      return resetStream(connect.stream, http2.constants.NGHTTP2_PROTOCOL_ERROR);
    }
    if (protocol === "tcp") return this.#carryL4(context);
    const socket = asSocket(connect.stream);
    if (protocol === "http1") {
      this.#contexts.set(socket, context);
      this.#http1.emit("connection", socket);
      return;
    }
    // A bound on requests in flight per client connection: beyond it the client queues (HTTP/2 flow control), where
    // without it an open-loop client past the proxy's capacity made it hold every request it could not yet answer,
    // until the heap limit ended it (bench: gRPC at 1,000 calls/s through a waypoint, an OOM in 6 minutes).
    const session = http2.performServerHandshake(socket, { settings: { maxConcurrentStreams: MAX_STREAMS_PER_CLIENT_CONNECTION } });
    session.on("error", () => session.destroy());
    session.on("stream", (stream, headers) => {
      stream.on("error", () => {});
      this.#serve(context, http2Call(stream, headers, connect.target));
    });
  }

  #onHttp1(req: http.IncomingMessage, res: http.ServerResponse): void {
    const context = this.#contexts.get(req.socket);
    if (!context) return void res.destroy();
    // Listened to from the start: a client that leaves while its request is forwarded is gone when the answer comes.
    const gone = new AbortController();
    // Only a response that did not finish means the client left: aborting makes a DOMException (a stack trace), which
    // on every request was the largest single cost in the waypoint's CPU profile.
    res.once("close", () => {
      if (!res.writableFinished) gone.abort();
    });
    const call: Call = {
      version: "http1",
      method: req.method ?? "GET",
      path: req.url ?? "/",
      authority: req.headers.host ?? `${context.connect.target.ip}:${context.connect.target.port}`,
      headers: req.headers,
      body: req,
      gone: gone.signal,
      respond: (status, headers, body) =>
        new Promise((resolve) => {
          let bytes = 0;
          let upstreamClosed = false;
          const settle = () => {
            const downstreamClosed = !res.writableFinished && !upstreamClosed;
            if (downstreamClosed && typeof body !== "string") body.body.destroy();
            resolve({ bytes, headersSent: res.headersSent, downstreamClosed, upstreamClosed, grpcStatus: undefined });
          };
          if (gone.signal.aborted) return settle();
          res.once("close", settle);
          res.writeHead(status, headers);
          if (typeof body === "string") {
            bytes = Buffer.byteLength(body);
            return void res.end(body);
          }
          pipeBody(
            body.body,
            res,
            (n) => (bytes += n),
            () => {
              upstreamClosed = true;
              res.destroy();
            },
          );
        }),
    };
    this.#serve(context, call);
  }

  /** A request the handler failed on unexpectedly is logged: an unhandled rejection would end the waypoint. */
  #serve(context: StreamContext, call: Call): void {
    const overloaded = this.#activeRequests >= this.#opts.maxActiveRequests;
    if (!overloaded) this.#activeRequests++;
    this.#handle(context, call, overloaded)
      .catch((err: unknown) => this.#opts.log.error({ method: call.method, path: call.path, err: (err as Error).message }, "request failed in the waypoint"))
      .finally(() => {
        if (!overloaded) this.#activeRequests--;
      });
  }

  /** Not HTTP: bytes to the addressed Service's endpoint (or pod) through its agent, as the source agent would have sent them. */
  async #carryL4(context: StreamContext): Promise<void> {
    const { connect } = context;
    const endpoint = this.#pickAddressed(context.addressed);
    const line = { source: formatSpiffeId(connect.source), destination: `${connect.target.ip}:${connect.target.port}`, protocol: "tcp" };
    if (endpoint instanceof WaypointError) {
      this.#opts.log.info({ ...line, code: endpoint.code, error: endpoint.message }, "connection");
      return resetStream(connect.stream, http2.constants.NGHTTP2_CONNECT_ERROR);
    }
    let upstream: Duplex;
    try {
      upstream = await this.#upstream.openStream(endpoint);
    } catch (err) {
      this.#opts.log.info(
        { ...line, upstream: `${endpoint.ip}:${endpoint.port}`, code: WaypointErrorCode.upstream, error: (err as Error).message },
        "connection",
      );
      return resetStream(connect.stream, http2.constants.NGHTTP2_CONNECT_ERROR);
    }
    relay(connect.stream, upstream, (counts) =>
      this.#opts.log.info({ ...line, upstream: `${endpoint.ip}:${endpoint.port}`, bytesReceived: counts.aToB, bytesSent: counts.bToA }, "connection"),
    );
  }

  /** Serves one request; `overloaded`: the proxy is at its limit, and answers 503 at once (counted and logged like any other). */
  async #handle(context: StreamContext, call: Call, overloaded: boolean): Promise<void> {
    const started = performance.now();
    const { connect, addressed } = context;
    const service = addressed.kind === "service" ? { namespace: addressed.service.namespace, name: addressed.service.name } : undefined;
    const requestBody = countBytes(call.body);
    const hop = traceHop(call.headers, this.#opts.traceRandom);
    const protocol = requestProtocol(call.headers["content-type"]);
    const flags = new ResponseFlags();
    /** The routed Service replaces the addressed one; the endpoint is the last attempt's. */
    const destination: RequestDestination = { service, endpoint: undefined };
    const line: Record<string, unknown> = {
      method: call.method,
      path: call.path,
      authority: call.authority,
      protocol: call.version,
      source: formatSpiffeId(connect.source),
      destination: `${connect.target.ip}:${connect.target.port}`,
      traceId: hop.traceId,
      requestId: hop.requestId,
    };

    /** The one place a request is counted and logged, once, whether the waypoint or a backend answered it. */
    const report = (status: number, delivered: Delivered, extra: Record<string, unknown> = {}) => {
      if (delivered.upstreamClosed) flags.add("UC");
      if (delivered.downstreamClosed) flags.add("DC");
      const code = delivered.headersSent ? status : 0;
      const durationMs = performance.now() - started;
      const responseFlags = flags.toString();
      this.#metrics.request(
        {
          reporter: this.#role.reporter,
          ...context.source,
          ...destinationLabels(destination),
          request_protocol: protocol,
          response_code: String(code),
          grpc_response_status: protocol === "grpc" ? grpcStatus(code, delivered.grpcStatus) : undefined,
          response_flags: responseFlags,
          connection_security_policy: this.#role.connectionSecurity(connect),
        },
        { durationMs, requestBytes: requestBody.bytes(), responseBytes: delivered.bytes },
      );
      this.#opts.log.info(
        {
          ...line,
          status: code,
          responseFlags,
          durationMs: Math.round(durationMs * 10) / 10,
          bytesReceived: requestBody.bytes(),
          bytesSent: delivered.bytes,
          ...extra,
        },
        "request",
      );
    };
    const answer = async (status: number, headers: Record<string, string | string[]>, body: string | UpstreamResponse, extra?: Record<string, unknown>) =>
      report(status, await call.respond(status, headers, body), extra);

    if (overloaded) {
      requestBody.body.resume();
      flags.add("OM");
      return answer(503, { "content-type": "text/plain", "x-envoy-overloaded": "true" }, OVERLOADED);
    }
    const decision = !this.#role.l7Authorization
      ? { allowed: true, reason: "L4 policy, checked per connection", audit: undefined, response: undefined }
      : this.#opts.policies.check({
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
    // AUDIT marks the request in its access line and never changes the decision.
    if (decision.audit) line.audit = decision.audit;
    if (!decision.allowed && decision.response) {
      requestBody.body.resume();
      return answer(decision.response.status, { ...decision.response.headers }, decision.response.body);
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
      requestBody.body.resume();
      flags.add("NR");
      return answer(plan.status, {}, "", { reason: plan.reason });
    }
    if (plan.action === "redirect") {
      requestBody.body.resume();
      const responseHeaders = plan.responseModifiers.reduce(applyHeaderModifier, { location: plan.location });
      return answer(plan.status, responseHeaders, "");
    }

    const forwarding =
      plan.action === "forward"
        ? {
            pick: (r: ServiceResilience | undefined) => this.#pickBackend(plan.backend, r),
            request: plan.request,
            retry: plan.retry,
            timeouts: plan.timeouts,
            modifiers: plan.responseModifiers,
          }
        : {
            pick: (r: ServiceResilience | undefined) => this.#pickAddressed(addressed, r),
            request: { method: call.method, path: call.path, authority: call.authority, headers },
            retry: undefined,
            timeouts: undefined,
            modifiers: [],
          };
    if (plan.action === "forward") destination.service = { namespace: plan.backend.namespace, name: plan.backend.service };
    const backend =
      plan.action === "forward"
        ? { namespace: plan.backend.namespace, name: plan.backend.service }
        : addressed.kind === "service"
          ? { namespace: addressed.service.namespace, name: addressed.service.name }
          : undefined;
    const routeRef = "route" in plan && plan.route ? { kind: plan.route.kind, namespace: plan.route.namespace, name: plan.route.name } : undefined;
    const resilience = backend ? this.#opts.resilience?.forService(backend.namespace, backend.name, routeRef) : undefined;
    if (resilience) line.trafficPolicy = resilience.policy;

    // Faults first, as Envoy's fault filter runs before the router: a delay, then an abort instead of forwarding.
    const fault = resilience?.faults?.decide();
    if (fault?.delayMs) {
      flags.add("DI");
      if (!(await waitUnlessGone(fault.delayMs, call.gone))) return report(0, CLIENT_GONE);
    }
    if (fault?.abort) {
      requestBody.body.resume();
      flags.add("FI");
      if ("httpStatus" in fault.abort) return answer(fault.abort.httpStatus, { "content-type": "text/plain" }, FAULT_ABORT);
      return answer(200, { "content-type": "application/grpc", "grpc-status": String(fault.abort.grpcStatus), "grpc-message": FAULT_ABORT }, "");
    }
    const admitted = resilience?.breaker ? await this.#admit(resilience.breaker, call.version, call.gone) : () => {};
    if (admitted === "gone") return report(0, CLIENT_GONE);
    if (admitted === "overflow") {
      requestBody.body.resume();
      flags.add("UO");
      return answer(503, { "content-type": "text/plain", "x-envoy-overloaded": "true" }, OVERFLOW);
    }
    const budget = resilience?.retryBudget?.requestStarted();
    try {
      let body: Buffer | Readable = requestBody.body;
      const mirrors = plan.action === "forward" ? plan.mirrors : [];
      // A body sent more than once (retries, mirrors) is kept whole; otherwise it streams.
      if (forwarding.retry || mirrors.length > 0) {
        try {
          body = await buffer(requestBody.body);
        } catch {
          return report(0, CLIENT_GONE);
        }
        if (body.length > MAX_RETRY_BODY) return answer(413, {}, "");
      }
      const forwardedHeaders = withTrace(forwardableHeaders(forwarding.request.headers), hop);
      for (const mirror of mirrors) this.#mirror(mirror, call.version, { ...forwarding.request, headers: forwardedHeaders, body: body as Buffer });
      /** The load balancer's count of requests active on the endpoint of the attempt under way (least request). */
      let attemptEnded: (() => void) | undefined;
      const result = await forward({
        upstream: this.#upstream,
        pick: () => {
          const picked = forwarding.pick(resilience);
          if (!(picked instanceof WaypointError)) attemptEnded = resilience?.loadBalancer?.begin(endpointKey(picked));
          return picked;
        },
        observe: (endpoint, outcome) => {
          attemptEnded?.();
          attemptEnded = undefined;
          resilience?.outlier?.report(endpointKey(endpoint), outcome);
        },
        ...(resilience?.retryBudget ? { retryAllowed: () => resilience.retryBudget!.tryAcquireRetry() } : {}),
        version: call.version,
        request: { ...forwarding.request, headers: forwardedHeaders, body },
        retry: forwarding.retry,
        timeouts: forwarding.timeouts,
        random: this.#opts.random,
        cancel: call.gone,
      });
      destination.endpoint = result.endpoint;
      flags.add(...result.flags);
      const upstream = result.endpoint ? `${result.endpoint.ip}:${result.endpoint.port}` : undefined;
      if ("error" in result.outcome) {
        const { error } = result.outcome;
        const text = error.code === WaypointErrorCode.timeout ? "upstream request timeout" : NO_HEALTHY_UPSTREAM;
        return answer(error.status, { "content-type": "text/plain" }, text, { upstream, attempts: result.attempts, code: error.code, error: error.message });
      }
      const { response } = result.outcome;
      response.headers = forwarding.modifiers.reduce(applyHeaderModifier, response.headers);
      return answer(response.status, response.headers, response, { upstream, attempts: result.attempts });
    } finally {
      admitted();
      budget?.();
    }
  }

  /**
   * RequestMirror: a copy to the mirror's Service, fire and forget, with Envoy's `-shadow` suffix on the authority so
   * the mirror can tell copies apart; its answer and failures never touch the client's request.
   */
  #mirror(target: BackendTarget, version: "http1" | "http2", request: UpstreamRequest & { body: Buffer }): void {
    const endpoint = this.#pickBackend(target);
    const name = `${target.namespace}/${target.service}:${target.port}`;
    if (endpoint instanceof WaypointError) return void this.#opts.log.debug({ mirror: name, reason: endpoint.message }, "request not mirrored");
    const authority = request.authority.replace(/^([^:]+)/, "$1-shadow");
    this.#upstream.send(endpoint, version, { ...request, authority }, AbortSignal.timeout(MIRROR_TIMEOUT_MS)).then(
      (response) => response.body.resume(),
      (err: unknown) => this.#opts.log.debug({ mirror: name, err: (err as Error).message }, "mirrored request failed"),
    );
  }

  /** An endpoint of the addressed Service port (ready, at random, as kube-proxy picks), or the addressed pod itself. */
  #pickAddressed(addressed: Addressed, resilience?: ServiceResilience): Endpoint | WaypointError {
    if (addressed.kind === "workload") return this.#role.endpointOf(addressed.workload, addressed.port);
    return this.#pickBackend({ namespace: addressed.service.namespace, service: addressed.service.name, port: addressed.port }, resilience);
  }

  /** A ready endpoint: outlier detection leaves ejected ones out, then the policy's load balancer (else at random, as kube-proxy). */
  #pickBackend(backend: BackendTarget, resilience?: ServiceResilience): Endpoint | WaypointError {
    const name = `${backend.namespace}/${backend.service}:${backend.port}`;
    const ready = (this.#opts.index.serviceByName(backend.namespace, backend.service)?.ports.get(backend.port) ?? []).filter((e) => e.ready);
    if (ready.length === 0) return new WaypointError(WaypointErrorCode.noEndpoint, 503, `${name} has no ready endpoint`);
    const keys = ready.map(endpointKey);
    const candidates = resilience?.outlier ? resilience.outlier.available(keys) : keys;
    const chosen = resilience?.loadBalancer ? resilience.loadBalancer.pick(candidates) : candidates[Math.floor(this.#opts.random() * candidates.length)];
    const pick = ready.find((e) => endpointKey(e) === chosen) ?? ready[Math.floor(this.#opts.random() * ready.length)]!;
    const workload = this.#opts.index.workloadByIp(pick.ip);
    if (!workload) return new WaypointError(WaypointErrorCode.noEndpoint, 503, `endpoint ${pick.ip} of ${name} is not a known pod`);
    return this.#role.endpointOf(workload, pick.port);
  }

  /** The pod must be captured: its agent terminates HBONE and proves the pod's identity, which the waypoint expects. */
  #capturedEndpoint(workload: Workload, port: number): Endpoint | WaypointError {
    if (!workload.captured)
      return new WaypointError(
        WaypointErrorCode.noEndpoint,
        503,
        `pod ${workload.namespace}/${workload.name} is not captured, so no agent can take HBONE for it`,
      );
    const identity = { trustDomain: this.#opts.identity.trustDomain, namespace: workload.namespace, serviceAccount: workload.serviceAccount };
    return { ip: workload.ip, port, identity, workload };
  }
}

/** An HTTP/2 request on the core API; gRPC's trailers are passed on from the backend's stream. */
function http2Call(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, target: { ip: string; port: number }): Call {
  const gone = new AbortController();
  // A stream that closes normally was answered; only a reset (or a dropped connection) means the client left.
  stream.once("close", () => {
    if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) gone.abort();
  });
  return {
    version: "http2",
    method: String(headers[":method"] ?? "GET"),
    path: String(headers[":path"] ?? "/"),
    authority: String(headers[":authority"] ?? headers.host ?? `${target.ip}:${target.port}`),
    headers,
    body: stream,
    gone: gone.signal,
    respond: (status, responseHeaders, body) =>
      new Promise((resolve) => {
        let bytes = 0;
        let upstreamClosed = false;
        let grpc = typeof body === "string" ? undefined : first(body.headers["grpc-status"]);
        const settle = () => {
          // A stream the client reset (or whose connection dropped) closes with another code than NO_ERROR.
          const downstreamClosed = !upstreamClosed && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR;
          if (downstreamClosed && typeof body !== "string") body.body.destroy();
          resolve({ bytes, headersSent: stream.headersSent, downstreamClosed, upstreamClosed, grpcStatus: grpc });
        };
        if (stream.destroyed) return settle();
        stream.once("close", settle);
        if (typeof body === "string") {
          bytes = Buffer.byteLength(body);
          stream.respond({ ":status": status, ...responseHeaders }, { endStream: body === "" });
          if (body !== "") stream.end(body);
          return;
        }
        stream.respond({ ":status": status, ...responseHeaders }, { waitForTrailers: true });
        // Asked once the body has ended, so the backend's trailers (gRPC's status) have arrived by then.
        stream.once("wantTrailers", () => {
          const trailers = forwardableHeaders(body.trailers?.() ?? {});
          grpc = first(trailers["grpc-status"]) ?? grpc;
          stream.sendTrailers(trailers);
        });
        pipeBody(
          body.body,
          stream,
          (n) => (bytes += n),
          () => {
            upstreamClosed = true;
            stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          },
        );
      }),
  };
}

/** Refuses a stream: an HTTP/2 stream is reset with `code`, a plain socket (a sidecar's app) with a TCP RST. */
function resetStream(stream: http2.ServerHttp2Stream | net.Socket, code: number): void {
  if ("rstCode" in stream) stream.close(code);
  else stream.resetAndDestroy();
}

const first = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** How long a client of a port declared as HTTP may stay silent before its stream is closed (Envoy's idle timeout is 1 h; a declared HTTP client that says nothing for a minute is gone). */
const DECLARED_HTTP_WAIT_MS = 60_000;

/** A mirrored request that takes longer is abandoned (its answer is never used anyway). */
const MIRROR_TIMEOUT_MS = 30_000;

/** How long a client's HTTP/1.1 keep-alive connection may stay idle (Envoy's default idle_timeout). */
export const CLIENT_IDLE_TIMEOUT_MS = 3_600_000;
/** Envoy's body for a request its overload manager refused. */
const OVERLOADED = "envoy overloaded";
/** Envoy's bodies for a fault abort and a circuit breaker overflow. */
const FAULT_ABORT = "fault filter abort";
const OVERFLOW = "upstream connect error or disconnect/reset before headers. reset reason: overflow";

const endpointKey = (e: { ip: string; port: number }): string => `${e.ip}:${e.port}`;

/** Waits `ms`; false when the client went away meanwhile. */
function waitUnlessGone(ms: number, gone: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (gone.aborted) return resolve(false);
    const timer = setTimeout(() => resolve(true), ms);
    gone.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve(false);
      },
      { once: true },
    );
  });
}

/** What a request whose client left before it could be answered reports: status 0 and DC, as Envoy does. */
const CLIENT_GONE: Delivered = { bytes: 0, headersSent: false, downstreamClosed: true, upstreamClosed: false, grpcStatus: undefined };

/** The request body as whoever consumes it reads it, counted on the way (Istio's request size). */
function countBytes(body: Readable): { body: Readable; bytes(): number } {
  // Most requests carry no body (a GET's is over with its headers): no counting stream for those, which otherwise
  // cost a Transform and a pipeline per request.
  if (body.readableEnded || hasNoBody(body)) return { body, bytes: () => 0 };
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  pipeline(body, counter, () => {});
  return { body: counter, bytes: () => bytes };
}

/** An HTTP/1.1 request without Content-Length or Transfer-Encoding, or an HTTP/2 one whose HEADERS ended the stream. */
function hasNoBody(body: Readable): boolean {
  if (body instanceof http.IncomingMessage)
    return body.headers["transfer-encoding"] === undefined && (body.headers["content-length"] === undefined || body.headers["content-length"] === "0");
  return (body as Readable & { endAfterHeaders?: boolean }).endAfterHeaders === true;
}

/** A backend's body to the client, counted; `cut` when the backend's stream ends before its body did (Envoy's UC). */
function pipeBody(from: Readable, to: NodeJS.WritableStream, count: (bytes: number) => void, cut: () => void): void {
  from.pipe(to);
  from.on("data", (chunk: Buffer) => count(chunk.length));
  // A reset backend stream is seen by its close below; listened to so its error is not thrown.
  from.on("error", () => {});
  from.once("close", () => {
    if (!from.readableEnded) cut();
  });
}
