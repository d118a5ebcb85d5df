// exec and attach, server side: Kubernetes' WebSocket channel protocols (channel.k8s.io up to v5.channel.k8s.io), and SPDY streams.
import type { Duplex, Readable } from "node:stream";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import type { ProcessOptions, ProcessResult, ProcessSession } from "./streams.ts";
import { type SpdyStream, headerOf, spdyServer } from "./spdy.ts";
import { WebSocketChannels } from "./ws-channels.ts";

/**
 * The kubelet's subprotocols, in the order it prefers them. Each message starts with its channel: 0 stdin, 1 stdout,
 * 2 stderr, 3 error (v4 and later: a metav1.Status; before: plain text), 4 resize (JSON {Width, Height}). v5 adds
 * channel 255, a client's "close this channel" signal (`[255, 0]`: stdin ended). The base64 variants send text
 * messages: the channel as an ASCII digit, then the data in base64.
 */
export const REMOTE_COMMAND_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io"];

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

/** What the error channel carries at the end: v4/v5 a Status (Success too), older protocols only a failure's text. */
export function finalStatus(result: ProcessResult, command: string[], statusJson: boolean): string | undefined {
  if ("error" in result) {
    if (!statusJson) return result.error;
    return JSON.stringify({
      metadata: {},
      status: "Failure",
      message: result.error,
      reason: "InternalError",
      details: { causes: [{ message: result.error }] },
      code: 500,
    });
  }
  if (result.exitCode === 0) return statusJson ? JSON.stringify({ metadata: {}, status: "Success" }) : undefined;
  const message = `command terminated with non-zero exit code: error executing command [${command.join(" ")}], exit code ${result.exitCode}`;
  if (!statusJson) return message;
  // client-go reads the exit code from the cause whose reason is ExitCode (StatusCause.Type is "reason" in JSON).
  return JSON.stringify({
    metadata: {},
    status: "Failure",
    message,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(result.exitCode) }] },
  });
}

/** Runs the channel protocol on an upgraded WebSocket until the session ends or the client goes away. */
export function serveRemoteCommand(ws: WebSocket, protocol: string, session: ProcessSession, opts: ProcessOptions, log: Logger | undefined): void {
  const channels = new WebSocketChannels(ws, protocol);
  const statusJson = protocol.startsWith("v4.") || protocol.startsWith("v5.");
  const closeSignal = protocol.startsWith("v5.");
  const send = (channel: number, data: Buffer) => channels.send(channel, data);
  const pump = (source: Readable | undefined, channel: number): Promise<void> =>
    new Promise((resolve) => {
      if (!source) return resolve();
      source.on("data", (chunk: Buffer) => {
        send(channel, chunk);
        channels.throttle(source);
      });
      source.once("end", resolve);
      source.once("close", resolve);
      source.once("error", () => resolve());
    });

  // As the kubelet: an empty message on the first output channel tells the client the streams are ready.
  send(opts.stdout ? STDOUT : opts.stderr ? STDERR : ERROR, Buffer.alloc(0));
  const outputs = Promise.all([pump(session.stdout, STDOUT), pump(session.stderr, STDERR)]);

  const stdin = session.stdin;
  stdin?.on("error", (err) => log?.debug({ err: String(err) }, "stdin of the process closed"));
  stdin?.on("close", () => ws.resume());
  ws.on("message", (raw) => {
    const message = channels.decode(raw);
    if (!message) return;
    const { channel, payload } = message;
    if (channel === STDIN) {
      if (!stdin || stdin.writableEnded || stdin.destroyed) return;
      if (!stdin.write(payload)) {
        ws.pause();
        stdin.once("drain", () => ws.resume());
      }
    } else if (channel === RESIZE) {
      let size: { Width?: unknown; Height?: unknown } | undefined;
      try {
        size = JSON.parse(payload.toString("utf8")) as typeof size;
      } catch {
        log?.debug({ payload: payload.toString("utf8").slice(0, 100) }, "ignoring a resize message that is not JSON");
      }
      const ok = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 65535;
      if (size && ok(size.Width) && ok(size.Height)) session.resize({ width: size.Width, height: size.Height });
    } else if (channel === CLOSE && closeSignal) {
      if (payload[0] === STDIN && stdin && !stdin.writableEnded) stdin.end();
    }
    // Any other channel is not the client's to write; the kubelet ignores such messages too.
  });
  ws.on("error", (err) => log?.debug({ err: String(err) }, "exec connection error"));
  ws.once("close", () => {
    session.close();
    // Nothing reads the output any more: let it drain so the process is not left blocked writing.
    channels.resumeAll();
  });

  void Promise.all([session.done, outputs]).then(([result]) => {
    if (ws.readyState !== ws.OPEN) return;
    const status = finalStatus(result, opts.command, statusJson);
    if (status !== undefined) send(ERROR, Buffer.from(status));
    // A normal closure: client-go then ends every stream with EOF.
    ws.close(1000);
  });
}

