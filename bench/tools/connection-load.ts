// Steady new-connection load: one HTTP/1.1 request per fresh TCP connection at a fixed rate; prints a JSON tally of outcomes.
import http from "node:http";

const [url, rateArg = "50", secondsArg = "10", expectArg = ""] = process.argv.slice(2);
if (!url) {
  console.error("usage: connection-load.ts <url> [connections per second] [seconds] [text the body must contain]");
  process.exit(2);
}
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const agent = new http.Agent({ keepAlive: false });

interface Tally {
  sent: number;
  ok: number;
  refused: number;
  reset: number;
  timeout: number;
  badAnswer: number;
  other: number;
  errors: Record<string, number>;
  latencyMs: number[];
}
const tally: Tally = { sent: 0, ok: 0, refused: 0, reset: 0, timeout: 0, badAnswer: 0, other: 0, errors: {}, latencyMs: [] };

/** For a demo-chain reply, the hop that failed and why (the `error` of the innermost hop); else the body's start. */
function whatFailed(body: string): string {
  try {
    let hop = JSON.parse(body) as { service?: string; pod?: string; next?: { error?: string; url?: string } & Record<string, unknown> };
    while (hop.next && !("error" in hop.next)) hop = hop.next as typeof hop;
    if (hop.next?.error) return `${hop.service}/${hop.pod} -> ${hop.next.url}: ${hop.next.error}`;
  } catch {
    // Not the demo's JSON: fall through.
  }
  return body.slice(0, 120);
}

function one(): Promise<void> {
  const started = performance.now();
  tally.sent++;
  return new Promise((resolve) => {
    const fail = (kind: "refused" | "reset" | "timeout" | "badAnswer" | "other", detail: string) => {
      tally[kind]++;
      tally.errors[detail] = (tally.errors[detail] ?? 0) + 1;
      resolve();
    };
    const req = http.get(url!, { agent, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        if (res.statusCode !== 200 || (expectArg && !body.includes(expectArg))) return fail("badAnswer", `HTTP ${res.statusCode}: ${whatFailed(body)}`);
        tally.ok++;
        tally.latencyMs.push(performance.now() - started);
        resolve();
      });
      res.on("error", (err: NodeJS.ErrnoException) => fail(err.code === "ECONNRESET" ? "reset" : "other", err.code ?? err.message));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (err: NodeJS.ErrnoException) => {
      const kind =
        err.code === "ECONNREFUSED" ? "refused" : err.code === "ECONNRESET" || err.code === "EPIPE" ? "reset" : err.code === "ETIMEDOUT" ? "timeout" : "other";
      fail(kind, err.code ?? err.message);
    });
  });
}

// Open loop: requests start on schedule whether or not earlier ones finished, so a stall shows as failures.
const inflight: Promise<void>[] = [];
const start = performance.now();
const total = Math.round(rate * seconds);
for (let i = 0; i < total; i++) {
  const due = start + (i * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  inflight.push(one());
}
await Promise.all(inflight);
const sorted = tally.latencyMs.sort((a, b) => a - b);
const pct = (p: number) => (sorted.length ? Number(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(2)) : null);
const { latencyMs: _latencies, ...counts } = tally;
console.log(JSON.stringify({ ...counts, seconds: Number(((performance.now() - start) / 1000).toFixed(2)), p50Ms: pct(50), p99Ms: pct(99) }));
