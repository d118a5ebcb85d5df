// Connections from the waypoint to backends: HBONE streams to each endpoint's agent, pooled per endpoint as HTTP/1.1 keep-alive or one HTTP/2 session.
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { Duplex, Readable } from "node:stream";
import type { HboneConnectionPool } from "../../agent/hbone/index.ts";
import type { SpiffeId } from "../../agent/identity/index.ts";
import type { Workload } from "../../agent/state/index.ts";
import { AGENT_PORTS } from "../../contract/install.ts";

/** Where a request goes: an endpoint pod, reached through its node agent on 15008, which must present `identity`. */
export interface Endpoint {
  ip: string;
  port: number;
  identity: SpiffeId;
  /** The pod behind the endpoint, for the request metrics' destination labels. */
  workload?: Workload;
  /** Reached without HBONE (a sidecar's own app, or a pod outside the mesh): `identity` is then only what it runs as. */
  plaintext?: boolean;
}

/** Opens the byte stream a request to an endpoint travels on; the waypoint's is HBONE to the endpoint's agent. */
export type OpenUpstream = (endpoint: Endpoint) => Promise<Duplex>;

/** The HBONE port every captured pod's agent listens on (contract/install.ts). */
export const HBONE_PORT = AGENT_PORTS.hbone;

/** A backend's answer, the same shape whichever HTTP version carried it. */
export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Readable;
  /**
   * An HTTP/2 backend's trailers once its body has ended (gRPC's status). Kept from the moment the stream opens: they
   * can arrive with the last data, before whoever forwards the response has listened for them.
   */
  trailers?(): http2.IncomingHttpHeaders | undefined;
}

export interface UpstreamRequest {
  method: string;
  path: string;
  authority: string;
  headers: Record<string, string | string[]>;
  /** Sent whole (a buffered body, so a retry can send it again) or streamed (no retry possible). */
  body: Buffer | Readable;
}

type WritevChunks = Array<{ chunk: unknown; encoding: BufferEncoding }> & { allBuffers?: boolean };
/** Streams whose writev already drops empty chunks (asSocket may see a stream twice). */
const WITHOUT_EMPTY_CHUNKS = new WeakSet<Duplex>();

/**
 * http.Agent and http.Server call socket methods an HTTP/2 stream lacks (keep-alive probes, Nagle, event-loop refs);
 * on a tunnelled stream they have nothing to do, as the TLS connection beneath holds those settings.
 *
 * Empty chunks are also kept out of the stream's writev. Node's Http2Stream (24.x) ties a writev's completion, which
 * frees the copy it made of the writev's strings, to its last chunk only. An empty last chunk is left behind when
 * the session takes the others into a DATA frame, and completed by the session's next read of the stream, in the
 * same send round, before those chunks reach the socket: the peer gets freed memory in place of their first bytes
 * (the HTTP/1.1 status line replaced by binary).
 * http.ServerResponse and http.ClientRequest write that empty last chunk: end() in the tick of a write (a body
 * read whole with its end, as a `content-length` response in one packet) sends `''` while the message is still
 * corked, behind its head and body.
 */
export function asSocket(stream: Duplex): net.Socket {
  const s = stream as Duplex & Partial<net.Socket>;
  s.setKeepAlive ??= () => s as net.Socket;
  s.setNoDelay ??= () => s as net.Socket;
  s.ref ??= () => s as net.Socket;
  s.unref ??= () => s as net.Socket;
  const writev = s._writev;
  if (writev && !WITHOUT_EMPTY_CHUNKS.has(s)) {
    WITHOUT_EMPTY_CHUNKS.add(s);
    s._writev = function (chunks, callback) {
      const kept: WritevChunks = chunks.filter((c) => (c.chunk as Buffer | string).length > 0);
      // Writable's flag that every chunk is a Buffer (Http2Stream reads it); dropping chunks keeps it true.
      kept.allBuffers = (chunks as WritevChunks).allBuffers;
      writev.call(this, kept.length > 0 ? kept : chunks, callback);
    };
  }
  return s as net.Socket;
}

/** HBONE to the endpoint's own address on 15008 (its agent, or its sidecar), addressed to the endpoint, proving `source`. */
export function hboneOpener(hbone: HboneConnectionPool, source: SpiffeId): OpenUpstream {
  return (endpoint) =>
    hbone.openStream({
      source,
      destination: { ip: endpoint.ip, port: endpoint.port },
      dial: { host: endpoint.ip, port: HBONE_PORT },
      expectedIdentity: endpoint.identity,
    });
}

/** Opening the HBONE stream to an endpoint failed: nothing reached the backend (Envoy's UF, not UC). */
export class UpstreamConnectError extends Error {
  constructor(cause: unknown) {
    super((cause as Error).message, { cause });
    this.name = "UpstreamConnectError";
  }
}

const endpointKey = (e: Endpoint) => `${e.ip}:${e.port}`;

/** How long an idle upstream HTTP/1.1 connection is kept for the next request. */
export const FREE_SOCKET_TIMEOUT_MS = 4_000;

