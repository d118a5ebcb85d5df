// HBONE client: pooled mTLS HTTP/2 connections per (source identity, destination identity, address), one stream per TCP connection.
import { X509Certificate } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import { type Credentials, type SpiffeId, formatSpiffeId, sameIdentity, spiffeIdFromCertificate } from "../identity/index.ts";
import type { HboneConnectionInfo } from "../../contract/agent-admin.ts";
import type { RelayCounts } from "../relay/index.ts";
import { HBONE_SETTINGS } from "./protocol.ts";
import { TrackedConnection, type TrackedStream } from "./tracking.ts";
import { AmbitError, type CodeOf } from "../../contract/errors.ts";
import type { HBONE_ERRORS } from "../../contract/error-codes.ts";

export class HboneError extends AmbitError<CodeOf<typeof HBONE_ERRORS>> {
  readonly status: number | undefined;
  /** The peer never processed the request (connection going away): sending it again is safe. */
  readonly retryable: boolean;
  /** Nothing listens on the HBONE port (the TCP connect was refused): the destination is not captured. */
  readonly connectRefused: boolean;
  constructor(code: CodeOf<typeof HBONE_ERRORS>, message: string, status?: number, retryable = false, connectRefused = false) {
    super(code, message);
    this.name = "HboneError";
    this.status = status;
    this.retryable = retryable;
    this.connectRefused = connectRefused;
  }
}

export interface HboneClientOptions {
  /** Certificate of the source workload; asked again for every new connection, so rotation needs nothing else. */
  getClientCredentials(source: SpiffeId): Credentials;
  /** Roots peers must chain to; a function is asked again for every new connection (root rotation). */
  trustBundlePem: string | (() => string);
  maxStreamsPerConnection?: number;
  idleTimeoutMs?: number;
  /** How to open the TCP connection (the agent uses marked sockets from the source pod's netns, so it leaves with the pod's address). */
  connect?(host: string, port: number, request: OpenStreamRequest): Promise<net.Socket>;
  connectTimeoutMs?: number;
}

export interface OpenStreamRequest {
  source: SpiffeId;
  destination: { ip: string; port: number };
  /** Where to dial: the destination pod's IP and 15008 (or a waypoint). */
  dial: { host: string; port: number };
  /**
   * The identity the control plane says the destination has; the server must present exactly this one. Absent
   * only for an address the agent does not know yet (a pod newer than its last config): any identity the trust
   * bundle vouches for is accepted then, and `peerOf` tells which one answered.
   */
  expectedIdentity?: SpiffeId;
  /** The source pod's address: connections are pooled per source pod, whose address the server sees as the peer's. */
  sourceAddress?: string;
  forwardedFor?: string;
}

interface PooledConnection {
  key: string;
  session: http2.ClientHttp2Session;
  /** The identity the server presented. */
  peer: SpiffeId;
  streams: number;
  idleTimer?: NodeJS.Timeout;
  /** Set once the peer sent GOAWAY: streams above this id were not processed by it. */
  goawayLastStreamId?: number;
  /** What the admin API shows of it. */
  tracked: TrackedConnection;
}

const defaultConnect = (host: string, port: number, timeoutMs: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });

const ignoreError = () => {};

export class HboneConnectionPool {
  readonly #opts: Required<Omit<HboneClientOptions, "connect">> & Pick<HboneClientOptions, "connect">;
  readonly #pool = new Map<string, PooledConnection[]>();
  /** Connections being opened, so concurrent first streams share one handshake. */
  readonly #opening = new Map<string, Promise<PooledConnection>>();
  /** Each open stream's record: which identity answered it (for streams opened without an expected identity), and its bytes. */
  readonly #streams = new WeakMap<Duplex, TrackedStream>();
  /** Every live connection, pooled or going away (the pool forgets those at GOAWAY, the admin API still shows them). */
  readonly #live = new Set<PooledConnection>();

  constructor(opts: HboneClientOptions) {
    this.#opts = { maxStreamsPerConnection: 100, idleTimeoutMs: 5 * 60_000, connectTimeoutMs: 5_000, ...opts };
  }

