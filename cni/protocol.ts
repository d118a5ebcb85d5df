// The CNI plugin <-> node agent protocol: one newline-delimited JSON request and one answer per unix-socket connection.
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { AmbitError, type CodeOf } from "../contract/errors.ts";
import type { CNI_ERRORS } from "../contract/error-codes.ts";

export type CniRequest =
  | { command: "ADD" | "CHECK"; containerId: string; netns: string; ifName: string; podNamespace: string; podName: string; podUid: string; ips: string[] }
  | { command: "DEL"; containerId: string; netns: string; podNamespace: string; podName: string; podUid: string }
  | { command: "STATUS" }
  | { command: "GC"; validAttachments: Array<{ containerID: string; ifname: string }> };

/** `agent` answers STATUS: which agent instance serves the node's socket and whether it is ready (handover). */
export type CniResponse = { ok: true; captured?: boolean; agent?: { instance: string; ready: boolean } } | { ok: false; code: string; message: string };

export class CniProtocolError extends AmbitError<CodeOf<typeof CNI_ERRORS>> {
  constructor(code: CodeOf<typeof CNI_ERRORS>, message: string) {
    super(code, message);
    this.name = "CniProtocolError";
  }
}

const MAX_MESSAGE_BYTES = 64 * 1024;

const isText = (v: unknown): v is string => typeof v === "string" && v !== "";

/**
 * One request line, checked field by field for its command: a request with missing or mistyped fields is refused
 * with every problem named (AMBIT_E_CNI_BAD_REQUEST), never acted on with `undefined` in place of a pod.
 */
export function parseCniRequest(line: string): CniRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw new CniProtocolError("AMBIT_E_CNI_PROTOCOL", "malformed request: expected one JSON object with a command, then a newline");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new CniProtocolError("AMBIT_E_CNI_PROTOCOL", "malformed request: expected one JSON object with a command, then a newline");
  const r = raw as Record<string, unknown>;
  const problems: string[] = [];
  const text = (field: string, allowEmpty = false) => {
    if (allowEmpty ? typeof r[field] !== "string" : !isText(r[field])) problems.push(`${field} must be a${allowEmpty ? "" : " non-empty"} string`);
  };
  switch (r.command) {
    case "STATUS":
      return { command: "STATUS" };
    case "ADD":
    case "CHECK":
      for (const f of ["containerId", "netns", "ifName", "podNamespace", "podName", "podUid"]) text(f);
      if (isText(r.netns) && !r.netns.startsWith("/")) problems.push("netns must be an absolute path");
      if (!Array.isArray(r.ips) || !r.ips.every((ip) => typeof ip === "string" && net.isIP(ip) !== 0)) problems.push("ips must be a list of IP addresses");
      break;
    case "DEL":
      // DEL may come without a netns (the runtime lost it) or a uid (older runtimes): then nothing but the name is known.
      for (const f of ["containerId", "podNamespace", "podName"]) text(f);
      for (const f of ["netns", "podUid"]) text(f, true);
      break;
    case "GC":
      if (
        !Array.isArray(r.validAttachments) ||
        !r.validAttachments.every(
          (a) =>
            typeof a === "object" &&
            a !== null &&
            isText((a as Record<string, unknown>).containerID) &&
            typeof (a as Record<string, unknown>).ifname === "string",
        )
      ) {
        problems.push("validAttachments must be a list of {containerID, ifname}");
      }
      break;
    default:
      throw new CniProtocolError("AMBIT_E_CNI_BAD_REQUEST", `unknown command ${JSON.stringify(r.command)}: expected ADD, CHECK, DEL, STATUS or GC`);
  }
  if (problems.length) throw new CniProtocolError("AMBIT_E_CNI_BAD_REQUEST", `${String(r.command)} request refused: ${problems.join("; ")}`);
  return r as unknown as CniRequest;
}

/** Sends one request to the agent and waits for its answer, at most `timeoutMs`. */
export function sendCniRequest(socketPath: string, request: CniRequest, timeoutMs: number): Promise<CniResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CniProtocolError("AMBIT_E_CNI_TIMEOUT", `the Ambit agent did not answer on ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(JSON.stringify(request) + "\n"));
    socket.on("data", (chunk: string) => {
      data += chunk;
      const nl = data.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(data.slice(0, nl)) as CniResponse);
      } catch {
        reject(new CniProtocolError("AMBIT_E_CNI_PROTOCOL", "the Ambit agent sent an answer that is not JSON"));
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new CniProtocolError(
          "AMBIT_E_CNI_AGENT_UNREACHABLE",
          `cannot reach the Ambit agent on ${socketPath} (${err.code ?? err.message}); is the ambit agent running on this node?`,
        ),
      );
    });
  });
}

export interface CniEventServer {
  close(): Promise<void>;
}

/**
 * Serves plugin requests for the agent. The socket is created with mode 0600 (only root may ask the agent
 * to capture pods); a stale socket file from a previous agent is replaced. Malformed requests get an error
 * answer; handler errors become `{ ok: false }` answers, never a crash.
 */
export async function startCniEventServer(socketPath: string, handler: (request: CniRequest) => Promise<CniResponse>): Promise<CniEventServer> {
  await fs.rm(socketPath, { force: true });
  const server = net.createServer((socket) => {
    let data = "";
    socket.setEncoding("utf8");
    const answer = (response: CniResponse) => socket.end(JSON.stringify(response) + "\n");
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: string) => {
      data += chunk;
      if (data.length > MAX_MESSAGE_BYTES) return answer({ ok: false, code: "AMBIT_E_CNI_PROTOCOL", message: "request too large" });
      const nl = data.indexOf("\n");
      if (nl < 0) return;
      let request: CniRequest;
      try {
        request = parseCniRequest(data.slice(0, nl));
      } catch (err) {
        const e = err as CniProtocolError;
        return answer({ ok: false, code: e.code, message: e.message });
      }
      handler(request).then(answer, (err: Error & { code?: string }) => answer({ ok: false, code: err.code ?? "AMBIT_E_CNI_HANDLER", message: err.message }));
    });
  });
  await fs.mkdir(path.dirname(socketPath), { recursive: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  await fs.chmod(socketPath, 0o600);
  const ours = (await fs.stat(socketPath)).ino;
  return {
    close: async () => {
      // During an agent restart the new agent has already bound a fresh socket at this path. Closing a bound
      // unix server unlinks its path (libuv does), which would remove the new agent's socket: only stop
      // listening then, and let the fd go with the process.
      const current = await fs.stat(socketPath).catch(() => undefined);
      if (current && current.ino !== ours) {
        server.unref();
        return;
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(socketPath, { force: true });
    },
  };
}
