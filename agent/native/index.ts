// Typed access to the agent's native addon: listeners inside pod netns, original destinations, marked sockets.
import net from "node:net";
import { createRequire } from "node:module";
import { AmbitError, type CodeOf } from "../../contract/errors.ts";
import type { NATIVE_ERRORS } from "../../contract/error-codes.ts";

interface Binding {
  listenInNetns(netnsPath: string, host: string, port: number, reusePort: boolean, transparent: boolean, backlog: number): number;
  originalDst(fd: number): { address: string; port: number };
  tcpNoDelay(fd: number): boolean;
  createMarkedSocket(mark: number, netnsPath: string): number;
  closeFd(fd: number): void;
  releaseFreeMemory(): boolean;
}

/** The addon's failures; the C side throws the same AMBIT_E_NATIVE_* codes (agent/native/src/ambit_net.c). */
export class NativeNetError extends AmbitError<CodeOf<typeof NATIVE_ERRORS>> {
  readonly errno: number | undefined;
  readonly syscall: string | undefined;
  constructor(code: CodeOf<typeof NATIVE_ERRORS>, message: string, errno?: number, syscall?: string) {
    super(code, message);
    this.name = "NativeNetError";
    this.errno = errno;
    this.syscall = syscall;
  }
}

let binding: Binding | undefined;

function load(): Binding {
  if (binding) return binding;
  try {
    binding = createRequire(import.meta.url)("./build/Release/ambit_net.node") as Binding;
    return binding;
  } catch (err) {
    throw new NativeNetError(
      "AMBIT_E_NATIVE_MISSING",
      `the agent's native addon is not built (${(err as Error).message}); run \`npm ci\`, which builds agent/native with node-gyp (needs g++, make and python3)`,
    );
  }
}

/** Calls into the addon, turning its errors (which carry code, errno, syscall) into NativeNetError. */
function call<T>(fn: (b: Binding) => T): T {
  const b = load();
  try {
    return fn(b);
  } catch (err) {
    const e = err as Error & { code?: CodeOf<typeof NATIVE_ERRORS>; errno?: number; syscall?: string };
    throw new NativeNetError(e.code ?? "AMBIT_E_NATIVE_SOCKET", e.message, e.errno, e.syscall);
  }
}

export interface ListenOptions {
  reusePort?: boolean;
  backlog?: number;
  transparent?: boolean;
}

/**
 * Creates, binds and listens a TCP socket inside the network namespace at `netnsPath` (e.g. /run/netns/x),
 * returning to the caller's namespace before it returns. Serve the fd with `net.createServer().listen({ fd })`.
 * Needs CAP_SYS_ADMIN (setns).
 */
export function listenInNetns(netnsPath: string, host: string, port: number, opts: ListenOptions = {}): number {
  return call((b) => b.listenInNetns(netnsPath, host, port, opts.reusePort ?? false, opts.transparent ?? false, opts.backlog ?? 511));
}

/** Where a REDIRECTed connection was going (SO_ORIGINAL_DST, IPv4). */
export function originalDst(fd: number): { address: string; port: number } {
  return call((b) => b.originalDst(fd));
}

/** Whether a TCP socket sends each write at once (TCP_NODELAY), as every socket the agent relays on must. */
export function tcpNoDelay(fd: number): boolean {
  return call((b) => b.tcpNoDelay(fd));
}

/** A new unconnected TCP socket carrying SO_MARK, created inside `netnsPath` when given. Needs CAP_NET_ADMIN. */
export function createMarkedSocket(mark: number, netnsPath?: string): number {
  return call((b) => b.createMarkedSocket(mark, netnsPath ?? ""));
}

/**
 * Gives the C heap's free pages back to the kernel (glibc `malloc_trim`). Sockets, HTTP/2 streams and TLS
 * state live there, and glibc keeps what a burst of connections freed; returns whether anything was released.
 */
export function releaseFreeMemory(): boolean {
  return call((b) => b.releaseFreeMemory());
}

/** Closes an fd the addon returned that was never handed to Node. */
export function closeFd(fd: number): void {
  call((b) => b.closeFd(fd));
}

/** The fd behind a connected socket or a listening server (Node's semi-internal `_handle.fd`; pinned Node version, tested). */
export function socketFd(handleOwner: net.Socket | net.Server): number {
  const fd = (handleOwner as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw new NativeNetError("AMBIT_E_NATIVE_NO_FD", "the socket has no file descriptor (closed, or not a TCP socket)");
  return fd;
}

/**
 * Connects a marked socket (so the pod's capture rules let it through) to host:port, from inside `netnsPath` when
 * given. With `timeoutMs`, a connect that has not completed by then fails with ETIMEDOUT (the kernel would keep
 * retrying its SYN for about two minutes).
 */
export function connectMarked(host: string, port: number, mark: number, netnsPath?: string, timeoutMs?: number): Promise<net.Socket> {
  let fd: number;
  try {
    fd = createMarkedSocket(mark, netnsPath);
  } catch (err) {
    // Always a rejected promise, never a synchronous throw: callers chain .then() on it.
    return Promise.reject(err);
  }
  // Half-open allowed: the relay propagates each direction's end on its own, so an app that finishes sending
  // first still receives the rest of what its client sends.
  const socket = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
  // Relayed writes go out at once (TCP_NODELAY), as the client wrote them: the in-pod listeners (../inpod/driver.ts) say why.
  socket.setNoDelay(true);
  return new Promise((resolve, reject) => {
    // Both listeners stay for the socket's life (the error one does nothing once connected): removing a
    // listener deletes a key of the socket's listener table, which turns it into a dictionary of ~450 bytes,
    // for every connection the agent delivers.
    let connected = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => socket.destroy(Object.assign(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`), { code: "ETIMEDOUT" })),
            timeoutMs,
          );
    socket.on("error", (err) => {
      if (connected) return;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    socket.on("connect", () => {
      connected = true;
      clearTimeout(timer);
      resolve(socket);
    });
    socket.connect(port, host);
  });
}