  /**
   * Opens a CONNECT stream on a pooled connection. A stream refused because its connection is going away (the
   * peer agent is restarting and sent GOAWAY) was never processed, so it is retried once on a fresh connection.
   */
  async openStream(req: OpenStreamRequest): Promise<Duplex> {
    try {
      return await this.#openStreamOnce(req);
    } catch (err) {
      if (!(err instanceof HboneError) || !err.retryable) throw err;
      return this.#openStreamOnce(req);
    }
  }

  async #openStreamOnce(req: OpenStreamRequest): Promise<Duplex> {
    const conn = await this.#reserveStream(req);
    const headers: http2.OutgoingHttpHeaders = { ":method": "CONNECT", ":authority": `${req.destination.ip}:${req.destination.port}` };
    if (req.forwardedFor) headers.forwarded = `for=${req.forwardedFor}`;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = conn.session.request(headers, { endStream: false });
    } catch (err) {
      this.#release(conn);
      this.#forget(conn);
      const goingAway = (err as { code?: string }).code === "ERR_HTTP2_GOAWAY_SESSION" || conn.session.closed || conn.session.destroyed;
      throw new HboneError(
        "AMBIT_E_HBONE_CONNECT",
        `cannot open a stream to ${req.dial.host}:${req.dial.port}: ${(err as Error).message}`,
        undefined,
        goingAway,
      );
    }
    this.#releaseOnClose(stream, conn);
    // Errors can be emitted more than once (a session failure reaches every stream); the handlers below settle
    // the promise, this one keeps a later emission from becoming an uncaught error that kills the agent.
    stream.on("error", ignoreError);
    return new Promise<Duplex>((resolve, reject) => {
      // Not processed by the peer, so safe to send again on a fresh connection: a stream it refused, one above
      // the last id of its GOAWAY (nghttp2 refuses those locally, or the connection dies with them), or one
      // that could not start because the session is going away.
      const notProcessed = (err?: Error) =>
        stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ||
        (err as { code?: string } | undefined)?.code === "ERR_HTTP2_GOAWAY_SESSION" ||
        (conn.goawayLastStreamId !== undefined && stream.id !== undefined && stream.id > conn.goawayLastStreamId);
      const where = () =>
        `${req.dial.host}:${req.dial.port} (stream ${stream.id ?? "-"}${conn.goawayLastStreamId !== undefined ? `, peer going away after stream ${conn.goawayLastStreamId}` : ""})`;
      const failed = (err: Error) =>
        reject(new HboneError("AMBIT_E_HBONE_CONNECT", `HBONE stream to ${where()} failed: ${err.message}`, undefined, notProcessed(err)));
      // With TLS 1.3 the server checks the client certificate after the client considers the handshake done:
      // a refused client sees its connection close with no answer.
      const closedUnanswered = () =>
        reject(
          notProcessed()
            ? new HboneError("AMBIT_E_HBONE_CONNECT", `HBONE server at ${where()} did not take the stream (going away)`, undefined, true)
            : new HboneError(
                "AMBIT_E_HBONE_CONNECT",
                `HBONE server at ${where()} closed the stream without answering (is this agent's certificate trusted there?)`,
              ),
        );
      stream.once("error", failed);
      stream.once("close", closedUnanswered);
      stream.once("response", (h) => {
        // Answered: these only served the wait, and would otherwise stay on the stream (with what they hold) for
        // the life of the tunnel.
        stream.off("error", failed);
        stream.off("close", closedUnanswered);
        const status = Number(h[":status"]);
        if (status === 200) {
          const tracked: TrackedStream = { source: req.source, destination: conn.peer, target: req.destination, opened: Date.now() };
          conn.tracked.openStream(tracked);
          this.#streams.set(stream, tracked);
          return resolve(stream);
        }
        const reason = String(h["x-ambit-reason"] ?? "");
        stream.close();
        reject(
          new HboneError(
            "AMBIT_E_HBONE_REJECTED",
            `HBONE server at ${req.dial.host}:${req.dial.port} answered ${status}${reason ? `: ${reason}` : ""}`,
            status,
          ),
        );
      });
    });
  }

  /**
   * Gives the stream's slot back when it closes. A method of its own so the listener's scope holds only the
   * connection: a closure made in `#openStreamOnce` would keep the whole request alive as long as the tunnel.
   */
  #releaseOnClose(stream: http2.ClientHttp2Stream, conn: PooledConnection): void {
    stream.once("close", () => {
      const tracked = this.#streams.get(stream);
      if (tracked) conn.tracked.closeStream(tracked);
      this.#release(conn);
    });
  }

  #release(conn: PooledConnection): void {
    conn.streams--;
    if (conn.streams > 0 || conn.session.destroyed) return;
    // No stream left, so nothing to lose: destroy rather than close, which would wait on a half-closed socket
    // for the peer to close first.
    if (conn.goawayLastStreamId !== undefined) {
      conn.session.destroy();
      return;
    }
    conn.idleTimer = setTimeout(() => {
      this.#forget(conn);
      conn.session.destroy();
    }, this.#opts.idleTimeoutMs);
    conn.idleTimer.unref();
  }

  #forget(conn: PooledConnection): void {
    const list = this.#pool.get(conn.key)?.filter((c) => c !== conn) ?? [];
    if (list.length > 0) this.#pool.set(conn.key, list);
    else this.#pool.delete(conn.key);
  }

  /**
   * Picks a pooled connection with a free stream slot and takes the slot before returning, in the same
   * synchronous step as the check: a burst of first streams must not all see the same half-empty connection
   * (10,000 concurrent opens once landed on one connection, past the peer's stream limit). Only one
   * connection per key is dialled at a time; waiters re-check the pool when it is up.
   */
  async #reserveStream(req: OpenStreamRequest): Promise<PooledConnection> {
    // The expected identity is part of the key: after a pod IP is reused by another workload, the old
    // connection (to the old identity) is never picked for the new one. So is the source pod's address: the
    // server reads the client's address from the connection, so pods never share one.
    const key = `${formatSpiffeId(req.source)}|${req.sourceAddress ?? ""}|${req.expectedIdentity ? formatSpiffeId(req.expectedIdentity) : "*"}|${req.dial.host}:${req.dial.port}`;
    for (;;) {
      const usable = this.#pool.get(key)?.find((c) => c.streams < this.#opts.maxStreamsPerConnection && !c.session.destroyed && !c.session.closed);
      if (usable) {
        usable.streams++;
        clearTimeout(usable.idleTimer);
        return usable;
      }
      const inFlight = this.#opening.get(key);
      if (inFlight) {
        await inFlight;
        continue;
      }
      const opening = this.#dial(key, req).finally(() => this.#opening.delete(key));
      this.#opening.set(key, opening);
      return await opening;
    }
  }

  async #dial(key: string, req: OpenStreamRequest): Promise<PooledConnection> {
    let tcp: net.Socket;
    try {
      tcp = this.#opts.connect
        ? await this.#opts.connect(req.dial.host, req.dial.port, req)
        : await defaultConnect(req.dial.host, req.dial.port, this.#opts.connectTimeoutMs);
    } catch (err) {
      const refused = (err as NodeJS.ErrnoException).code === "ECONNREFUSED";
      throw new HboneError(
        "AMBIT_E_HBONE_CONNECT",
        `cannot connect to ${req.dial.host}:${req.dial.port} (${(err as Error).message}); is a NetworkPolicy blocking HBONE port ${req.dial.port}?`,
        undefined,
        false,
        refused,
      );
    }
    const credentials = this.#opts.getClientCredentials(req.source);
    const expected = req.expectedIdentity ? formatSpiffeId(req.expectedIdentity) : "any identity of the trust bundle";
    let peer: SpiffeId | undefined;
    const secured = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const socket = tls.connect({
        socket: tcp,
        secureContext: tls.createSecureContext({
          cert: credentials.certChainPem,
          key: credentials.keyPem,
          ca: typeof this.#opts.trustBundlePem === "function" ? this.#opts.trustBundlePem() : this.#opts.trustBundlePem,
          minVersion: "TLSv1.3",
        }),
        ALPNProtocols: ["h2"],
        rejectUnauthorized: true,
        // The server is identified by its SPIFFE ID, not a host name.
        checkServerIdentity: (_host, cert) => {
          try {
            const id = spiffeIdFromCertificate(new X509Certificate(cert.raw));
            if (req.expectedIdentity && !sameIdentity(id, req.expectedIdentity)) {
              return new HboneError(
                "AMBIT_E_HBONE_IDENTITY",
                `HBONE server at ${req.dial.host}:${req.dial.port} is ${formatSpiffeId(id)}, expected ${expected}`,
              );
            }
            peer = id;
            return undefined;
          } catch (err) {
            return new HboneError(
              "AMBIT_E_HBONE_IDENTITY",
              `HBONE server at ${req.dial.host}:${req.dial.port} has no valid SPIFFE identity: ${(err as Error).message}`,
            );
          }
        },
      });
      socket.once("secureConnect", () => resolve(socket));
      socket.once("error", (err) => {
        tcp.destroy();
        reject(err instanceof HboneError ? err : new HboneError("AMBIT_E_HBONE_CONNECT", `TLS with ${req.dial.host}:${req.dial.port} failed: ${err.message}`));
      });
    });
    const session = http2.connect(`https://${req.dial.host}:${req.dial.port}`, { createConnection: () => secured, settings: HBONE_SETTINGS.settings });
    session.on("error", () => session.destroy());
    // Born with the dialler's stream slot taken, before any waiter can see it in the pool.
    const conn: PooledConnection = { key, session, peer: peer!, streams: 1, tracked: new TrackedConnection("outbound", secured) };
    this.#live.add(conn);
    session.once("close", () => {
      this.#live.delete(conn);
      this.#forget(conn);
    });
    session.once("goaway", (_code: number, lastStreamId: number) => {
      conn.goawayLastStreamId = lastStreamId;
      this.#forget(conn);
      // Node leaves an idle session open after a GOAWAY: close it here so its socket goes now.
      if (conn.streams === 0) session.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => {
        session.setLocalWindowSize(HBONE_SETTINGS.connectionWindow);
        resolve();
      });
      session.once("error", reject);
      session.once("close", () =>
        reject(new HboneError("AMBIT_E_HBONE_CONNECT", `HBONE server at ${req.dial.host}:${req.dial.port} closed the connection during setup`)),
      );
    });
    const list = this.#pool.get(key) ?? [];
    list.push(conn);
    this.#pool.set(key, list);
    return conn;
  }

  stats(): { connections: number; streams: number } {
    let connections = 0;
    let streams = 0;
    for (const list of this.#pool.values()) {
      connections += list.length;
      for (const c of list) streams += c.streams;
    }
    return { connections, streams };
  }

  /** The identity of the server that answered `stream` (one this pool opened). */
  peerOf(stream: Duplex): SpiffeId | undefined {
    return this.#streams.get(stream)?.destination;
  }

  /** The relay now carrying `stream` (one this pool opened): its live counts are the stream's bytes in the admin API. */
  countBytes(stream: Duplex, counts: RelayCounts): void {
    const tracked = this.#streams.get(stream);
    if (tracked) tracked.counts = counts;
  }

  /** Every live connection this pool opened, for the admin API. */
  connections(withStreams = true): HboneConnectionInfo[] {
    const now = Date.now();
    return [...this.#live].map((c) => c.tracked.snapshot(now, withStreams));
  }

  /** Restart: no new streams on these connections; each closes once its streams in flight end. */
  drain(): void {
    for (const list of this.#pool.values()) for (const c of list) c.session.close();
    this.#pool.clear();
  }

  close(): void {
    for (const list of this.#pool.values()) {
      for (const c of list) {
        clearTimeout(c.idleTimer);
        c.session.destroy();
      }
    }
    this.#pool.clear();
  }
}
