// The pods/log, exec, attach and portforward subresources: checks as kube-apiserver makes them, then the pod's node's kubelet serves them.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex, Readable, Writable } from "node:stream";
import type { Logger } from "pino";
import { WebSocketServer, createWebSocketStream, type WebSocket } from "ws";
import { ApiError, type KubeObject, statusBody } from "./types.ts";
import { invalid } from "./defaults.ts";
import { REMOTE_COMMAND_PROTOCOLS, SPDY_REMOTE_COMMAND_PROTOCOLS, serveRemoteCommand, serveSpdyRemoteCommand } from "./remotecommand.ts";
import { SPDY_TUNNEL_PROTOCOL, WEBSOCKET_PORT_FORWARD_PROTOCOLS, serveSpdyPortForward, serveWebSocketPortForward } from "./portforward.ts";

export type StreamSubresource = "log" | "exec" | "attach" | "portforward";
const SUBRESOURCES = new Set<string>(["log", "exec", "attach", "portforward"]);

/** The pod a streaming request is about. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

/** What `kubectl logs` asks for (PodLogOptions). */
export interface LogOptions {
  container: string;
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  tailLines?: number | undefined;
  /** Only lines logged at or after this time (sinceSeconds or sinceTime). */
  sinceMs?: number | undefined;
  limitBytes?: number | undefined;
}

/** What `kubectl exec` or `kubectl attach` asks for (PodExecOptions / PodAttachOptions). */
export interface ProcessOptions {
  container: string;
  /** exec only. */
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

export interface TerminalSize {
  width: number;
  height: number;
}

export type ProcessResult = { exitCode: number } | { error: string };

/** A running exec (or an attach to a container's process), as the kubelet hands it to the API server. */
export interface ProcessSession {
  /** The process's input, when the client asked for stdin (and, for attach, the container has one). */
  readonly stdin: Writable | undefined;
  /** Its output (with a TTY, everything arrives here); undefined when not asked for. */
  readonly stdout: Readable | undefined;
  readonly stderr: Readable | undefined;
  resize(size: TerminalSize): void;
  /** Settles when the process has ended (attach: the container's process, or the session was closed). */
  readonly done: Promise<ProcessResult>;
  /** The client went away: exec stops its process, attach detaches. */
  close(): void;
}

/**
 * What a node's kubelet offers the API server, as the kubelet's streaming server does on a real node. Failures
 * known before anything streams (container not running, no such previous container) are thrown as ApiError.
 */
export interface PodStreams {
  logs(pod: PodRef, opts: LogOptions): Promise<Readable>;
  exec(pod: PodRef, opts: ProcessOptions): Promise<ProcessSession>;
  attach(pod: PodRef, opts: ProcessOptions): Promise<ProcessSession>;
  /** A connection to `port` on the pod's own localhost (its network namespace), as a kubelet makes it. */
  portForward(pod: PodRef, port: number): Promise<Duplex>;
}

export interface StreamTarget {
  namespace: string;
  name: string;
  subresource: StreamSubresource;
}

/** `/api/v1/namespaces/<ns>/pods/<name>/<log|exec|attach|portforward>`, else undefined. */
export function streamTarget(pathname: string): StreamTarget | undefined {
  const seg = pathname.split("/").filter(Boolean);
  if (seg.length !== 7 || seg[0] !== "api" || seg[1] !== "v1" || seg[2] !== "namespaces" || seg[4] !== "pods" || !SUBRESOURCES.has(seg[6]!)) return undefined;
  try {
    return { namespace: decodeURIComponent(seg[3]!), name: decodeURIComponent(seg[5]!), subresource: seg[6] as StreamSubresource };
  } catch {
    return undefined;
  }
}

export const isStreamSubresource = (s: string | undefined): s is StreamSubresource => s !== undefined && SUBRESOURCES.has(s);

/**
 * The verb RBAC checks: exec, attach and portforward are `create` whatever the method, as kube-apiserver decides
 * them since 1.31 (a WebSocket upgrade is a GET, and must not pass with only `get`).
 */
export const streamVerb = (sub: string | undefined): string | undefined => (sub === "exec" || sub === "attach" || sub === "portforward" ? "create" : undefined);

/** The pods/* entries discovery lists, as kube-apiserver does (kubectl api-resources, auth can-i). */
export const STREAM_DISCOVERY = [
  { name: "pods/attach", verbs: ["create", "get"], kind: "PodAttachOptions" },
  { name: "pods/exec", verbs: ["create", "get"], kind: "PodExecOptions" },
  { name: "pods/log", verbs: ["get"], kind: "Pod" },
  { name: "pods/portforward", verbs: ["create", "get"], kind: "PodPortForwardOptions" },
];

const isTrue = (v: string | null) => v === "true" || v === "1";
const badRequest = (message: string) => new ApiError(400, "BadRequest", message);

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return /^websocket$/i.test(req.headers.upgrade ?? "") && /(^|,)\s*upgrade\s*($|,)/i.test(req.headers.connection ?? "");
}

