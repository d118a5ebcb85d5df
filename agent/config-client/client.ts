// Config stream client: holds the node's view from the controller, applies snapshots and in-order deltas, reconnects and resumes.
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import {
  type AgentMessage,
  CONFIG_STREAM_PATH,
  ConfigStreamError,
  ConfigStreamErrorCode,
  NDJSON_CONTENT_TYPE,
  NdjsonLineSplitter,
  type Resource,
  type ResourceRef,
  type ServerMessage,
  encodeMessage,
  parseServerMessage,
  resourceId,
} from "../../contract/stream.ts";
import { urisOfSubjectAltName } from "../../contract/spiffe.ts";
import type { Credentials } from "../identity/index.ts";

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Fraction (0..1) by which each delay is randomly shortened, so agents of a whole cluster do not reconnect in step. */
  jitter: number;
}

/**
 * 500 ms doubling up to 15 s (ztunnel goes to 150 s): after a controller outage agents are back in sync within
 * seconds, and 15 s with jitter still spreads a whole cluster's reconnects.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 15_000, jitter: 0.2 };

/** Delay before retry number `attempt` (0-based): exponential, capped at `maxMs`, shortened by up to `jitter`. */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 62));
  return Math.round(base * (1 - policy.jitter * random()));
}

export interface UpdateInfo {
  kind: "snapshot" | "delta";
  epoch: string;
  version: number;
  upserts: Resource[];
  /** For a snapshot: what the previous view held and the new one does not. */
  removes: ResourceRef[];
}

export interface ConfigStreamClientOptions {
  /** https://host:port of the controller. */
  url: string;
  /** CA bundle (PEM) the controller's certificate must chain to. */
  ca: string | (() => string);
  /** The agent's client certificate; asked again on every connection, so rotation needs nothing else. */
  credentials(): Credentials;
  /** Bearer token (the agent's service-account token); asked again on every connection. */
  token(): Promise<string> | string;
  node: string;
  log: Logger;
  registry?: Registry;
  /**
   * Called with each new view, one at a time. Resolving acknowledges the version; throwing rejects it (nack)
   * and the client keeps its previous view.
   */
  onUpdate(view: ReadonlyMap<string, Resource>, info: UpdateInfo): void | Promise<void>;
  backoff?: Partial<BackoffPolicy>;
  /** TLS server name (SNI and certificate check) when it differs from the URL's host. */
  serverName?: string;
  /** The controller's SPIFFE ID; when set, its certificate must carry exactly this URI SAN instead of a host name. */
  serverIdentity?: string;
  /** Reconnect when nothing (not even a ping) arrived for this long. Default 45,000 (three server heartbeats). */
  idleTimeoutMs?: number;
}

export interface Staleness {
  connected: boolean;
  lastUpdateAt: Date | undefined;
  disconnectedSince: Date | undefined;
  version: number | undefined;
  epoch: string | undefined;
  /** Connection attempts that failed since the last successful one. */
  failures: number;
  lastError?: { code: string; message: string; status?: number };
}

/** One HTTP/2 connection attempt, alive until `finish` runs once. */
interface Attempt {
  session: http2.ClientHttp2Session;
  request: http2.ClientHttp2Stream | undefined;
  done: boolean;
  finish(err: ConfigStreamError): void;
}

/** Answers from the controller that are not config are error bodies: keep a bounded amount for the message. */
const MAX_ERROR_BODY = 4096;
/** A snapshot of a large node is one line; bound it anyway. */
const MAX_SERVER_LINE_BYTES = 256 * 1024 * 1024;

