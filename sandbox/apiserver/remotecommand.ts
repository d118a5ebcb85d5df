// exec and attach over WebSocket, server side: Kubernetes' channel protocols, channel.k8s.io up to v5.channel.k8s.io.
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import type { ProcessOptions, ProcessResult, ProcessSession } from "./streams.ts";

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
/** Output waiting in the socket beyond this pauses the process's output until the client has read it. */
const HIGH_WATER_BYTES = 1024 * 1024;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

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
  const base64 = protocol.includes("base64");
  const statusJson = protocol.startsWith("v4.") || protocol.startsWith("v5.");
  const closeSignal = protocol.startsWith("v5.");
  let inFlight = 0;
  const paused = new Set<Readable>();
  const resumeAll = () => {
    for (const r of paused) r.resume();
    paused.clear();
  };

  const send = (channel: number, data: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    inFlight += data.length;
    const frame = base64 ? String.fromCharCode(48 + channel) + data.toString("base64") : Buffer.concat([Buffer.of(channel), data]);
    ws.send(frame, { binary: !base64 }, () => {
      inFlight -= data.length;
      if (inFlight < HIGH_WATER_BYTES / 2) resumeAll();
    });
  };
  const pump = (source: Readable | undefined, channel: number): Promise<void> =>
    new Promise((resolve) => {
      if (!source) return resolve();
      source.on("data", (chunk: Buffer) => {
        send(channel, chunk);
        if (inFlight > HIGH_WATER_BYTES && ws.readyState === ws.OPEN) {
          source.pause();
          paused.add(source);
        }
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
    const buf = toBuffer(raw);
    if (buf.length === 0) return;
    let channel = buf[0]!;
    let payload = buf.subarray(1);
    if (base64) {
      channel -= 48;
      payload = Buffer.from(payload.toString("latin1"), "base64");
    }
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
    resumeAll();
  });

  void Promise.all([session.done, outputs]).then(([result]) => {
    if (ws.readyState !== ws.OPEN) return;
    const status = finalStatus(result, opts.command, statusJson);
    if (status !== undefined) send(ERROR, Buffer.from(status));
    // A normal closure: client-go then ends every stream with EOF.
    ws.close(1000);
  });
}
