// HTTP/1.1 for the load tools: the request bytes, an incremental response parser and a keep-alive connection with one request in flight.
import net from "node:net";

/** The request every HTTP/1.1 mode sends: a GET with no body. */
export const httpRequest = (host: string, path = "/"): Buffer => Buffer.from(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\n\r\n`);

export interface ParsedResponse {
  status: number;
  bodyBytes: number;
  /** The server will close the connection after it (`connection: close`, or HTTP/1.0 without keep-alive). */
  close: boolean;
}

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");
const MAX_HEAD = 64 * 1024;

type State =
  | { kind: "head" }
  | { kind: "body"; remaining: number }
  | { kind: "chunk-size" }
  | { kind: "chunk-data"; remaining: number }
  | { kind: "chunk-end" }
  | { kind: "trailers" }
  | { kind: "until-close" };

/**
 * Incremental HTTP/1.1 response parser: feed it what the socket reads, get the responses completed by it. Bodies are
 * counted, not kept. Framing: content-length, chunked, or until the connection closes; 1xx answers are skipped and
 * 204/304 have no body. Throws on a malformed response.
 */
export class ResponseParser {
  #pending: Buffer | undefined;
  #state: State = { kind: "head" };
  #status = 0;
  #close = false;
  #bodyBytes = 0;

  /** True while a response has started but not finished. */
  get midResponse(): boolean {
    return this.#state.kind !== "head" || (this.#pending?.length ?? 0) > 0;
  }

  push(chunk: Buffer): ParsedResponse[] {
    const done: ParsedResponse[] = [];
    const buf = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = undefined;
    let at = 0;
    while (at < buf.length) {
      const s = this.#state;
      if (s.kind === "head") {
        const end = buf.indexOf(HEAD_END, at);
        if (end < 0) {
          if (buf.length - at > MAX_HEAD) throw new Error("response head larger than 64 KiB");
          break;
        }
        this.#head(buf.toString("latin1", at, end));
        at = end + 4;
        if (this.#state.kind === "head" && this.#status >= 200) done.push(this.#finish());
      } else if (s.kind === "body" || s.kind === "chunk-data") {
        const take = Math.min(s.remaining, buf.length - at);
        s.remaining -= take;
        this.#bodyBytes += take;
        at += take;
        if (s.remaining === 0) {
          if (s.kind === "body") {
            this.#state = { kind: "head" };
            done.push(this.#finish());
          } else this.#state = { kind: "chunk-end" };
        }
      } else if (s.kind === "until-close") {
        this.#bodyBytes += buf.length - at;
        at = buf.length;
      } else {
        const eol = buf.indexOf(CRLF, at);
        if (eol < 0) {
          if (buf.length - at > MAX_HEAD) throw new Error("chunk line larger than 64 KiB");
          break;
        }
        const line = buf.toString("latin1", at, eol);
        at = eol + 2;
        if (s.kind === "chunk-size") {
          const size = parseInt(line, 16);
          if (!Number.isFinite(size) || size < 0) throw new Error(`bad chunk size ${JSON.stringify(line)}`);
          this.#state = size === 0 ? { kind: "trailers" } : { kind: "chunk-data", remaining: size };
        } else if (s.kind === "chunk-end") {
          if (line !== "") throw new Error("chunk not followed by CRLF");
          this.#state = { kind: "chunk-size" };
        } else if (line === "") {
          this.#state = { kind: "head" };
          done.push(this.#finish());
        }
      }
    }
    // A copy: `chunk` may be a view of a read buffer that the next read overwrites.
    if (at < buf.length) this.#pending = Buffer.from(buf.subarray(at));
    return done;
  }

  /** The connection closed: completes a body framed by the close, if one was being read. */
  end(): ParsedResponse | undefined {
    if (this.#state.kind !== "until-close") return undefined;
    this.#state = { kind: "head" };
    return this.#finish();
  }

  #head(head: string): void {
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(head);
    if (!m) throw new Error(`bad status line ${JSON.stringify(head.slice(0, 80))}`);
    const http10 = m[1] === "0";
    this.#status = Number(m[2]);
    // Header lookups by search in the lower-cased head rather than splitting it: this runs once per response.
    const lower = head.toLowerCase();
    const value = (name: string): string | undefined => {
      const at = lower.indexOf(`\r\n${name}:`);
      if (at < 0) return undefined;
      const from = at + name.length + 3;
      const eol = lower.indexOf("\r\n", from);
      return lower.slice(from, eol < 0 ? undefined : eol).trim();
    };
    const lengthText = value("content-length");
    const length = lengthText === undefined ? undefined : Number(lengthText);
    const chunked = value("transfer-encoding")?.split(",").at(-1)!.trim() === "chunked";
    const connection = value("connection") ?? "";
    this.#close = connection.includes("close") || (http10 && !connection.includes("keep-alive"));
    this.#bodyBytes = 0;
    if (this.#status < 200 || this.#status === 204 || this.#status === 304) this.#state = { kind: "head" };
    else if (chunked) this.#state = { kind: "chunk-size" };
    else if (length !== undefined) {
      if (!Number.isSafeInteger(length) || length < 0) throw new Error("bad content-length");
      this.#state = length === 0 ? { kind: "head" } : { kind: "body", remaining: length };
    } else this.#state = { kind: "until-close" };
  }

  #finish(): ParsedResponse {
    return { status: this.#status, bodyBytes: this.#bodyBytes, close: this.#close };
  }
}

/** How one request on a connection ended. */
export interface Outcome {
  ok: boolean;
  status: number;
  /** `performance.now()` when the request was written (0 if it never was). */
  sentAt: number;
  /** `performance.now()` when the answer was complete (or the request failed). */
  at: number;
  /** Why it failed: `HTTP <status>`, an errno code such as ECONNREFUSED or ECONNRESET, `timeout`, `closed`, `parse`. */
  error?: string;
}

/** An errno code or the message, as an error kind. */
export const errorKind = (err: unknown): string => (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.message : String(err));

const READ_BUFFER = Buffer.alloc(64 * 1024);

export interface ConnectionEvents {
  onIdle?: (c: Http1Connection) => void;
  onClosed?: (c: Http1Connection, err?: unknown) => void;
}

/**
 * One HTTP/1.1 keep-alive connection with at most one request in flight (no pipelining). `onIdle` runs when it can
 * take a request (connected, or an answer arrived and the server keeps the connection); `onClosed` when it is gone.
 */
export class Http1Connection {
  readonly socket: net.Socket;
  readonly #parser = new ResponseParser();
  #done: ((o: Outcome) => void) | undefined;
  /** `performance.now()` when the request in flight was written. */
  sentAt = 0;
  connected = false;
  closed = false;

  readonly #events: ConnectionEvents;

  constructor(host: string, port: number, events: ConnectionEvents = {}) {
    this.#events = events;
    // Reads land in one buffer shared by every connection (`onread`), parsed before the next read: no Buffer and no
    // stream event per read, which is most of what a response costs the client in JavaScript.
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.#onData(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true;
        },
      },
    });
    this.socket.once("connect", () => {
      this.connected = true;
      this.#events.onIdle?.(this);
    });
    let failure: unknown;
    this.socket.on("error", (err) => (failure = err));
    this.socket.on("close", () => {
      this.closed = true;
      const last = this.#parser.end();
      if (last) this.#complete(last);
      this.#fail(failure ? errorKind(failure) : "closed");
      this.#events.onClosed?.(this, failure);
    });
  }

  get busy(): boolean {
    return this.#done !== undefined;
  }

  get idle(): boolean {
    return this.connected && !this.closed && !this.busy;
  }

  /** Resolves once connected; rejects with the connect error. */
  ready(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("close", () => reject(new Error("closed before connecting")));
      this.socket.once("error", reject);
    });
  }

  /** Writes a request; `done` runs once with its outcome. The connection must be idle. */
  send(payload: Buffer, done: (o: Outcome) => void): void {
    if (this.busy) throw new Error("a request is already in flight on this connection");
    this.#done = done;
    this.sentAt = performance.now();
    this.socket.write(payload);
  }

  /** Same as send, as a promise. */
  request(payload: Buffer): Promise<Outcome> {
    return new Promise((resolve) => this.send(payload, resolve));
  }

  /** Fails the request in flight (if any) with `reason` and closes the connection. */
  abort(reason: string): void {
    this.#fail(reason);
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    let responses: ParsedResponse[];
    try {
      responses = this.#parser.push(chunk);
    } catch {
      this.abort("parse");
      return;
    }
    for (const r of responses) {
      this.#complete(r);
      if (r.close) {
        this.socket.destroy();
        return;
      }
      this.#events.onIdle?.(this);
    }
  }

  #complete(r: ParsedResponse): void {
    const done = this.#done;
    this.#done = undefined;
    const ok = r.status >= 200 && r.status < 300;
    done?.({ ok, status: r.status, sentAt: this.sentAt, at: performance.now(), ...(ok ? {} : { error: `HTTP ${r.status}` }) });
  }

  #fail(error: string): void {
    const done = this.#done;
    this.#done = undefined;
    done?.({ ok: false, status: 0, sentAt: this.sentAt, at: performance.now(), error });
  }
}
