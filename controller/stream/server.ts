// Config stream server: pushes each connected agent (or waypoint) a snapshot, then debounced deltas of its own view, over mTLS HTTP/2.
import { type X509Certificate, randomUUID } from "node:crypto";
import http2 from "node:http2";
import type net from "node:net";
import type tls from "node:tls";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import {
  type AgentMessage,
  CONFIG_STREAM_PATH,
  ConfigStreamError,
  ConfigStreamErrorCode,
  NDJSON_CONTENT_TYPE,
  NdjsonLineSplitter,
  type Resource,
  type ServerMessage,
  encodeMessage,
  parseAgentMessage,
} from "../../contract/stream.ts";
import { type WaypointRef, waypointKey } from "../../contract/waypoint.ts";
import { NodeView } from "./view.ts";

export interface AuthenticationRequest {
  /** The verified client certificate (the TLS layer already checked it chains to the trust bundle). */
  peerCertificate: X509Certificate | undefined;
  headers: http2.IncomingHttpHeaders;
  remoteAddress: string | undefined;
}

/**
 * Whose view the caller gets: a node's (an agent) or a waypoint's. `status` defaults to 401; use 403 for a caller that
 * is known but not allowed.
 */
export type AuthenticationResult = { node: string } | { waypoint: WaypointRef } | { sidecar: SidecarRef } | { error: string; status?: 401 | 403 };

/** A pod that runs Ambit's sidecar: it gets its own view (its policies, every route), named `<namespace>/<pod>` in its hello. */
export interface SidecarRef {
  namespace: string;
  pod: string;
}

/** Who holds a config stream. */
export type SubscriberKind = "agent" | "waypoint" | "sidecar";

export interface ConfigStreamServerOptions {
  /** The controller's serving certificate chain and key (PEM). */
  credentials: { certChainPem: string; keyPem: string };
  /** CA bundle (PEM) agent client certificates must chain to. */
  trustBundlePem: string;
  /** Decides which node the caller is, from its certificate and headers (the controller checks a bearer token). */
  authenticate(req: AuthenticationRequest): Promise<AuthenticationResult>;
  /** Everything `node` should hold, keyed by `type/key`; called only for nodes with a connected agent. */
  viewFor(node: string): ReadonlyMap<string, Resource>;
  /** Everything a waypoint should hold; called only for waypoints that are connected. Absent: waypoints are refused. */
  waypointViewFor?(waypoint: WaypointRef): ReadonlyMap<string, Resource>;
  /** Everything a sidecar should hold; called only for sidecars that are connected. Absent: sidecars are refused. */
  sidecarViewFor?(sidecar: SidecarRef): ReadonlyMap<string, Resource>;
  log: Logger;
  registry: Registry;
  /** Longest a change waits before it is pushed; changes within the window share one recomputation. Default 100. */
  debounceMs?: number;
  /** Interval of NDJSON pings and HTTP/2 PINGs; a connection whose PING is unanswered for this long is dropped. Default 15,000. */
  heartbeatMs?: number;
  /** How long an accepted stream may take to send its hello. Default 10,000. */
  helloTimeoutMs?: number;
  /** Per node, deltas kept for resumption: at most this many versions... Default 100. */
  historyVersions?: number;
  /** ...touching at most this many resources in total; beyond that a snapshot is as cheap. Default 10,000. */
  historyResources?: number;
}

export interface AgentConnectionStatus {
  /** An agent's node, or a waypoint's Gateway as `<namespace>/<name>` (what its hello named). */
  node: string;
  kind: SubscriberKind;
  id: string;
  remoteAddress: string | undefined;
  connectedSince: string;
  lastSentVersion: number;
  lastAckedVersion: number | undefined;
  /** Versions sent but not (yet) acknowledged. */
  lag: number;
  lastNack?: { version: number; error: string };
}

interface AgentConnection {
  id: string;
  node: string;
  kind: SubscriberKind;
  stream: http2.ServerHttp2Stream;
  remoteAddress: string | undefined;
  connectedSince: Date;
  lastSentVersion: number;
  lastAckedVersion: number | undefined;
  lastNack?: { version: number; error: string };
}

