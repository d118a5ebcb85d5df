// HBONE server: terminates mTLS for a destination workload, answers CONNECT streams like ztunnel, pipes bytes.
import http2 from "node:http2";
import type net from "node:net";
import type tls from "node:tls";
import type { Logger } from "pino";
import { type Credentials, type SpiffeId, formatSpiffeId, spiffeIdFromCertificate } from "../identity/index.ts";
import { type RelayCounts, relay } from "../relay/index.ts";
import type { HboneConnectionInfo } from "../../contract/agent-admin.ts";
import { HBONE_SETTINGS, parseAuthority } from "./protocol.ts";
import { TrackedConnection, type TrackedStream } from "./tracking.ts";

export interface StreamTarget {
  ip: string;
  port: number;
}

export type Authorization = { allow: true } | { allow: false; reason: string };

/** One tunnelled connection, reported when it opens and when it closes (bytes are from the client's view). */
export interface StreamEvent {
  phase: "open" | "close";
  source: SpiffeId;
  destination: StreamTarget;
  /** The client's address as policy saw it (the connection's peer address; see `sourceAddress`). */
  sourceAddress?: string;
  status: number;
  /** Set when the stream was refused before policy ran, saying which check refused it. */
  refused?: StreamRefusal;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  error?: string;
}

/** Checks that refuse a stream with 400 before policy runs (counted apart from policy denials). */
export type StreamRefusal = "source_address" | "agent_port";

/** Where a stream's client is, or why the address it claims cannot be believed. */
export type SourceAddressResult = { address: string | undefined } | { refused: string };

export interface HboneServerOptions {
  /** Roots clients must chain to; a function is asked again whenever a TLS server is set up (root rotation). */
  trustBundlePem: string | (() => string);
  /** L4 policy of the destination: decides on every new stream. */
  authorize(request: { source: SpiffeId; destination: StreamTarget; sourceAddress?: string }): Authorization;
  /**
   * The client's address for policy (ipBlocks), from the connection's peer address and the address a `forwarded`
   * header claims. Default: the peer address; a claim of any other address is refused, since a certificate
   * holder could otherwise pass ipBlocks rules by naming someone else's address.
   */
  sourceAddress?(peer: SpiffeId, peerAddress: string | undefined, claimed: string | undefined): SourceAddressResult;
  /** A destination the server must not connect to (e.g. the agent's own in-pod ports): the reason, answered 400. */
  refuseDestination?(destination: StreamTarget): string | undefined;
  /** Opens the connection to the destination application (the agent decides how: marked socket in the pod's netns). */
  connectUpstream(destination: StreamTarget): Promise<net.Socket>;
  onStream?(event: StreamEvent): void;
  log: Logger;
}

/** Who a tunnel connects, and since when: what revocation matches on and what its events report. */
interface TunnelEnds {
  source: SpiffeId;
  destination: StreamTarget;
  sourceAddress: string | undefined;
  started: number;
}

/** The default source-address rule: the peer address, and no claim of another one. */
export function peerAddressOnly(_peer: SpiffeId, peerAddress: string | undefined, claimed: string | undefined): SourceAddressResult {
  if (claimed !== undefined && claimed !== peerAddress)
    return {
      refused: `the client claims source address ${claimed} but connects from ${peerAddress ?? "an unknown address"}; only a waypoint may forward for another address`,
    };
  return { address: peerAddress };
}

const NO_BYTES = { sent: 0, received: 0 };

