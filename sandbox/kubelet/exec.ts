// What the kubelet runs for exec, attach and port-forward: processes with pipes or a pty, and connections made inside a pod's network namespace.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import net from "node:net";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import type { ProcessResult, ProcessSession, TerminalSize } from "../apiserver/index.ts";

/** The host's python3 (a pyenv shim on PATH needs environment the pod's does not have). */
const PYTHON = ["/usr/bin/python3", "/usr/local/bin/python3"].find((p) => existsSync(p)) ?? "python3";

/**
 * Runs argv[2:] on a new pty and relays it: fd 0 to the terminal, the terminal to fd 1, and "<cols> <rows>" lines read
 * on fd 3 become the terminal's size (the kernel then signals SIGWINCH). argv[1] is how long (ms) to wait for a first
 * size before starting the command, so a shell starts at the client's size. Exits with the command's exit code (128+n
 * for a signal). Node has no pty of its own, hence python's pty support, which every host here has.
 */
const PTY_HELPER = String.raw`
import fcntl, os, select, signal, struct, sys, termios
wait_ms, argv = int(sys.argv[1]), sys.argv[2:]
ctl_buf = b""
def resize(fd, line):
    try:
        cols, rows = (int(x) for x in line.split())
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except (ValueError, OSError):
        pass
def read_ctl(fd):
    global ctl_buf
    data = os.read(3, 4096)
    if not data:
        return False
    ctl_buf += data
    while b"\n" in ctl_buf:
        line, ctl_buf = ctl_buf.split(b"\n", 1)
        resize(fd, line.decode("ascii", "replace"))
    return True
def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]
master, slave = os.openpty()
ctl_open = True
if wait_ms > 0 and select.select([3], [], [], wait_ms / 1000)[0]:
    ctl_open = read_ctl(slave)
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.closerange(3, 1024)
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        os.write(2, ("%s: %s\r\n" % (argv[0], e.strerror)).encode())
        os._exit(127)
os.close(slave)
def stop(signum, frame):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    os._exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
os.set_blocking(master, False)
pending, stdin_open, status = b"", True, None
while True:
    rl = [master] + ([0] if stdin_open and not pending else []) + ([3] if ctl_open else [])
    r, w, _ = select.select(rl, [master] if pending else [], [], 0.2)
    if master in r:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        if data == b"":
            break
        if data:
            write_all(1, data)
    if 0 in r:
        data = os.read(0, 65536)
        if data:
            pending += data
        else:
            stdin_open, pending = False, pending + b"\x04"
    if w and pending:
        try:
            pending = pending[os.write(master, pending):]
        except BlockingIOError:
            pass
        except OSError:
            pending = b""
    if 3 in r:
        ctl_open = read_ctl(master)
    if status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            # The command is gone; what it wrote last is still in the terminal: read it, without waiting on
            # processes it left behind holding the terminal.
            while select.select([master], [], [], 0.1)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                write_all(1, data)
            break
if status is None:
    _, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.exit(128 - code if code < 0 else code)
`;

/** argv that runs `argv` on a pty (see PTY_HELPER); the returned process's fd 3 takes "<cols> <rows>\n" lines. */
export function ptyArgv(argv: string[], waitForSizeMs: number): string[] {
  return [PYTHON, "-c", PTY_HELPER, String(waitForSizeMs), ...argv];
}

/** Writes a terminal size to a pty helper's control pipe. */
export function writeSize(control: Writable | undefined, size: TerminalSize): void {
  if (control && !control.destroyed && !control.writableEnded && size.width > 0 && size.height > 0) control.write(`${size.width} ${size.height}\n`);
}

/** After the process exits, output still held open by processes it left behind is cut off this much later. */
const ORPHAN_OUTPUT_GRACE_MS = 1000;

/** Signals a process group (the session's process was started as its leader). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/**
 * Starts an exec: `argv` (already wrapped to enter the pod) with pipes, or on a pty when `tty` (stdout then carries
 * everything). The session ends when the process has exited and its output has ended; close() kills it.
 */
