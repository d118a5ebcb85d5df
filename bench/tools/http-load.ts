// Benchmark client: fixed-rate keep-alive load (latency), closed-loop max throughput, new connections per second, or N idle connections held open.
import net from "node:net";

interface Args {
  mode: "rate" | "max" | "connect" | "hold";
  host: string;
  port: number;
  rate: number;
  seconds: number;
  connections: number;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string, fallback: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
  };
  const [host, port] = get("target", "127.0.0.1:8080").split(":");
  return {
    mode: get("mode", "rate") as Args["mode"],
    host: host!,
    port: Number(port),
    rate: Number(get("rate", "1000")),
    seconds: Number(get("seconds", "10")),
    connections: Number(get("connections", "16")),
  };
}

const REQUEST = (host: string) => Buffer.from(`GET / HTTP/1.1\r\nhost: ${host}\r\n\r\n`);

/**
 * One keep-alive HTTP/1.1 connection with one request in flight at a time. Responses are framed by
 * content-length only (the benchmark server's): a tiny parser keeps the client's own cost out of the numbers.
 */
class Connection {
  readonly socket: net.Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #pending: ((ok: boolean) => void) | undefined;
  busy = false;
  closed = false;

  constructor(host: string, port: number) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    const fail = () => {
      this.closed = true;
      this.#pending?.(false);
      this.#pending = undefined;
    };
    this.socket.on("error", fail);
    this.socket.on("close", fail);
  }

  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
  }

  request(payload: Buffer): Promise<boolean> {
    this.busy = true;
    return new Promise((resolve) => {
      this.#pending = (ok) => {
        this.busy = false;
        resolve(ok);
      };
      this.socket.write(payload);
    });
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
    const headerEnd = this.#buffer.indexOf("\r\n\r\n");
    if (headerEnd < 0) return;
    const head = this.#buffer.subarray(0, headerEnd).toString("latin1");
    const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.#buffer.length < headerEnd + 4 + length) return;
    this.#buffer = this.#buffer.subarray(headerEnd + 4 + length);
    const done = this.#pending;
    this.#pending = undefined;
    done?.(head.startsWith("HTTP/1.1 200"));
  }
}

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);
const round = (n: number, d = 3) => Number(n.toFixed(d));

async function openAll(args: Args, n: number): Promise<Connection[]> {
  const conns: Connection[] = [];
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, () => new Connection(args.host, args.port));
    await Promise.all(batch.map((c) => c.ready()));
    conns.push(...batch);
  }
  return conns;
}

/** Open loop at a fixed rate; latency counts from the scheduled start, so queueing behind a stall is not hidden. */
async function rate(args: Args) {
  const conns = await openAll(args, args.connections);
  const payload = REQUEST(args.host);
  const latencies: number[] = [];
  let errors = 0;
  let dropped = 0;
  const total = Math.round(args.rate * args.seconds);
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / args.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const conn = conns.find((c) => !c.busy && !c.closed);
    if (!conn) {
      dropped++;
      continue;
    }
    // Late (behind a stall): count from when it should have gone. Early (timer granularity): from when it went.
    const from = Math.min(due, performance.now());
    inflight.push(
      conn.request(payload).then((ok) => {
        if (ok) latencies.push(performance.now() - from);
        else errors++;
      }),
    );
  }
  await Promise.all(inflight);
  const elapsed = (performance.now() - start) / 1000;
  for (const c of conns) c.socket.destroy();
  latencies.sort((a, b) => a - b);
  return {
    mode: "rate",
    targetRate: args.rate,
    achievedRate: round(latencies.length / elapsed, 1),
    requests: latencies.length,
    errors,
    dropped,
    p50Ms: round(percentile(latencies, 50)),
    p90Ms: round(percentile(latencies, 90)),
    p99Ms: round(percentile(latencies, 99)),
    maxMs: round(latencies.at(-1) ?? NaN),
  };
}

/** Closed loop: every connection sends its next request as soon as the previous answer arrives. */
async function max(args: Args) {
  const conns = await openAll(args, args.connections);
  const payload = REQUEST(args.host);
  let done = 0;
  let errors = 0;
  const deadline = performance.now() + args.seconds * 1000;
  const start = performance.now();
  await Promise.all(
    conns.map(async (c) => {
      while (performance.now() < deadline && !c.closed) {
        if (await c.request(payload)) done++;
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  for (const c of conns) c.socket.destroy();
  return { mode: "max", connections: args.connections, requestsPerSecond: round(done / elapsed, 1), requests: done, errors };
}

/** Closed loop of connect, one request, close: new connections per second. */
async function connect(args: Args) {
  const payload = REQUEST(args.host);
  let done = 0;
  let errors = 0;
  const deadline = performance.now() + args.seconds * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: args.connections }, async () => {
      while (performance.now() < deadline) {
        const c = new Connection(args.host, args.port);
        try {
          await c.ready();
          if (await c.request(payload)) done++;
          else errors++;
        } catch {
          errors++;
        }
        c.socket.destroy();
      }
    }),
  );
  return {
    mode: "connect",
    workers: args.connections,
    connectionsPerSecond: round(done / ((performance.now() - start) / 1000), 1),
    connectionsMade: done,
    errors,
  };
}

/** Opens N keep-alive connections, makes one request on each, reports, then holds them until stdin closes or SIGTERM. */
async function hold(args: Args) {
  const conns = await openAll(args, args.connections);
  const payload = REQUEST(args.host);
  const oks = await Promise.all(conns.map((c) => c.request(payload)));
  console.log(JSON.stringify({ mode: "hold", open: conns.filter((c) => !c.closed).length, ok: oks.filter(Boolean).length }));
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.stdin.once("end", () => resolve());
    process.stdin.resume();
  });
  for (const c of conns) c.socket.destroy();
  return undefined;
}

const args = parseArgs(process.argv.slice(2));
const modes = { rate, max, connect, hold };
const run = modes[args.mode];
if (!run) {
  console.error(`unknown --mode ${args.mode}; use rate, max, connect or hold`);
  process.exit(2);
}
const result = await run(args);
if (result) console.log(JSON.stringify(result));
process.exit(0);