/** Closing the stream as CONNECT_ERROR tells the client the upstream failed (the relay would only cancel it). */
function closeOnUpstreamError(stream: http2.ServerHttp2Stream, upstream: net.Socket): void {
  upstream.on("error", () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
}

/**
 * An established tunnel: its relay, and a close that a policy change can call. Held for every open tunnel,
 * so it keeps only what its close needs.
 */
class Tunnel {
  readonly ends: TunnelEnds;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #upstream: net.Socket;
  readonly #ended: (tunnel: Tunnel, status: number, counts: RelayCounts, error?: string) => void;
  readonly #counts: RelayCounts;
  /** Its connection's record and its own entry there (the admin API's view; the relay's counts are its bytes). */
  readonly connection: TrackedConnection | undefined;
  readonly tracked: TrackedStream;
  #closed = false;

  constructor(
    ends: TunnelEnds,
    stream: http2.ServerHttp2Stream,
    upstream: net.Socket,
    tracking: { connection: TrackedConnection | undefined; destination: SpiffeId | undefined },
    ended: (tunnel: Tunnel, status: number, counts: RelayCounts, error?: string) => void,
  ) {
    this.ends = ends;
    this.#stream = stream;
    this.#upstream = upstream;
    this.#ended = ended;
    this.#counts = relay(stream, upstream, (c) => this.#end(200, c, c.error));
    this.connection = tracking.connection;
    this.tracked = { source: ends.source, destination: tracking.destination, target: ends.destination, opened: Date.now(), counts: this.#counts };
    this.connection?.openStream(this.tracked);
  }

  /** Closes the tunnel on the agent's own decision (policy now denies it); reported as 401 with the reason. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#end(401, this.#counts, reason);
    this.#upstream.destroy();
    this.#stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  #end(status: number, counts: RelayCounts, error: string | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended(this, status, counts, error);
  }
}

export class HboneServer {
  readonly #opts: HboneServerOptions;
  /** One TLS+h2 server per set of credentials (a workload's certificate) and trust bundle; rotation makes a new one. */
  readonly #servers = new WeakMap<Credentials, { server: http2.Http2SecureServer; bundle: string }>();
  readonly #all = new Set<http2.Http2SecureServer>();
  readonly #sockets = new Set<tls.TLSSocket>();
  readonly #peers = new WeakMap<http2.Http2Session, SpiffeId>();
  /** Live sessions, each with what the admin API shows of its connection. */
  readonly #sessions = new Map<http2.ServerHttp2Session, TrackedConnection>();
  /** The identity this agent presented on each session (the destination workload's), read once. */
  readonly #locals = new WeakMap<http2.Http2Session, SpiffeId>();
  /** Highest stream id each session has handed to us: what a draining GOAWAY names as processed. */
  readonly #lastStreamId = new WeakMap<http2.Http2Session, number>();
  /** Established tunnels, so a policy change can close the ones it newly denies. */
  readonly #tunnels = new Set<Tunnel>();
  #activeStreams = 0;
  #draining = false;

  constructor(opts: HboneServerOptions) {
    this.#opts = opts;
  }

  #serverFor(credentials: Credentials): http2.Http2SecureServer {
    const bundle = typeof this.#opts.trustBundlePem === "function" ? this.#opts.trustBundlePem() : this.#opts.trustBundlePem;
    const existing = this.#servers.get(credentials);
    if (existing?.bundle === bundle) return existing.server;
    const server = http2.createSecureServer({
      cert: credentials.certChainPem,
      key: credentials.keyPem,
      ca: bundle,
      minVersion: "TLSv1.3",
      requestCert: true,
      rejectUnauthorized: true,
      settings: HBONE_SETTINGS.settings,
      maxSessionMemory: 64,
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    server.on("tlsClientError", (err, socket) => {
      this.#opts.log.debug({ remote: socket.remoteAddress, reason: err.message }, "HBONE connection refused");
      socket.destroy();
    });
    server.on("session", (session) => {
      if (this.#draining) {
        session.close();
        return;
      }
      this.#sessions.set(session, new TrackedConnection("inbound", session.socket as tls.TLSSocket));
      session.once("close", () => this.#sessions.delete(session));
      session.on("connect", () => session.setLocalWindowSize(HBONE_SETTINGS.connectionWindow));
      session.on("error", () => session.destroy());
    });
    server.on("stream", (stream, headers) => {
      const session = stream.session;
      if (session && stream.id !== undefined) this.#lastStreamId.set(session, Math.max(stream.id, this.#lastStreamId.get(session) ?? 0));
      this.#onStream(stream, headers).catch((err: unknown) => {
        // Nothing a peer sends may take the agent down: answer if still possible, else reset the stream.
        this.#opts.log.warn({ err: String(err) }, "HBONE stream handler failed");
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
    });
    this.#servers.set(credentials, { server, bundle });
    this.#all.add(server);
    return server;
  }

  /**
   * Serves one accepted TCP connection, presenting `credentials`: the certificate of the destination
   * workload, chosen by the listener the connection arrived on (each captured pod has its own). Clients
   * need a certificate of the trust bundle (checked by TLS) carrying a SPIFFE ID (checked per session).
   */
  acceptConnection(socket: net.Socket, credentials: Credentials): void {
    // The in-pod listeners accept half-open sockets (plaintext proxying needs it); under TLS a peer's FIN
    // means it is gone, and a half-open socket would keep its session (and memory) forever.
    socket.allowHalfOpen = false;
    this.#serverFor(credentials).emit("connection", socket);
  }

  /** The client's SPIFFE ID for a session, read once from its certificate; undefined when it has none. */
  #peerOf(session: http2.ServerHttp2Session | undefined): SpiffeId | undefined {
    // A session torn down while its streams are still being dispatched has no socket left to ask.
    if (!session || session.destroyed) return undefined;
    let peer = this.#peers.get(session);
    if (peer) return peer;
    try {
      const cert = (session.socket as tls.TLSSocket).getPeerX509Certificate();
      if (!cert) return undefined;
      peer = spiffeIdFromCertificate(cert);
    } catch (err) {
      this.#opts.log.debug({ reason: (err as Error).message }, "HBONE client certificate has no valid SPIFFE ID");
      return undefined;
    }
    this.#peers.set(session, peer);
    return peer;
  }

  /** The identity this agent presented on a session (its certificate's), read once; undefined when unreadable. */
  #localOf(session: http2.ServerHttp2Session | undefined): SpiffeId | undefined {
    if (!session || session.destroyed) return undefined;
    let local = this.#locals.get(session);
    if (local) return local;
    try {
      const cert = (session.socket as tls.TLSSocket).getX509Certificate();
      if (!cert) return undefined;
      local = spiffeIdFromCertificate(cert);
    } catch {
      return undefined;
    }
    this.#locals.set(session, local);
    return local;
  }

  async #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    const started = performance.now();
    this.#watchStream(stream);
    const session = stream.session as http2.ServerHttp2Session | undefined;
    const source = this.#peerOf(session);
    const reply = (status: number, reason?: string) => {
      if (stream.destroyed) return;
      stream.respond({ ":status": status, ...(reason ? { "x-ambit-reason": reason } : {}) }, { endStream: true });
    };
    if (!source) return reply(401, "unauthenticated peer");
    if (headers[":method"] !== "CONNECT") return reply(400, "HBONE accepts only CONNECT");
    const destination = parseAuthority(headers[":authority"]);
    if (!destination) return reply(400, "authority must be <ipv4>:<port>");
    const claimed = /for="?([^";,]+)"?/.exec(String(headers.forwarded ?? ""))?.[1];
    const peerAddress = session?.socket?.remoteAddress?.replace(/^::ffff:/, "");
    const origin = (this.#opts.sourceAddress ?? peerAddressOnly)(source, peerAddress, claimed);
    let refusal: { kind: StreamRefusal; reason: string } | undefined;
    if ("refused" in origin) refusal = { kind: "source_address", reason: origin.refused };
    else {
      const reason = this.#opts.refuseDestination?.(destination);
      if (reason) refusal = { kind: "agent_port", reason };
    }
    const seen: TunnelEnds = { source, destination, sourceAddress: "address" in origin ? origin.address : peerAddress, started };
    if (refusal) {
      this.#opts.log.warn({ source: formatSpiffeId(source), peerAddress, claimed, destination, reason: refusal.reason }, "HBONE stream refused");
      this.#report("close", seen, 400, NO_BYTES, refusal.reason, refusal.kind);
      return reply(400, refusal.reason);
    }

    const decision = this.#opts.authorize({ source, destination, ...(seen.sourceAddress ? { sourceAddress: seen.sourceAddress } : {}) });
    if (!decision.allow) {
      this.#opts.log.info({ source: formatSpiffeId(source), destination, reason: decision.reason }, "connection denied by policy");
      this.#report("close", seen, 401, NO_BYTES, decision.reason);
      return reply(401, decision.reason);
    }
    let upstream: net.Socket;
    try {
      upstream = await this.#opts.connectUpstream(destination);
    } catch (err) {
      this.#report("close", seen, 503, NO_BYTES, (err as Error).message);
      return reply(503, `upstream ${destination.ip}:${destination.port} unreachable: ${(err as Error).message}`);
    }
    if (stream.destroyed) {
      upstream.destroy();
      return;
    }
    stream.respond({ ":status": 200 });
    this.#report("open", seen, 200, NO_BYTES);
    closeOnUpstreamError(stream, upstream);
    const tracking = { connection: session ? this.#sessions.get(session) : undefined, destination: this.#localOf(session) };
    this.#tunnels.add(new Tunnel(seen, stream, upstream, tracking, this.#tunnelEnded));
  }

  /**
   * Stream bookkeeping, registered from a method of its own so the listeners hold only the server: closures
   * made in `#onStream` would keep its whole scope (headers, addresses, helpers) for the life of the tunnel.
   */
  #watchStream(stream: http2.ServerHttp2Stream): void {
    this.#activeStreams++;
    stream.once("close", () => this.#activeStreams--);
    // A session-level failure is emitted on every open stream, including ones still waiting for their upstream:
    // without a listener from the first moment it would be an uncaught error and take the whole agent down.
    stream.on("error", (err) => this.#opts.log.debug({ err: err.message }, "HBONE stream error"));
  }

  /** Shared by every tunnel (one function, not one per tunnel): forget it and report its close. */
  readonly #tunnelEnded = (tunnel: Tunnel, status: number, counts: RelayCounts, error?: string): void => {
    this.#tunnels.delete(tunnel);
    tunnel.connection?.closeStream(tunnel.tracked);
    this.#report("close", tunnel.ends, status, { sent: counts.bToA, received: counts.aToB }, error);
  };

  #report(phase: "open" | "close", t: TunnelEnds, status: number, bytes: { sent: number; received: number }, error?: string, refused?: StreamRefusal): void {
    this.#opts.onStream?.({
      phase,
      source: t.source,
      destination: t.destination,
      ...(t.sourceAddress ? { sourceAddress: t.sourceAddress } : {}),
      status,
      ...(refused ? { refused } : {}),
      bytesSent: bytes.sent,
      bytesReceived: bytes.received,
      durationMs: performance.now() - t.started,
      ...(error ? { error } : {}),
    });
  }

  /**
   * Closes every established tunnel for which `deniedReason` names a reason (a policy change now denies it);
   * its close event carries status 401 and that reason. Returns how many were closed.
   */
  revoke(deniedReason: (tunnel: Pick<TunnelEnds, "source" | "destination" | "sourceAddress">) => string | undefined): number {
    let closed = 0;
    for (const tunnel of [...this.#tunnels]) {
      const reason = deniedReason(tunnel.ends);
      if (reason === undefined) continue;
      tunnel.close(reason);
      closed++;
    }
    return closed;
  }

  /** Live TLS connections (for metrics). */
  get connectionCount(): number {
    return this.#sockets.size;
  }

  /** Tunnelled connections in flight. */
  get activeStreams(): number {
    return this.#activeStreams;
  }

  /**
   * Restart, first step: GOAWAY on every session naming the last stream this agent took, so peers open their
   * next streams elsewhere (the new agent) while the streams in flight run to completion. A stream crossing
   * the GOAWAY on the wire is above that id: the peer refuses it itself and sends it again elsewhere. The
   * sockets stay open until `closeSessions()`: an agent that exits at once resets them, and a peer that has
   * not read the GOAWAY yet then loses the crossing stream (one failed request per restart under load).
   * (Node stops reading a session that sent GOAWAY and has no stream left, so the peer's own close is not seen.)
   */
  drain(): void {
    this.#draining = true;
    for (const session of this.#sessions.keys()) {
      if (!session.closed && !session.destroyed) session.goaway(http2.constants.NGHTTP2_NO_ERROR, this.#lastStreamId.get(session) ?? 0);
    }
  }

  /** Restart, last step: closes the sessions peers have not closed themselves, once their streams end. */
  closeSessions(): void {
    for (const session of this.#sessions.keys()) session.close();
  }

  /** Every live inbound connection, for the admin API. */
  connections(withStreams = true): HboneConnectionInfo[] {
    const now = Date.now();
    return [...this.#sessions.values()].map((c) => c.snapshot(now, withStreams));
  }

  /** Sessions still open. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  close(): void {
    for (const s of this.#sockets) s.destroy();
    for (const server of this.#all) server.close();
    this.#all.clear();
  }
}