// ---- SPDY ------------------------------------------------------------------------------------------------------

/**
 * The protocols kubectl's SPDY executor offers in X-Stream-Protocol-Version (its fallback when the WebSocket upgrade
 * fails, and all of kubectl before 1.30). v3 adds a resize stream, v4 a metav1.Status on the error stream.
 */
export const SPDY_REMOTE_COMMAND_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
/** kubelet's streamCreationTimeout: how long the client may take to open its streams. */
const STREAM_CREATION_TIMEOUT_MS = 30_000;

/**
 * exec and attach over SPDY: the client opens one stream per channel (header streamType: error, stdin, stdout, stderr,
 * resize); once all it asked for are there, they are joined to the session. At the end the error stream carries the
 * status, every stream ends, and the connection goes away.
 */
export function serveSpdyRemoteCommand(
  transport: Duplex,
  protocol: string,
  session: ProcessSession,
  opts: ProcessOptions,
  log: Logger | undefined,
): { close(): void } {
  const conn = spdyServer(transport);
  const resizable = protocol === "v3.channel.k8s.io" || protocol === "v4.channel.k8s.io";
  const wanted = new Set(["error"]);
  if (opts.stdin) wanted.add("stdin");
  if (opts.stdout) wanted.add("stdout");
  if (opts.stderr) wanted.add("stderr");
  if (opts.tty && resizable) wanted.add("resize");
  const streams = new Map<string, SpdyStream>();
  let started = false;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    session.close();
    conn.destroyStreams();
    transport.destroy();
  };
  const timer = setTimeout(() => {
    log?.debug({ have: [...streams.keys()], wanted: [...wanted] }, "timed out waiting for client to create streams");
    close();
  }, STREAM_CREATION_TIMEOUT_MS);
  timer.unref();

  let replied = 0;
  conn.on("stream", (stream) => {
    stream.on("error", (err) => log?.debug({ stream: stream.id, err: String(err) }, "exec stream error"));
    const type = headerOf(stream, "streamtype") ?? "";
    if (started || !wanted.has(type) || streams.has(type)) {
      log?.debug({ type }, "refusing an unexpected exec stream");
      stream.abort("PROTOCOL_ERROR");
      return;
    }
    streams.set(type, stream);
    // Replies go out after header compression, so frames of other streams can pass them: start only once the
    // client has every reply (it waits for each before opening the next stream, and for the last one too).
    stream.respond(200, {}, () => {
      if (++replied === wanted.size && !closed) start();
    });
  });

  const start = () => {
    started = true;
    clearTimeout(timer);
    const error = streams.get("error")!;
    error.resume();
    const input = streams.get("stdin");
    if (input && session.stdin) input.pipe(session.stdin);
    else input?.resume();
    const resize = streams.get("resize");
    let pending = "";
    resize?.on("data", (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const size = JSON.parse(line) as { Width?: unknown; Height?: unknown };
          if (typeof size.Width === "number" && typeof size.Height === "number") session.resize({ width: size.Width, height: size.Height });
        } catch {
          log?.debug({ line: line.slice(0, 100) }, "ignoring a resize message that is not JSON");
        }
      }
      if (pending.length > 4096) pending = "";
    });
    const copy = (source: Readable | undefined, target: SpdyStream | undefined) =>
      new Promise<void>((resolve) => {
        if (!target) return resolve(void source?.resume());
        if (!source) return resolve(void target.end());
        source.pipe(target);
        target.once("finish", resolve);
        target.once("close", resolve);
      });
    const outputs = Promise.all([copy(session.stdout, streams.get("stdout")), copy(session.stderr, streams.get("stderr"))]);
    void Promise.all([session.done, outputs]).then(([result]) => {
      if (closed) return;
      const status = finalStatus(result, opts.command, protocol === "v4.channel.k8s.io");
      error.end(status ?? "");
      // The client closes the connection once it has read every stream to its end (a GOAWAY now could overtake
      // frames still being compressed). One that does not is cut off after a while.
      setTimeout(close, 10_000).unref();
    });
  };
  conn.on("error", (err) => {
    log?.debug({ err: String(err) }, "exec SPDY connection failed");
    close();
  });
  transport.on("error", (err) => log?.debug({ err: String(err) }, "exec transport error"));
  transport.once("close", close);
  return { close };
}