/** One subscriber's view (a node's or a waypoint's), shared by its connections. */
interface NodeState {
  kind: SubscriberKind;
  compute(): ReadonlyMap<string, Resource>;
  view: NodeView;
  connections: Set<AgentConnection>;
}

/** Agents send only small control messages; a longer line is hostile or broken. */
const MAX_AGENT_LINE_BYTES = 64 * 1024;

export class ConfigStreamServer {
  readonly #opts: Required<Omit<ConfigStreamServerOptions, "waypointViewFor" | "sidecarViewFor">> &
    Pick<ConfigStreamServerOptions, "waypointViewFor" | "sidecarViewFor">;
  /** Names this process's version history: an agent holding another epoch's version gets a snapshot. */
  readonly epoch = randomUUID();
  readonly #server: http2.Http2SecureServer;
  /** By node name; waypoints by `waypoint:<namespace>/<name>`, sidecars by `sidecar:<namespace>/<pod>` (a node name holds no ':'). */
  readonly #nodes = new Map<string, NodeState>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #sockets = new Set<tls.TLSSocket>();
  #debounce: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closing = false;
  readonly #pushes: Counter<"type">;
  readonly #pushBytes: Counter;
  readonly #connectedAgents: Gauge;

  constructor(opts: ConfigStreamServerOptions) {
    this.#opts = { debounceMs: 100, heartbeatMs: 15_000, helloTimeoutMs: 10_000, historyVersions: 100, historyResources: 10_000, ...opts };
    const registers = [opts.registry];
    this.#pushes = new Counter({
      name: "ambit_config_pushes_total",
      help: "Config messages pushed to agents, by type (snapshot or delta)",
      labelNames: ["type"],
      registers,
    });
    this.#pushBytes = new Counter({ name: "ambit_config_push_bytes_total", help: "Bytes of config snapshots and deltas pushed to agents", registers });
    this.#connectedAgents = new Gauge({ name: "ambit_config_connected_agents", help: "Agents holding an open config stream", registers });
    this.#server = http2.createSecureServer({
      cert: opts.credentials.certChainPem,
      key: opts.credentials.keyPem,
      ca: opts.trustBundlePem,
      minVersion: "TLSv1.3",
      ALPNProtocols: ["h2"],
      requestCert: true,
      rejectUnauthorized: true,
    });
    this.#server.on("secureConnection", (socket: tls.TLSSocket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    this.#server.on("tlsClientError", (err, socket) => {
      this.#opts.log.debug({ remote: socket.remoteAddress, reason: err.message }, "config stream TLS handshake refused");
      socket.destroy();
    });
    this.#server.on("session", (session) => {
      if (this.#closing) return void session.destroy();
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
      // An unanswered session error would crash the process; the stream handlers already clean up.
      session.on("error", (err) => this.#opts.log.debug({ err }, "config stream session error"));
    });
    // #accept answers refused and malformed streams itself; what else fails (attaching the agent) closes its stream only.
    this.#server.on("stream", (stream, headers) => {
      this.#accept(stream, headers).catch((err: unknown) => {
        this.#opts.log.error({ err }, "config stream: accepting an agent failed");
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
    });
  }

  /** New serving certificate or trust bundle (root rotation): used for new connections; open streams continue. */
  setCredentials(credentials: { certChainPem: string; keyPem: string }, trustBundlePem: string): void {
    this.#server.setSecureContext({ cert: credentials.certChainPem, key: credentials.keyPem, ca: trustBundlePem, minVersion: "TLSv1.3" });
  }

  async listen(port: number, host = "0.0.0.0"): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    this.#heartbeat = setInterval(() => this.#sendHeartbeats(), this.#opts.heartbeatMs);
    this.#heartbeat.unref();
    return this.#server.address() as net.AddressInfo;
  }

  /**
   * Something in the cluster changed. The first call in a quiet period starts a timer of `debounceMs`; every
   * call until it fires shares that one recomputation, so a burst costs one push per node and a continuous
   * stream of changes still gets pushed every `debounceMs`.
   */
  changed(): void {
    if (this.#debounce || this.#closing) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      for (const state of this.#nodes.values()) if (state.connections.size > 0) this.#recompute(state);
    }, this.#opts.debounceMs);
  }

  status(): AgentConnectionStatus[] {
    const out: AgentConnectionStatus[] = [];
    for (const state of this.#nodes.values()) {
      for (const c of state.connections) {
        out.push({
          node: c.node,
          kind: c.kind,
          id: c.id,
          remoteAddress: c.remoteAddress,
          connectedSince: c.connectedSince.toISOString(),
          lastSentVersion: c.lastSentVersion,
          lastAckedVersion: c.lastAckedVersion,
          lag: c.lastSentVersion - (c.lastAckedVersion ?? 0),
          ...(c.lastNack ? { lastNack: c.lastNack } : {}),
        });
      }
    }
    return out.sort((a, b) => a.node.localeCompare(b.node) || a.connectedSince.localeCompare(b.connectedSince));
  }

  /** Ends every stream (agents reconnect, to another replica or to this one restarted) and stops listening. */
  async close(): Promise<void> {
    // A change still waiting out the debounce is pushed now: agents keep serving from what they hold while no
    // replica is up, so they must not be left one change behind.
    if (this.#debounce) {
      clearTimeout(this.#debounce);
      this.#debounce = undefined;
      for (const state of this.#nodes.values()) if (state.connections.size > 0) this.#recompute(state);
    }
    this.#closing = true;
    clearInterval(this.#heartbeat);
    for (const state of this.#nodes.values()) for (const c of state.connections) c.stream.end();
    for (const session of this.#sessions) session.close();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Sessions whose peer never answers the GOAWAY would hold close() forever.
    const grace = setTimeout(() => {
      for (const socket of this.#sockets) socket.destroy();
    }, 1_000);
    await closed;
    clearTimeout(grace);
  }

  async #accept(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    stream.on("error", (err) => this.#opts.log.debug({ err }, "config stream error"));
    if (headers[":path"] !== CONFIG_STREAM_PATH || headers[":method"] !== "POST") {
      return this.#refuse(stream, 404, ConfigStreamErrorCode.notFound, `only POST ${CONFIG_STREAM_PATH} is served here`);
    }
    const socket = stream.session?.socket as tls.TLSSocket | undefined;
    const remoteAddress = socket?.remoteAddress;
    let auth: AuthenticationResult;
    try {
      auth = await this.#opts.authenticate({ peerCertificate: socket?.getPeerX509Certificate(), headers, remoteAddress });
    } catch (err) {
      this.#opts.log.warn({ err, remote: remoteAddress }, "config stream authentication failed");
      auth = { error: `authentication failed: ${(err as Error).message}` };
    }
    if ("error" in auth) {
      const status = auth.status ?? 401;
      return this.#refuse(stream, status, status === 403 ? ConfigStreamErrorCode.forbidden : ConfigStreamErrorCode.unauthenticated, auth.error);
    }
    // A waypoint names its Gateway in hello's `node` field as <namespace>/<name>, a sidecar its pod: the protocol stays the agents'.
    const node = "node" in auth ? auth.node : "waypoint" in auth ? waypointKey(auth.waypoint) : `${auth.sidecar.namespace}/${auth.sidecar.pod}`;
    const kind: SubscriberKind = "node" in auth ? "agent" : "waypoint" in auth ? "waypoint" : "sidecar";
    if (kind === "waypoint" && !this.#opts.waypointViewFor)
      return this.#refuse(stream, 403, ConfigStreamErrorCode.forbidden, `this controller serves no waypoint views (waypoint ${node})`);
    if (kind === "sidecar" && !this.#opts.sidecarViewFor)
      return this.#refuse(stream, 403, ConfigStreamErrorCode.forbidden, `this controller serves no sidecar views (pod ${node})`);
    let hello: Extract<AgentMessage, { kind: "hello" }>;
    try {
      hello = await this.#readHello(stream);
    } catch (err) {
      const e = err as ConfigStreamError;
      return this.#refuse(stream, e.code === ConfigStreamErrorCode.helloTimeout ? 408 : 400, e.code ?? ConfigStreamErrorCode.protocol, e.message);
    }
    if (hello.node !== node) {
      return this.#refuse(
        stream,
        403,
        ConfigStreamErrorCode.forbidden,
        kind === "agent"
          ? `this agent authenticated as node "${node}" but asked for the config of node "${hello.node}"`
          : kind === "waypoint"
            ? `this waypoint authenticated as ${node} but asked for the config of "${hello.node}" (a waypoint's hello names its Gateway as <namespace>/<name>)`
            : `this sidecar authenticated as pod ${node} but asked for the config of "${hello.node}" (a sidecar's hello names its pod as <namespace>/<name>)`,
      );
    }
    if (this.#closing || stream.destroyed) return;
    const compute =
      "waypoint" in auth
        ? () => this.#opts.waypointViewFor!(auth.waypoint)
        : "sidecar" in auth
          ? () => this.#opts.sidecarViewFor!(auth.sidecar)
          : () => this.#opts.viewFor(node);
    this.#attach(stream, kind, node, compute, hello, remoteAddress);
  }

  #readHello(stream: http2.ServerHttp2Stream): Promise<Extract<AgentMessage, { kind: "hello" }>> {
    return new Promise((resolve, reject) => {
      const splitter = new NdjsonLineSplitter(MAX_AGENT_LINE_BYTES);
      const done = (err: Error | undefined, hello?: Extract<AgentMessage, { kind: "hello" }>) => {
        clearTimeout(timer);
        stream.off("data", onData).off("end", onEnd).pause();
        if (err) reject(err);
        else resolve(hello!);
      };
      const onData = (chunk: Buffer) => {
        try {
          const [first, ...rest] = splitter.push(chunk);
          if (first === undefined) return;
          const msg = parseAgentMessage(first);
          if (msg.kind !== "hello") throw new ConfigStreamError(ConfigStreamErrorCode.protocol, `the first message must be hello, got ${msg.kind}`);
          if (rest.length > 0) throw new ConfigStreamError(ConfigStreamErrorCode.protocol, "an agent must wait for the server's answer after hello");
          done(undefined, msg);
        } catch (err) {
          done(err as Error);
        }
      };
      const onEnd = () => done(new ConfigStreamError(ConfigStreamErrorCode.protocol, "the agent closed the stream before hello"));
      const timer = setTimeout(
        () => done(new ConfigStreamError(ConfigStreamErrorCode.helloTimeout, `no hello within ${this.#opts.helloTimeoutMs} ms`)),
        this.#opts.helloTimeoutMs,
      );
      stream.on("data", onData).once("end", onEnd);
    });
  }

  #refuse(stream: http2.ServerHttp2Stream, status: number, code: ConfigStreamErrorCode, message: string): void {
    this.#opts.log.info({ status, code, remote: stream.session?.socket?.remoteAddress }, `config stream refused: ${message}`);
    if (stream.destroyed || stream.headersSent) return;
    stream.respond({ ":status": status, "content-type": "application/json" });
    stream.end(JSON.stringify({ code, message }));
  }

  #attach(
    stream: http2.ServerHttp2Stream,
    kind: SubscriberKind,
    node: string,
    compute: () => ReadonlyMap<string, Resource>,
    hello: Extract<AgentMessage, { kind: "hello" }>,
    remoteAddress: string | undefined,
  ): void {
    const stateKey = kind === "agent" ? node : `${kind}:${node}`;
    let state = this.#nodes.get(stateKey);
    if (!state) {
      state = {
        kind,
        compute,
        view: new NodeView({ maxVersions: this.#opts.historyVersions, maxRefs: this.#opts.historyResources }),
        connections: new Set(),
      };
      this.#nodes.set(stateKey, state);
    }
    // Nodes without agents are not recomputed on changes, so catch up now; an existing agent gets this as a delta.
    this.#recompute(state);
    const conn: AgentConnection = {
      id: randomUUID(),
      node,
      kind,
      stream,
      remoteAddress,
      connectedSince: new Date(),
      lastSentVersion: 0,
      lastAckedVersion: undefined,
    };
    state.connections.add(conn);
    this.#connectedAgents.inc();
    stream.respond({ ":status": 200, "content-type": NDJSON_CONTENT_TYPE });

    const { view } = state;
    const resumed = hello.epoch === this.epoch && hello.version !== undefined && hello.version > 0 ? view.changesSince(hello.version) : undefined;
    if (resumed && hello.version === view.version) conn.lastSentVersion = conn.lastAckedVersion = view.version;
    else if (resumed) this.#send(conn, { kind: "delta", epoch: this.epoch, version: view.version, fromVersion: hello.version!, ...resumed });
    else this.#send(conn, { kind: "snapshot", epoch: this.epoch, version: view.version, resources: view.resources() });
    this.#opts.log.info(
      {
        [kind === "agent" ? "node" : kind]: node,
        connection: conn.id,
        remote: remoteAddress,
        version: view.version,
        resumedFrom: resumed ? hello.version : undefined,
      },
      `${kind} connected to the config stream`,
    );

    const splitter = new NdjsonLineSplitter(MAX_AGENT_LINE_BYTES);
    stream.on("data", (chunk: Buffer) => {
      try {
        for (const line of splitter.push(chunk)) this.#onAgentMessage(conn, parseAgentMessage(line));
      } catch (err) {
        this.#opts.log.warn({ err, node, connection: conn.id }, "config stream: bad message from agent, closing");
        stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      }
    });
    stream.resume();
    stream.once("close", () => {
      state.connections.delete(conn);
      this.#connectedAgents.dec();
      this.#opts.log.info(
        { node, connection: conn.id, lastSentVersion: conn.lastSentVersion, lastAckedVersion: conn.lastAckedVersion },
        "agent left the config stream",
      );
    });
  }

  #onAgentMessage(conn: AgentConnection, msg: AgentMessage): void {
    switch (msg.kind) {
      case "hello":
        throw new ConfigStreamError(ConfigStreamErrorCode.protocol, "hello may only be sent once per stream");
      case "ack":
        // Acks for versions never sent on this stream (or older than the last one) carry no information.
        if (msg.version <= conn.lastSentVersion && msg.version > (conn.lastAckedVersion ?? 0)) conn.lastAckedVersion = msg.version;
        return;
      case "nack":
        conn.lastNack = { version: msg.version, error: msg.error };
        this.#opts.log.warn(
          { node: conn.node, connection: conn.id, version: msg.version, reason: msg.error },
          "agent rejected a config version; it keeps its previous one",
        );
        return;
    }
  }

  #recompute(state: NodeState): void {
    const change = state.view.update(state.compute());
    if (!change || state.connections.size === 0) return;
    const { view } = state;
    const line = encodeMessage({ kind: "delta", epoch: this.epoch, version: view.version, fromVersion: view.version - 1, ...change });
    for (const conn of state.connections) this.#write(conn, "delta", view.version, line);
  }

  #send(conn: AgentConnection, msg: Extract<ServerMessage, { version: number }>): void {
    this.#write(conn, msg.kind, msg.version, encodeMessage(msg));
  }

  #write(conn: AgentConnection, type: "snapshot" | "delta", version: number, line: string): void {
    if (conn.stream.destroyed || conn.stream.closed) return;
    conn.stream.write(line);
    conn.lastSentVersion = version;
    this.#pushes.inc({ type });
    this.#pushBytes.inc(Buffer.byteLength(line));
  }

  #sendHeartbeats(): void {
    const ping = encodeMessage({ kind: "ping" });
    for (const state of this.#nodes.values()) for (const c of state.connections) if (!c.stream.destroyed) c.stream.write(ping);
    for (const session of this.#sessions) {
      if (session.destroyed || session.closed) continue;
      const timer = setTimeout(() => {
        this.#opts.log.info({ remote: session.socket?.remoteAddress }, "config stream peer did not answer a PING; dropping the connection");
        session.destroy();
      }, this.#opts.heartbeatMs);
      timer.unref();
      const sent = session.ping((err) => {
        clearTimeout(timer);
        if (err && !session.destroyed) session.destroy();
      });
      if (!sent) clearTimeout(timer);
    }
  }
}