/** Hop-by-hop headers (RFC 9110 7.6.1) and HTTP/2 pseudo-headers: never forwarded, each hop sets its own. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host", "http2-settings"]);

/** Headers fit for the next hop: pseudo-headers and hop-by-hop ones removed (`te: trailers` kept, gRPC needs it). */
export function forwardableHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith(":")) continue;
    if (HOP_BY_HOP.has(name) && !(name === "te" && value === "trailers")) continue;
    out[name] = value;
  }
  return out;
}

/**
 * One pool per waypoint: an http.Agent per endpoint whose connections are HBONE streams (so a client's keep-alive
 * connection reuses one upstream connection per endpoint), and one HTTP/2 session per endpoint for HTTP/2 clients.
 */
export class UpstreamPool {
  readonly #open: OpenUpstream;
  readonly #agents = new Map<string, http.Agent>();
  readonly #sessions = new Map<string, Promise<http2.ClientHttp2Session>>();

  /** `open`: how a connection to an endpoint is made; by default an HBONE stream from `source` (hboneOpener). */
  constructor(open: OpenUpstream) {
    this.#open = open;
  }

  /** A stream to the endpoint; failing with an UpstreamConnectError. */
  openStream(endpoint: Endpoint): Promise<Duplex> {
    return this.#open(endpoint).catch((err: unknown) => {
      throw new UpstreamConnectError(err);
    });
  }

  #agentFor(endpoint: Endpoint): http.Agent {
    const key = endpointKey(endpoint);
    let agent = this.#agents.get(key);
    if (agent) return agent;
    // An idle connection is dropped after FREE_SOCKET_TIMEOUT_MS, before a backend's own keep-alive timeout (Node's
    // servers: 5 s) can close it under a request the waypoint just sent on it, as Node's global agent does.
    agent = new http.Agent({ keepAlive: true, timeout: FREE_SOCKET_TIMEOUT_MS });
    // Asynchronous createConnection: returning nothing makes the Agent wait for the callback.
    agent.createConnection = (_options, callback) => {
      this.openStream(endpoint).then(
        (stream) => {
          // A TCP socket closes when its peer's data ends (allowHalfOpen false); an HBONE stream stays half open,
          // and http.Agent would keep it as a free connection a next request is written into and never answered.
          stream.once("end", () => stream.destroy());
          callback?.(null, asSocket(stream));
        },
        (err: Error) => callback?.(err, undefined as unknown as net.Socket),
      );
      return undefined as unknown as net.Socket;
    };
    this.#agents.set(key, agent);
    return agent;
  }

  #sessionFor(endpoint: Endpoint): Promise<http2.ClientHttp2Session> {
    const key = endpointKey(endpoint);
    let session = this.#sessions.get(key);
    if (session) return session;
    session = this.openStream(endpoint).then((stream) => {
      const s = http2.connect(`http://${key}`, { createConnection: () => asSocket(stream) });
      const forget = () => this.#sessions.delete(key);
      s.once("close", forget);
      s.once("goaway", forget);
      s.on("error", () => s.destroy());
      return s;
    });
    session.catch(() => this.#sessions.delete(key));
    this.#sessions.set(key, session);
    return session;
  }

  /** One exchange with one endpoint, in the client's HTTP version; `signal` abandons it. */
  async send(endpoint: Endpoint, version: "http1" | "http2", request: UpstreamRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    if (version === "http2") {
      const session = await this.#sessionFor(endpoint);
      const stream = session.request({ ":method": request.method, ":path": request.path, ":authority": request.authority, ...request.headers }, { signal });
      let trailers: http2.IncomingHttpHeaders | undefined;
      stream.once("trailers", (t) => (trailers = t));
      const response = new Promise<UpstreamResponse>((resolve, reject) => {
        stream.once("response", (h) => resolve({ status: Number(h[":status"]), headers: forwardableHeaders(h), body: stream, trailers: () => trailers }));
        stream.once("error", reject);
        stream.once("close", () => reject(new Error(`stream closed before a response (code ${stream.rstCode})`)));
      });
      writeBody(stream, request.body);
      return response;
    }
    const req = http.request({
      agent: this.#agentFor(endpoint),
      method: request.method,
      path: request.path,
      headers: { ...request.headers, host: request.authority },
      signal,
    });
    const response = new Promise<UpstreamResponse>((resolve, reject) => {
      req.once("response", (res) => resolve({ status: res.statusCode ?? 502, headers: forwardableHeaders(res.headers), body: res }));
      req.once("error", reject);
    });
    writeBody(req, request.body);
    return response;
  }

  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    for (const session of this.#sessions.values())
      void session.then(
        (s) => s.destroy(),
        () => {},
      );
    this.#agents.clear();
    this.#sessions.clear();
  }
}

function writeBody(to: NodeJS.WritableStream & { end(chunk?: Buffer): unknown }, body: Buffer | Readable): void {
  if (Buffer.isBuffer(body)) to.end(body.length ? body : undefined);
  else body.pipe(to);
}