function isSpdyUpgrade(req: IncomingMessage): boolean {
  return /^SPDY\/3\.1$/i.test(req.headers.upgrade ?? "");
}

/** The subprotocols a WebSocket client offers, in its order of preference. */
function offeredProtocols(req: IncomingMessage): string[] {
  return (req.headers["sec-websocket-protocol"] ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
}

/** The X-Stream-Protocol-Version values of a SPDY upgrade (the header repeated, which Node joins with commas). */
function streamProtocolVersions(req: IncomingMessage): string[] {
  return String(req.headers["x-stream-protocol-version"] ?? "")
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean);
}

/** Answers an upgrade request that fails with a Status, as an ordinary HTTP response on the raw socket. */
export function rejectUpgrade(socket: Duplex, err: unknown): void {
  const apiErr = err instanceof ApiError ? err : new ApiError(500, "InternalError", `Internal error occurred: ${(err as Error).message}`);
  const body = JSON.stringify(statusBody(apiErr));
  if (!socket.writable) return void socket.destroy();
  socket.end(
    `HTTP/1.1 ${apiErr.httpStatus} ${STATUS_CODES[apiErr.httpStatus] ?? ""}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-cache, private\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Serves the streaming subresources of pods; nodes' kubelets attach themselves to it. */
export class PodStreaming {
  readonly #nodes = new Map<string, PodStreams>();
  readonly #getPod: (namespace: string, name: string) => KubeObject | undefined;
  readonly #log: Logger | undefined;
  // One server for every WebSocket upgrade; it never listens itself.
  readonly #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  /** The subprotocol chosen for each upgrade, answered by the "headers" hook below. */
  readonly #chosen = new WeakMap<IncomingMessage, string>();
  readonly #open = new Set<{ close(): void }>();

  constructor(getPod: (namespace: string, name: string) => KubeObject | undefined, log: Logger | undefined) {
    this.#getPod = getPod;
    this.#log = log;
    // ws refuses subprotocols that are not RFC 6455 tokens, and kubectl's "SPDY/3.1+portforward.k8s.io" has a "/":
    // the protocol is chosen here, removed from the request ws parses, and put in the answer ws writes.
    this.#wss.on("headers", (headers, req) => {
      const protocol = this.#chosen.get(req);
      if (protocol) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    });
  }

  #acceptWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, protocol: string, serve: (ws: WebSocket) => void): void {
    delete req.headers["sec-websocket-protocol"];
    this.#chosen.set(req, protocol);
    this.#wss.handleUpgrade(req, socket, head, serve);
  }

  /** Routes the pods of `node` to `streams`; the returned function detaches them again. */
  attachNode(node: string, streams: PodStreams): () => void {
    this.#nodes.set(node, streams);
    return () => {
      if (this.#nodes.get(node) === streams) this.#nodes.delete(node);
    };
  }

  /** A plain (not upgraded) request: pods/log, or an exec/attach/portforward that forgot to upgrade. */
  async request(req: IncomingMessage, res: ServerResponse, url: URL, target: StreamTarget): Promise<void> {
    if (target.subresource !== "log") {
      this.#checkPod(target);
      throw badRequest("Upgrade request required");
    }
    if (req.method !== "GET" && req.method !== "HEAD")
      throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    const pod = this.#checkPod(target);
    const opts = logOptions(url, pod, target.name);
    if (!pod.spec?.nodeName) {
      // As kube-apiserver: no node, no location, an empty log.
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-cache, private" });
      res.end();
      return;
    }
    const logs = await this.#kubelet(pod).logs(podRef(pod), opts);
    res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-cache, private", "transfer-encoding": "chunked" });
    res.flushHeaders();
    const stop = () => logs.destroy();
    res.once("close", stop);
    logs.on("error", (err) => {
      this.#log?.warn({ pod: `${target.namespace}/${target.name}`, err: String(err) }, "log stream failed");
      res.destroy();
    });
    logs.pipe(res);
  }

  /** An upgrade request (WebSocket or SPDY) for exec, attach or portforward. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, target: StreamTarget): Promise<void> {
    if (target.subresource === "log") throw badRequest("pods/log is not served over an upgraded connection; GET it");
    const pod = this.#checkPod(target);
    if (!pod.spec?.nodeName) throw badRequest(`pod ${target.name} does not have a host assigned`);
    const ws = isWebSocketUpgrade(req);
    if (!ws && !isSpdyUpgrade(req)) throw badRequest("Upgrade request required");
    if (target.subresource === "portforward") return this.#portForward(req, socket, head, url, pod, ws);

    const opts = processOptions(url, pod, target);
    const offered = ws ? offeredProtocols(req) : streamProtocolVersions(req);
    const supported = ws ? REMOTE_COMMAND_PROTOCOLS : SPDY_REMOTE_COMMAND_PROTOCOLS;
    // A SPDY client that names no version is a Kubernetes 1.0 one: the first protocol, as the kubelet assumes.
    const protocol = !ws && offered.length === 0 ? "channel.k8s.io" : offered.find((p) => supported.includes(p));
    if (!protocol)
      throw badRequest(`unable to upgrade: unable to negotiate protocol: client supports [${offered.join(" ")}], server supports [${supported.join(" ")}]`);
    const kubelet = this.#kubelet(pod);
    // Started before the upgrade, so a container that is not running is refused with a Status kubectl prints.
    const session = target.subresource === "exec" ? await kubelet.exec(podRef(pod), opts) : await kubelet.attach(podRef(pod), opts);
    const log = this.#log?.child({ pod: `${pod.metadata.namespace}/${pod.metadata.name}`, subresource: target.subresource });
    let upgraded = false;
    // A handshake ws refuses destroys the socket without calling back: the session must not outlive it.
    socket.once("close", () => upgraded || session.close());
    if (!socket.writable) return session.close();
    if (!ws) {
      upgraded = true;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
      if (head.length) socket.unshift(head);
      this.#track(socket, serveSpdyRemoteCommand(socket, protocol, session, opts, log));
      return;
    }
    this.#acceptWebSocket(req, socket, head, protocol, (conn) => {
      upgraded = true;
      this.#track(conn, { close: () => conn.terminate() });
      serveRemoteCommand(conn, protocol, session, opts, log);
    });
  }

  async #portForward(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, pod: KubeObject, ws: boolean): Promise<void> {
    const kubelet = this.#kubelet(pod);
    const ref = podRef(pod);
    const dial = (port: number) => kubelet.portForward(ref, port);
    const log = this.#log?.child({ pod: `${ref.namespace}/${ref.name}`, subresource: "portforward" });
    const describe = (port: number, err: unknown) =>
      `error forwarding port ${port} to pod ${ref.name}, uid ${ref.uid}: ${err instanceof Error ? err.message : String(err)}`;
    if (!ws) {
      // The classic SPDY upgrade (kubectl before 1.31, or KUBECTL_PORT_FORWARD_WEBSOCKETS=false).
      const versions = streamProtocolVersions(req);
      if (!versions.includes("portforward.k8s.io"))
        throw badRequest(`unable to upgrade: unable to negotiate protocol: client supports [${versions.join(" ")}], server supports [portforward.k8s.io]`);
      socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n");
      if (head.length) socket.unshift(head);
      const closer = serveSpdyPortForward(socket, dial, describe, log);
      this.#track(socket, closer);
      return;
    }
    const offered = offeredProtocols(req);
    // kubectl 1.31+: SPDY frames tunnelled in binary WebSocket messages (KEP-4006).
    if (offered.includes(SPDY_TUNNEL_PROTOCOL)) {
      this.#acceptWebSocket(req, socket, head, SPDY_TUNNEL_PROTOCOL, (conn) => {
        const closer = serveSpdyPortForward(webSocketDuplex(conn), dial, describe, log);
        this.#track(conn, closer);
      });
      return;
    }
    // The plain WebSocket protocol (@kubernetes/client-node's PortForward): the ports are in the query.
    const protocol = offered.length === 0 ? "" : offered.find((p) => WEBSOCKET_PORT_FORWARD_PROTOCOLS.includes(p));
    if (protocol === undefined)
      throw badRequest(
        `requested protocol(s) are not supported: [${offered.join(" ")}]; supports [${[SPDY_TUNNEL_PROTOCOL, ...WEBSOCKET_PORT_FORWARD_PROTOCOLS].join(" ")}]`,
      );
    const ports = forwardPorts(url);
    this.#acceptWebSocket(req, socket, head, protocol, (conn) => {
      const closer = serveWebSocketPortForward(conn, protocol, ports, dial, describe, log);
      this.#track(conn, closer);
    });
  }

  #track(conn: { once(event: "close", fn: () => void): unknown }, closer: { close(): void }): void {
    this.#open.add(closer);
    conn.once("close", () => this.#open.delete(closer));
  }

  #checkPod(target: StreamTarget): KubeObject {
    const pod = this.#getPod(target.namespace, target.name);
    if (!pod) throw new ApiError(404, "NotFound", `pods "${target.name}" not found`, { name: target.name, kind: "pods" });
    return pod;
  }

  #kubelet(pod: KubeObject): PodStreams {
    const node = pod.spec.nodeName as string;
    const kubelet = this.#nodes.get(node);
    // kube-apiserver's answer when it cannot reach the node's kubelet.
    if (!kubelet) throw new ApiError(500, "InternalError", `error dialing backend: no kubelet serves node "${node}"`);
    return kubelet;
  }

  /** Ends every open exec, attach and port-forward (shutdown). */
  close(): void {
    for (const c of [...this.#open]) c.close();
    this.#open.clear();
    this.#wss.close();
  }
}

const podRef = (pod: KubeObject): PodRef => ({ namespace: pod.metadata.namespace!, name: pod.metadata.name!, uid: pod.metadata.uid! });

/** The container a request names, or the pod's only one; kube-apiserver's messages otherwise. */
function containerOf(pod: KubeObject, requested: string | null): string {
  const names: string[] = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c: { name: string }) => c.name);
  if (!requested) {
    const containers: Array<{ name: string }> = pod.spec?.containers ?? [];
    if (containers.length === 1) return containers[0]!.name;
    if (containers.length === 0) throw badRequest(`a container name must be specified for pod ${pod.metadata.name}`);
    throw badRequest(`a container name must be specified for pod ${pod.metadata.name}, choose one of: [${names.join(" ")}]`);
  }
  if (!names.includes(requested)) throw badRequest(`container ${requested} is not valid for pod ${pod.metadata.name}`);
  return requested;
}

function nonNegativeInt(url: URL, param: string, min: number): number | undefined {
  const raw = url.searchParams.get(param);
  if (raw === null || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw badRequest(`${param}: invalid value "${raw}": must be an integer`);
  if (n < min) throw invalid("PodLogOptions", "", param, `Invalid value: ${n}: must be greater than or equal to ${min}`);
  return n;
}

function logOptions(url: URL, pod: KubeObject, name: string): LogOptions {
  const sinceSeconds = nonNegativeInt(url, "sinceSeconds", 1);
  const sinceTime = url.searchParams.get("sinceTime");
  if (sinceSeconds !== undefined && sinceTime)
    throw invalid("PodLogOptions", name, "sinceTime", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified");
  let sinceMs: number | undefined;
  if (sinceTime) {
    sinceMs = Date.parse(sinceTime);
    if (!Number.isFinite(sinceMs)) throw badRequest(`sinceTime: invalid value "${sinceTime}": must be an RFC 3339 time`);
  } else if (sinceSeconds !== undefined) {
    sinceMs = Date.now() - sinceSeconds * 1000;
  }
  return {
    container: containerOf(pod, url.searchParams.get("container")),
    follow: isTrue(url.searchParams.get("follow")),
    previous: isTrue(url.searchParams.get("previous")),
    timestamps: isTrue(url.searchParams.get("timestamps")),
    tailLines: nonNegativeInt(url, "tailLines", 0),
    sinceMs,
    limitBytes: nonNegativeInt(url, "limitBytes", 1),
  };
}

function processOptions(url: URL, pod: KubeObject, target: StreamTarget): ProcessOptions {
  const q = url.searchParams;
  const tty = isTrue(q.get("tty"));
  const opts: ProcessOptions = {
    container: containerOf(pod, q.get("container")),
    command: target.subresource === "exec" ? q.getAll("command") : [],
    stdin: isTrue(q.get("stdin")),
    stdout: isTrue(q.get("stdout")),
    // As the kubelet: a TTY merges stderr into stdout.
    stderr: isTrue(q.get("stderr")) && !tty,
    tty,
  };
  if (!opts.stdin && !opts.stdout && !isTrue(q.get("stderr"))) throw badRequest("you must specify at least 1 of stdin, stdout, stderr");
  if (target.subresource === "exec" && opts.command.length === 0) throw badRequest("you must specify at least one command for the container");
  return opts;
}

/** The ports of a WebSocket port-forward: `ports` (the API's name) or `port` (the kubelet's), repeated or comma-separated. */
function forwardPorts(url: URL): number[] {
  const raw = [...url.searchParams.getAll("ports"), ...url.searchParams.getAll("port")];
  if (raw.length === 0) throw badRequest(`query parameter "port" is required`);
  const ports: number[] = [];
  for (const value of raw.flatMap((r) => r.split(","))) {
    const port = Number(value);
    if (!/^\d+$/.test(value) || port < 1 || port > 65535) throw badRequest(`unable to parse "${value}" as a port: must be 1-65535`);
    ports.push(port);
  }
  if (ports.length > 64) throw badRequest("at most 64 ports can be forwarded over one connection");
  return ports;
}

/** A WebSocket as a byte stream: each write one binary message, each message's bytes read in order. */
function webSocketDuplex(ws: WebSocket): Duplex {
  const stream = createWebSocketStream(ws);
  // A broken tunnel ends the SPDY connection on it; the error itself needs no handler beyond that.
  stream.on("error", () => stream.destroy());
  return stream;
}
