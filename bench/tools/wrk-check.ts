// Cross-check of the load generator against Debian's wrk: both closed loop (wrk has no fixed-rate mode) against the same 1 KiB server on loopback, alternating, ROUNDS rounds; req/s at saturation and latency under the same load. Writes bench/results/wrk-check.json.
// Two phases per round: saturation (CONNECTIONS connections) and one connection, where ours also runs open loop at OPEN_RATE req/s (latency when nothing queues).
// Environment: ROUNDS (3), SECONDS (10), CONNECTIONS (32), WRK_THREADS (1), OPEN_RATE (1000). Needs `wrk` (apt-get install -y wrk).
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { median } from "./process-stats.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 10);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
const WRK_THREADS = Number(process.env.WRK_THREADS ?? 1);
const OPEN_RATE = Number(process.env.OPEN_RATE ?? 1000);
const TOOLS = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(TOOLS, "..", "results");
const NODE = process.execPath;

interface Run {
  requestsPerSecond: number;
  requests: number;
  errors: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** wrk's durations: `812.00us`, `1.23ms`, `2.00s`, `1.00m`, in milliseconds. */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`unreadable wrk duration ${JSON.stringify(text)}`);
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "us" | "ms" | "s" | "m" | "h"];
  return Number((Number(m[1]) * scale).toFixed(3));
}