export function startExec(
  argv: string[],
  env: Record<string, string>,
  opts: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean },
): ProcessSession {
  const full = opts.tty ? ptyArgv(argv, 500) : argv;
  const child = spawn(full[0]!, full.slice(1), {
    env,
    detached: true,
    stdio: [
      opts.stdin ? "pipe" : "ignore",
      opts.stdout || opts.tty ? "pipe" : "ignore",
      opts.stderr || opts.tty ? "pipe" : "ignore",
      opts.tty ? "pipe" : "ignore",
    ],
  });
  // Node discards output nothing reads by the time a child exits (it resumes unread stdio then): the session's
  // streams are consumers from the start, which keep it until the client reads it (and hold the command back when
  // it writes more than they buffer, as a pipe would). With a TTY, the helper's own failures (no python, a broken
  // pty) reach the user with the terminal's output.
  const sources = [child.stdout, child.stderr].filter((x): x is Readable => x !== null);
  const outputs: PassThrough[] = [];
  const collect = (from: Readable[]) => {
    const out = new PassThrough();
    let open = from.length;
    for (const src of from) {
      src.pipe(out, { end: false });
      src.once("end", () => --open === 0 && out.end());
    }
    outputs.push(out);
    return out;
  };
  const stdout = opts.tty ? collect(sources) : child.stdout ? collect([child.stdout]) : undefined;
  const stderr = !opts.tty && opts.stderr && child.stderr ? collect([child.stderr]) : undefined;
  const control = opts.tty ? (child.stdio[3] as Writable | null | undefined) : undefined;
  control?.on("error", () => {});
  child.stdin?.on("error", () => {});
  const done = new Promise<ProcessResult>((resolve) => {
    child.once("error", (err) =>
      resolve({
        error: opts.tty
          ? `failed to start the terminal helper (${full[0]}; a TTY needs python3): ${err.message}`
          : `failed to start ${full[0]}: ${err.message}`,
      }),
    );
    child.once("exit", () => {
      const t = setTimeout(() => {
        for (const src of sources) src.destroy();
        for (const out of outputs) out.end();
      }, ORPHAN_OUTPUT_GRACE_MS);
      t.unref();
    });
    child.once("close", (code, signal) => resolve({ exitCode: code ?? (signal ? 128 + (osSignal(signal) ?? 9) : 1) }));
  });
  return {
    stdin: child.stdin ?? undefined,
    stdout,
    stderr,
    resize: (size) => writeSize(control ?? undefined, size),
    done,
    close: () => {
      // The helper kills the command's own session on SIGTERM; without a pty the group is the command's.
      killGroup(child, opts.tty ? "SIGTERM" : "SIGKILL");
      const t = setTimeout(() => killGroup(child, "SIGKILL"), 2000);
      t.unref();
      child.stdin?.destroy();
    },
  };
}

function osSignal(name: NodeJS.Signals): number | undefined {
  return (
    {
      SIGHUP: 1,
      SIGINT: 2,
      SIGQUIT: 3,
      SIGKILL: 9,
      SIGPIPE: 13,
      SIGTERM: 15,
    } as Partial<Record<NodeJS.Signals, number>>
  )[name];
}

// ---- port-forward ----------------------------------------------------------------------------------------------

const DIALER_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "netns-dialer.ts");
/** A dialer with nothing to do for this long exits; the next port-forward starts another. */
const DIALER_IDLE_MS = 60_000;

interface DialReply {
  id: number;
  error?: string;
}

/**
 * Connections to localhost ports inside one network namespace, as a kubelet makes them for port-forward: a small
 * process in that namespace connects and passes each connected socket back over its IPC channel, so the data then
 * flows between the API server and the pod without another copy.
 */
export class NetnsDialer {
  readonly #netns: string;
  readonly #enter: string[];
  #child: ChildProcess | undefined;
  #ready: Promise<ChildProcess> | undefined;
  #nextId = 1;
  readonly #waiting = new Map<number, { resolve: (s: net.Socket) => void; reject: (e: Error) => void }>();
  #idle: NodeJS.Timeout | undefined;

  /** `enter` runs a command in the namespace (tests pass [] to dial in their own). */
  constructor(netns: string, enter: string[] = ["nsenter", `--net=/run/netns/${netns}`, "--"]) {
    this.#netns = netns;
    this.#enter = enter;
  }

  async dial(port: number): Promise<net.Socket> {
    clearTimeout(this.#idle);
    const child = await (this.#ready ??= this.#start());
    const id = this.#nextId++;
    return new Promise<net.Socket>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      child.send({ id, port }, (err) => {
        if (!err) return;
        this.#waiting.delete(id);
        reject(err);
      });
    }).finally(() => this.#armIdle());
  }

  #start(): Promise<ChildProcess> {
    const [program, ...args] = [...this.#enter, process.execPath, DIALER_SCRIPT];
    const child = spawn(program!, args, {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      serialization: "json",
    });
    this.#child = child;
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    const fail = (why: string) => {
      if (this.#child === child) {
        this.#child = undefined;
        this.#ready = undefined;
      }
      for (const w of this.#waiting.values()) w.reject(new Error(why));
      this.#waiting.clear();
    };
    child.on("message", (msg: DialReply, handle: unknown) => {
      const w = this.#waiting.get(msg.id);
      if (!w) {
        if (handle instanceof net.Socket) handle.destroy();
        return;
      }
      this.#waiting.delete(msg.id);
      if (msg.error || !(handle instanceof net.Socket)) w.reject(new Error(msg.error ?? "the dialer returned no connection"));
      else w.resolve(handle);
    });
    return new Promise((resolve, reject) => {
      child.once("message", () => resolve(child));
      child.once("error", (err) => {
        fail(`cannot enter network namespace ${this.#netns}: ${err.message}`);
        reject(err);
      });
      child.once("exit", (code) => {
        const why = `the port-forward dialer in network namespace ${this.#netns} exited (${code}): ${stderr.trim()}`;
        fail(why);
        reject(new Error(why));
      });
    });
  }

  #armIdle(): void {
    clearTimeout(this.#idle);
    if (this.#waiting.size > 0) return;
    this.#idle = setTimeout(() => this.close(), DIALER_IDLE_MS);
    this.#idle.unref();
  }

  close(): void {
    clearTimeout(this.#idle);
    this.#child?.kill("SIGKILL");
    this.#child = undefined;
    this.#ready = undefined;
  }
}
