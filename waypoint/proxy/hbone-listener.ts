// Terminates HBONE for the waypoint: mTLS with its own certificate, CONNECT streams handed on with the client's proven identity.
import http2 from "node:http2";
import type net from "node:net";
import type tls from "node:tls";
import type { Logger } from "pino";
import { HBONE_SETTINGS, parseAuthority } from "../../agent/hbone/index.ts";
import { type Credentials, type SpiffeId, spiffeIdFromCertificate } from "../../agent/identity/index.ts";

/**
 * One accepted stream: who sent it (their certificate), from where, and what they dialled. A CONNECT stream for the
 * waypoint and a sidecar's inbound; a sidecar's outbound passes the app's own captured socket, its pod as the source.
 */
export interface ConnectStream {
  stream: http2.ServerHttp2Stream | net.Socket;
  source: SpiffeId;
  sourceAddress: string | undefined;
  target: { ip: string; port: number };
}

/**
 * Whether a target is served to this peer: undefined to accept, else the reason answered with 400, or a status and
 * reason (a sidecar's policy refusal: 401 without mTLS proof it accepts, 403 denied).
 */
export type AcceptTarget = (
  target: { ip: string; port: number },
  peer: { source: SpiffeId; sourceAddress: string | undefined },
) => string | { status: number; reason: string } | undefined;

/**
 * The agent's HboneServer relays every stream to a socket it opens; the waypoint instead serves HTTP on the stream
 * itself, so it needs the stream and the peer's identity together. The TLS and CONNECT checks are the same.
 */
export class WaypointHboneListener {
  readonly #server: http2.Http2SecureServer;
  readonly #sockets = new Set<net.Socket>();
  /** Sessions, so drain() can send each its GOAWAY. */
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  /** Streams being served, so recheck() can close those a new policy refuses. */
  readonly #live = new Set<ConnectStream>();

  constructor(opts: { credentials: Credentials; trustBundlePem: string; accept: AcceptTarget; onStream(connect: ConnectStream): void; log: Logger }) {
    this.#server = http2.createSecureServer({
      cert: opts.credentials.certChainPem,
      key: opts.credentials.keyPem,
      ca: opts.trustBundlePem,
      minVersion: "TLSv1.3",
      requestCert: true,
      rejectUnauthorized: true,
      settings: HBONE_SETTINGS.settings,
    });
    this.#server.on("tlsClientError", (err, socket) => {
      opts.log.debug({ remote: socket.remoteAddress, reason: err.message }, "HBONE connection refused");
      socket.destroy();
    });
    this.#server.on("session", (session) => {
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
      session.on("connect", () => session.setLocalWindowSize(HBONE_SETTINGS.connectionWindow));
      session.on("error", () => session.destroy());
    });
    this.#server.on("stream", (stream, headers) => {
      // A session failure is emitted on every stream: without a listener it would take the waypoint down.
      stream.on("error", (err) => opts.log.debug({ err: err.message }, "HBONE stream error"));
      const reply = (status: number, reason: string) => stream.respond({ ":status": status, "x-ambit-reason": reason }, { endStream: true });
      const socket = stream.session?.socket as tls.TLSSocket | undefined;
      let source: SpiffeId;
      try {
        const cert = socket?.getPeerX509Certificate();
        if (!cert) return reply(401, "unauthenticated peer");
        source = spiffeIdFromCertificate(cert);
      } catch (err) {
        return reply(401, `client certificate has no valid SPIFFE ID: ${(err as Error).message}`);
      }
      if (headers[":method"] !== "CONNECT") return reply(400, "HBONE accepts only CONNECT");
      const target = parseAuthority(headers[":authority"]);
      if (!target) return reply(400, "authority must be <ipv4>:<port>");
      const sourceAddress = socket?.remoteAddress?.replace(/^::ffff:/, "");
      const refused = opts.accept(target, { source, sourceAddress });
      if (typeof refused === "string") return reply(400, refused);
      if (refused) return reply(refused.status, refused.reason);
      stream.respond({ ":status": 200 });
      const connect: ConnectStream = { stream, source, sourceAddress, target };
      this.#live.add(connect);
      stream.once("close", () => this.#live.delete(connect));
      opts.onStream(connect);
    });
  }

  /** Serves one accepted TCP connection (from the waypoint's listener on 15008, or a test's). */
  acceptConnection(socket: net.Socket): void {
    socket.allowHalfOpen = false;
    // Each write goes out at once (TCP_NODELAY), as on the agents' sockets (agent/inpod/driver.ts says why).
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    this.#server.emit("connection", socket);
  }

  /** New certificate or roots (renewal at half life, root rotation): connections made from now on use them. */
  updateCredentials(credentials: Credentials, trustBundlePem: string): void {
    this.#server.setSecureContext({ cert: credentials.certChainPem, key: credentials.keyPem, ca: trustBundlePem });
  }

  /**
   * Asks `accept` again for every stream being served and closes those it now refuses (a policy change applies to
   * connections already open, as the agent's does). Returns how many were closed.
   */
  recheck(accept: AcceptTarget): number {
    let closed = 0;
    for (const c of this.#live) {
      if (accept(c.target, { source: c.source, sourceAddress: c.sourceAddress }) === undefined) continue;
      this.#live.delete(c);
      (c.stream as http2.ServerHttp2Stream).close(http2.constants.NGHTTP2_CANCEL);
      closed++;
    }
    return closed;
  }

  /** Open client connections (each an HBONE session). */
  get connections(): number {
    return this.#sockets.size;
  }

  /**
   * Asks every client to stop sending new streams (HTTP/2 GOAWAY) and resolves once their connections have closed or
   * `deadlineMs` has passed, whichever comes first; what is left is then cut. Streams already open may finish.
   */
  async drain(deadlineMs: number): Promise<number> {
    for (const session of this.#sessions) session.close();
    const end = Date.now() + deadlineMs;
    while (this.#sessions.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, Math.min(100, end - Date.now())));
    const cut = this.#sessions.size;
    this.close();
    return cut;
  }

  close(): void {
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
  }
}