export class ConfigStreamClient {
  readonly #opts: ConfigStreamClientOptions;
  readonly #backoff: BackoffPolicy;
  readonly #idleTimeoutMs: number;
  #view: ReadonlyMap<string, Resource> = new Map();
  #epoch: string | undefined;
  #version: number | undefined;
  /** Set after an out-of-order delta: the next hello carries no resume point. */
  #wantSnapshot = false;
  #connected = false;
  #lastUpdateAt: Date | undefined;
  #disconnectedSince: Date | undefined = new Date();
  #failures = 0;
  #lastError: Staleness["lastError"];
  #attempt: Attempt | undefined;
  #run: Promise<void> | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(opts: ConfigStreamClientOptions) {
    this.#opts = opts;
    this.#backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? 45_000;
    if (opts.registry) {
      const registers = [opts.registry];
      const staleness = () => this.staleness();
      new Gauge({
        name: "ambit_config_stale_seconds",
        help: "Seconds since the config stream to the controller was lost (0 while connected)",
        registers,
        collect() {
          const s = staleness();
          this.set(s.connected || !s.disconnectedSince ? 0 : (Date.now() - s.disconnectedSince.getTime()) / 1000);
        },
      });
      new Gauge({
        name: "ambit_config_connected",
        help: "1 while the agent holds a config stream to the controller",
        registers,
        collect() {
          this.set(staleness().connected ? 1 : 0);
        },
      });
    }
  }

  /** The last view applied; served while the controller is unreachable. */
  get view(): ReadonlyMap<string, Resource> {
    return this.#view;
  }

  start(): void {
    this.#run ??= this.#loop();
  }

  staleness(): Staleness {
    return {
      connected: this.#connected,
      lastUpdateAt: this.#lastUpdateAt,
      disconnectedSince: this.#connected ? undefined : this.#disconnectedSince,
      version: this.#version,
      epoch: this.#epoch,
      failures: this.#failures,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#wake?.();
    this.#attempt?.finish(new ConfigStreamError(ConfigStreamErrorCode.closed, "the agent closed its config stream"));
    await this.#run;
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      const err = await this.#connectOnce();
      if (this.#closed) break;
      if (this.#connected) this.#disconnectedSince = new Date();
      this.#connected = false;
      this.#lastError = { code: err.code, message: err.message, ...(err.status === undefined ? {} : { status: err.status }) };
      const delay = backoffDelay(this.#failures++, this.#backoff);
      this.#opts.log.warn(
        { code: err.code, status: err.status, retryInMs: delay, version: this.#version },
        `config stream: ${err.message}; keeping the current view and retrying`,
      );
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#retryTimer = setTimeout(resolve, delay);
      });
    }
    this.#connected = false;
  }

  /** Resolves, never rejects, when this connection is over, with the reason. */
  #connectOnce(): Promise<ConfigStreamError> {
    const url = new URL(this.#opts.url);
    const creds = this.#opts.credentials();
    const expected = this.#opts.serverIdentity;
    const servername = this.#opts.serverName ?? (net.isIP(url.hostname) ? undefined : url.hostname);
    const session = http2.connect(url, {
      ca: typeof this.#opts.ca === "function" ? this.#opts.ca() : this.#opts.ca,
      cert: creds.certChainPem,
      key: creds.keyPem,
      minVersion: "TLSv1.3",
      ALPNProtocols: ["h2"],
      ...(servername ? { servername } : {}),
      checkServerIdentity: (host, cert) => {
        if (!expected) return tls.checkServerIdentity(host, cert);
        const uris = urisOfSubjectAltName(cert.subjectaltname);
        if (uris.length === 1 && uris[0] === expected) return undefined;
        return new Error(`the controller presented ${uris.map((u) => `URI:${u}`).join(", ") || "no URI SAN"}, expected exactly ${expected}`);
      },
    });
    return new Promise<ConfigStreamError>((resolve) => {
      let idle: NodeJS.Timeout | undefined;
      const attempt: Attempt = {
        session,
        request: undefined,
        done: false,
        finish: (err) => {
          if (attempt.done) return;
          attempt.done = true;
          clearTimeout(idle);
          session.destroy();
          if (this.#attempt === attempt) this.#attempt = undefined;
          resolve(err);
        },
      };
      this.#attempt = attempt;
      const resetIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(
          () => attempt.finish(new ConfigStreamError(ConfigStreamErrorCode.idle, `nothing from the controller at ${url.host} for ${this.#idleTimeoutMs} ms`)),
          this.#idleTimeoutMs,
        );
        idle.unref();
      };
      resetIdle();
      session.on("error", (err) =>
        attempt.finish(new ConfigStreamError(ConfigStreamErrorCode.connect, `cannot reach the controller at ${url.host}: ${err.message}`, { cause: err })),
      );
      session.once("close", () => attempt.finish(new ConfigStreamError(ConfigStreamErrorCode.closed, `the controller at ${url.host} closed the connection`)));
      Promise.resolve()
        .then(() => this.#opts.token())
        .then(
          (token) => this.#request(attempt, url, token, resetIdle),
          (err: unknown) =>
            attempt.finish(new ConfigStreamError(ConfigStreamErrorCode.connect, `no token for the controller: ${(err as Error).message}`, { cause: err })),
        );
    });
  }

  #request(attempt: Attempt, url: URL, token: string, resetIdle: () => void): void {
    if (attempt.done) return;
    const req = attempt.session.request(
      { ":method": "POST", ":path": CONFIG_STREAM_PATH, authorization: `Bearer ${token}`, "content-type": NDJSON_CONTENT_TYPE },
      { endStream: false },
    );
    attempt.request = req;
    const resume = this.#wantSnapshot || this.#epoch === undefined ? {} : { epoch: this.#epoch, version: this.#version };
    req.write(encodeMessage({ kind: "hello", node: this.#opts.node, ...resume }));
    this.#wantSnapshot = false;

    let status = 0;
    let errorBody = "";
    const splitter = new NdjsonLineSplitter(MAX_SERVER_LINE_BYTES);
    // Messages are handled strictly one after another, even when onUpdate is async.
    let queue = Promise.resolve();
    req.once("response", (headers) => {
      status = Number(headers[":status"]);
      if (status !== 200) return;
      this.#connected = true;
      this.#disconnectedSince = undefined;
      this.#failures = 0;
      this.#opts.log.info({ controller: url.host, epoch: this.#epoch, version: this.#version }, "config stream connected");
    });
    req.on("data", (chunk: Buffer) => {
      resetIdle();
      if (status !== 200) {
        if (errorBody.length < MAX_ERROR_BODY) errorBody += chunk.toString("utf8");
        return;
      }
      let messages: ServerMessage[];
      try {
        messages = splitter.push(chunk).map(parseServerMessage);
      } catch (err) {
        return attempt.finish(err as ConfigStreamError);
      }
      for (const msg of messages) queue = queue.then(() => this.#handle(attempt, msg));
    });
    req.once("end", () => {
      // The queue never rejects: #handle answers a failed update with a nack.
      if (status === 200)
        return void queue.then(() =>
          attempt.finish(new ConfigStreamError(ConfigStreamErrorCode.closed, `the controller at ${url.host} ended the config stream`)),
        );
      // With TLS 1.3 the server checks the client certificate after the client considers the handshake done:
      // a refused certificate shows up as a stream that ends without an answer.
      if (status === 0) {
        return attempt.finish(
          new ConfigStreamError(
            ConfigStreamErrorCode.connect,
            `the controller at ${url.host} closed the stream without answering (is this agent's certificate trusted by the controller?)`,
          ),
        );
      }
      let reason: { code?: unknown; message?: unknown } = {};
      try {
        reason = JSON.parse(errorBody) as typeof reason;
      } catch {
        // Not our controller's JSON (a proxy's page?): the status alone has to do.
      }
      const code = Object.values(ConfigStreamErrorCode).find((c) => c === reason.code) ?? ConfigStreamErrorCode.rejected;
      attempt.finish(
        new ConfigStreamError(code, `the controller at ${url.host} refused the config stream (${status}): ${String(reason.message ?? "no reason given")}`, {
          status,
        }),
      );
    });
    req.on("error", (err) =>
      attempt.finish(new ConfigStreamError(ConfigStreamErrorCode.connect, `config stream to ${url.host} failed: ${err.message}`, { cause: err })),
    );
  }

  async #handle(attempt: Attempt, msg: ServerMessage): Promise<void> {
    if (attempt.done || msg.kind === "ping") return;
    let next: Map<string, Resource>;
    let info: UpdateInfo;
    if (msg.kind === "snapshot") {
      next = new Map(msg.resources.map((r) => [resourceId(r), r]));
      const removes = [...this.#view.values()].filter((r) => !next.has(resourceId(r))).map(({ type, key }) => ({ type, key }));
      info = { kind: "snapshot", epoch: msg.epoch, version: msg.version, upserts: msg.resources, removes };
    } else {
      if (msg.epoch !== this.#epoch || msg.fromVersion !== this.#version) {
        // Applying it would build a view the controller never computed: drop the connection and start over.
        this.#wantSnapshot = true;
        this.#opts.log.warn(
          { epoch: msg.epoch, fromVersion: msg.fromVersion, heldEpoch: this.#epoch, heldVersion: this.#version },
          "config stream: delta does not apply to the held version; asking for a snapshot",
        );
        return attempt.finish(
          new ConfigStreamError(
            ConfigStreamErrorCode.outOfOrder,
            `delta from version ${msg.fromVersion} of epoch ${msg.epoch} does not apply to the held version ${this.#version ?? "none"} of epoch ${this.#epoch ?? "none"}`,
          ),
        );
      }
      next = new Map(this.#view);
      for (const r of msg.removes) next.delete(resourceId(r));
      for (const r of msg.upserts) next.set(resourceId(r), r);
      info = { kind: "delta", epoch: msg.epoch, version: msg.version, upserts: msg.upserts, removes: msg.removes };
    }
    let reply: AgentMessage;
    try {
      await this.#opts.onUpdate(next, info);
      this.#view = next;
      this.#epoch = msg.epoch;
      this.#version = msg.version;
      this.#lastUpdateAt = new Date();
      reply = { kind: "ack", version: msg.version };
    } catch (err) {
      this.#opts.log.error(
        { err, code: ConfigStreamErrorCode.updateFailed, version: msg.version, kind: msg.kind },
        "config stream: applying the new config failed; keeping the previous version",
      );
      reply = { kind: "nack", version: msg.version, error: (err as Error).message ?? String(err) };
    }
    if (!attempt.done && attempt.request && !attempt.request.destroyed) attempt.request.write(encodeMessage(reply));
  }
}