/** The figures of `wrk --latency` output. */
export function parseWrk(out: string): Run {
  const field = (re: RegExp) => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk output without ${re}:\n${out}`);
    return m;
  };
  const latency = field(/^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m);
  const pct = (p: string) => wrkMs(field(new RegExp(`^\\s*${p}%\\s+(\\S+)`, "m"))[1]!);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requestsPerSecond: Number(field(/Requests\/sec:\s+([\d.]+)/)[1]),
    requests: Number(field(/(\d+) requests in/)[1]),
    errors: (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + Number(non2xx?.[1] ?? 0),
    p50Ms: pct("50"),
    p90Ms: pct("90"),
    p99Ms: pct("99"),
    maxMs: wrkMs(latency[3]!),
    meanMs: wrkMs(latency[1]!),
  };
}

/** One measured configuration: wrk and ours (and optionally ours open loop), alternating each round. */
interface Phase {
  name: string;
  connections: number;
  /** Also run ours open loop at this rate over the same connections (latency when nothing queues). */
  openLoopRate?: number;
}

async function main(): Promise<void> {
  const wrkVersion = await execa("wrk", ["--version"], { reject: false });
  if (!`${wrkVersion.stdout}${wrkVersion.stderr}`.includes("wrk")) throw new Error("wrk is not installed: apt-get install -y wrk");
  const server = execa(NODE, [path.join(TOOLS, "http-server.ts")], { env: { PORT: "0", HOST: "127.0.0.1" }, reject: false });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      server.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /"listening","port":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      void server.then((r) => reject(new Error(`the bench server exited: ${r.stderr}`)));
    });
    const url = `http://127.0.0.1:${port}/`;
    const target = `127.0.0.1:${port}`;
    const timeout = (SECONDS + 30) * 1000;
    const wrkArgs = (c: number) => ["-t", String(Math.min(WRK_THREADS, c)), "-c", String(c), "-d", `${SECONDS}s`, "--latency", url];
    const oursArgs = (c: number, rate?: number) => [
      path.join(TOOLS, "http-load.ts"),
      ...(rate ? ["--mode", "rate", "--rate", String(rate)] : ["--mode", "max"]),
      ...["--connections", String(c), "--seconds", String(SECONDS), "--target", target],
    ];
    const runWrk = async (c: number): Promise<Run> => parseWrk((await execa("wrk", wrkArgs(c), { timeout })).stdout);
    const runOurs = async (c: number, rate?: number): Promise<Run> => {
      const r = JSON.parse((await execa(NODE, oursArgs(c, rate), { timeout })).stdout.trim().split("\n").at(-1)!) as Run & { achievedRate: number };
      const { p50Ms, p90Ms, p99Ms, maxMs, meanMs, requests, errors } = r;
      return { requestsPerSecond: r.requestsPerSecond ?? r.achievedRate, requests, errors, p50Ms, p90Ms, p99Ms, maxMs, meanMs };
    };
    const phases: Phase[] = [
      { name: "saturation", connections: CONNECTIONS },
      { name: "one connection", connections: 1, openLoopRate: OPEN_RATE },
    ];
    // Warm the server (JIT) before the first measured run.
    await execa("wrk", ["-t", "1", "-c", String(CONNECTIONS), "-d", "3s", url]);
    const loadBefore = os.loadavg();
    type Round = { order: string; wrk: Run; ours: Run; oursOpenLoop?: Run };
    const rounds: Record<string, Round[]> = Object.fromEntries(phases.map((p) => [p.name, []]));
    for (let r = 1; r <= ROUNDS; r++) {
      for (const phase of phases) {
        // Alternate which goes first, so neither always meets the warmer (or the busier) machine.
        const wrkFirst = r % 2 === 1;
        const round: Partial<Round> = { order: wrkFirst ? "wrk, ours" : "ours, wrk" };
        if (wrkFirst) round.wrk = await runWrk(phase.connections);
        round.ours = await runOurs(phase.connections);
        if (!wrkFirst) round.wrk = await runWrk(phase.connections);
        if (phase.openLoopRate) round.oursOpenLoop = await runOurs(phase.connections, phase.openLoopRate);
        rounds[phase.name]!.push(round as Round);
        console.log(
          `round ${r}, ${phase.name} (${round.order}): wrk ${round.wrk!.requestsPerSecond} req/s p50 ${round.wrk!.p50Ms} p99 ${round.wrk!.p99Ms} ms; ` +
            `ours ${round.ours.requestsPerSecond} req/s p50 ${round.ours.p50Ms} p99 ${round.ours.p99Ms} ms` +
            (round.oursOpenLoop
              ? `; ours open loop ${round.oursOpenLoop.requestsPerSecond} req/s p50 ${round.oursOpenLoop.p50Ms} p99 ${round.oursOpenLoop.p99Ms} ms`
              : ""),
        );
      }
    }
    const keys: Array<keyof Run> = ["requestsPerSecond", "p50Ms", "p90Ms", "p99Ms", "maxMs", "meanMs", "errors"];
    const medians = (rs: Round[], tool: "wrk" | "ours" | "oursOpenLoop") => Object.fromEntries(keys.map((k) => [k, median(rs.map((r) => r[tool]![k]))]));
    const summary = {
      date: new Date().toISOString(),
      command: `ROUNDS=${ROUNDS} SECONDS=${SECONDS} CONNECTIONS=${CONNECTIONS} WRK_THREADS=${WRK_THREADS} OPEN_RATE=${OPEN_RATE} npx node bench/tools/wrk-check.ts`,
      wrkVersion: `${wrkVersion.stdout}${wrkVersion.stderr}`.split("\n")[0],
      commands: Object.fromEntries(
        phases.map((p) => [
          p.name,
          {
            wrk: `wrk ${wrkArgs(p.connections).join(" ")}`,
            ours: `node bench/tools/http-load.ts ${oursArgs(p.connections).slice(1).join(" ")}`,
            ...(p.openLoopRate ? { oursOpenLoop: `node bench/tools/http-load.ts ${oursArgs(p.connections, p.openLoopRate).slice(1).join(" ")}` } : {}),
          },
        ]),
      ),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadAverageBefore: loadBefore.map((x) => Number(x.toFixed(2))),
      loadAverageAfter: os.loadavg().map((x) => Number(x.toFixed(2))),
      server: "bench/tools/http-server.ts (node:http, 1 KiB body, keep-alive), one process on 127.0.0.1",
      loop: "wrk and ours: closed loop, each connection sends its next request when the previous answer arrives, latency from each request's send; oursOpenLoop: ours at a fixed rate, latency from each request's intended send time",
      median: Object.fromEntries(
        phases.map((p) => {
          const rs = rounds[p.name]!;
          const wrk = medians(rs, "wrk");
          const ours = medians(rs, "ours");
          const ratio = Object.fromEntries(keys.filter((k) => k !== "errors").map((k) => [k, Number((ours[k]! / wrk[k]!).toFixed(3))]));
          return [p.name, { wrk, ours, oursOverWrk: ratio, ...(p.openLoopRate ? { oursOpenLoop: medians(rs, "oursOpenLoop") } : {}) }];
        }),
      ),
      rounds,
    };
    for (const p of phases) {
      const m = summary.median[p.name] as Record<string, Record<string, number>>;
      console.log(`\n| ${p.name}: ${p.connections} connection(s), ${SECONDS} s, median of ${ROUNDS} | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |`);
      console.log("|---|---|---|---|---|---|---|");
      for (const [tool, label] of [
        ["wrk", "wrk (closed loop)"],
        ["ours", "ours, max mode (closed loop)"],
        ["oursOpenLoop", `ours, rate mode at ${p.openLoopRate} req/s (open loop)`],
      ] as const) {
        const x = m[tool];
        if (x) console.log(`| ${label} | ${x.requestsPerSecond} | ${x.p50Ms} | ${x.p90Ms} | ${x.p99Ms} | ${x.maxMs} | ${x.errors} |`);
      }
    }
    const out = path.join(RESULTS, "wrk-check.json");
    await fs.mkdir(RESULTS, { recursive: true });
    await fs.writeFile(out, JSON.stringify(summary, null, 2) + "\n");
    console.log(`\nwrote ${out}`);
  } finally {
    if (server.pid && server.exitCode === null) process.kill(server.pid, "SIGTERM");
    await server;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
