// What relaying costs on this machine before any agent logic: direct, a C relay pair, a Node TCP relay pair and a minimal Node HBONE pair, on loopback.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type ResultPromise, execa } from "execa";
import { REPO_ROOT } from "../sandbox/config.ts";
import { TestCa } from "../test/support/test-ca.ts";
import { cpuTimes, median, rssKiB } from "./tools/process-stats.ts";

/**
 * The same load as bench/dataplane-l4.ts (keep-alive HTTP/1.1, 1 KiB answers, 16 connections at a fixed rate;
 * closed loop for the maximum; N held connections for memory) through two relays in a row, as a source and a
 * destination agent would be. The relays are the agent's own byte relay (`agent/relay`) with nothing else of
 * the agent, so the gap between these numbers and the agent's is the agent's own work, and the C pair shows
 * what the kernel and the hypervisor take whatever the relay is written in.
 */
const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const HELD_CONNECTIONS = Number(process.env.HELD_CONNECTIONS ?? 10_000);
const NODE = path.join(REPO_ROOT, "node_modules", "node", "bin", "node");
const TOOLS = path.join(REPO_ROOT, "bench", "tools");
const PORTS = { server: 18080, source: 18101, destination: 18102 };

type Mode = "direct" | "c-tcp" | "node-tcp" | "node-hbone";
const MODES: Mode[] = ["direct", "c-tcp", "node-tcp", "node-hbone"];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Every process gets room for the held connections' descriptors. */
const spawn = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  execa("sh", ["-c", 'ulimit -n 65536; exec "$@"', "sh", cmd, ...args], { reject: false, stdin: "pipe", env });
const children: ResultPromise[] = [];

/** A started process, wrapped: a subprocess is a thenable, so returning it from an async function would wait for its exit. */
async function started(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ child: ResultPromise; output: () => string }> {
  const child = spawn(cmd, args, env);
  children.push(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!out.includes('"listening"')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop(child);
      throw new Error(`${path.basename(args[0] ?? cmd)} did not start: ${(await child).stderr}`);
    }
    await sleep(50);
  }
  return { child, output: () => out };
}

function stop(child: ResultPromise): Promise<unknown> {
  try {
    if (child.pid && child.exitCode === null) process.kill(child.pid, "SIGTERM");
  } catch {
    // Already gone (its exit not yet seen here).
  }
  return child;
}

async function load(port: number, mode: string, extra: string[]): Promise<Record<string, number>> {
  const { stdout } = await execa(NODE, [path.join(TOOLS, "http-load.ts"), "--mode", mode, "--target", `127.0.0.1:${port}`, ...extra], { timeout: 120_000 });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, number>;
}

/** Starts the relay pair of a mode; returns the port the client dials and the relays' PIDs (none for direct). */
interface Relays {
  port: number;
  pids: number[];
  all: ResultPromise[];
  /** Each Node relay's memory after a full collection (RSS read from /proc for the C relay). */
  memory(): Promise<Array<{ rssKiB: number; liveKiB?: number }>>;
}

/** `dir` holds the relays' certificates and the compiled C relay. */
async function relays(mode: Mode, dir: string): Promise<Relays> {
  const relay = (args: string[]) => started(NODE, [path.join(TOOLS, "floor-relay.ts"), ...args]);
  let pair: Array<{ child: ResultPromise; output: () => string }> = [];
  if (mode === "direct") return { port: PORTS.server, pids: [], all: [], memory: async () => [] };
  if (mode === "c-tcp") {
    const binary = path.join(dir, "tcp-relay");
    pair = [
      await started(binary, [String(PORTS.destination), "127.0.0.1", String(PORTS.server)]),
      await started(binary, [String(PORTS.source), "127.0.0.1", String(PORTS.destination)]),
    ];
  } else if (mode === "node-tcp") {
    pair = [
      await relay(["--kind", "tcp", "--listen", String(PORTS.destination), "--to", `127.0.0.1:${PORTS.server}`]),
      await relay(["--kind", "tcp", "--listen", String(PORTS.source), "--to", `127.0.0.1:${PORTS.destination}`]),
    ];
  } else {
    pair = [
      await relay(["--kind", "hbone", "--role", "dest", "--listen", String(PORTS.destination), "--certs", dir]),
      await relay([
        "--kind",
        "hbone",
        "--role",
        "source",
        "--listen",
        String(PORTS.source),
        "--to",
        `127.0.0.1:${PORTS.destination}`,
        "--target",
        `127.0.0.1:${PORTS.server}`,
        "--certs",
        dir,
      ]),
    ];
  }
  const memory = async () => {
    if (mode === "c-tcp") return Promise.all(pair.map(async (p) => ({ rssKiB: await rssKiB(p.child.pid!) })));
    const seen = pair.map((p) => p.output().length);
    for (const p of pair) process.kill(p.child.pid!, "SIGUSR2");
    await sleep(1500);
    return pair.map((p, i) => {
      const line = p
        .output()
        .slice(seen[i])
        .split("\n")
        .find((l) => l.includes('"memory"'));
      if (!line) throw new Error("a relay did not report its memory");
      const m = (JSON.parse(line) as { memory: { rssKiB: number; heapUsedKiB: number; externalKiB: number } }).memory;
      return { rssKiB: m.rssKiB, liveKiB: m.heapUsedKiB + m.externalKiB };
    });
  };
  return { port: PORTS.source, pids: pair.map((p) => p.child.pid!), all: pair.map((p) => p.child), memory };
}

interface ModeResult {
  p50Ms: number[];
  p99Ms: number[];
  maxRps: number[];
  /** Per relay process (destination, source), vCPU per 1,000 req/s. */
  cpuPer1kRps: number[][];
  /** Per relay process, the share of its CPU time spent in the kernel (system calls, and the network stack they run). */
  kernelShare: number[][];
  /** Per relay, RSS growth per held connection after a full collection (measured in the first round only). */
  perConnectionKiBPerRelay?: number[];
  /** V8 heap used plus external memory per held connection, per relay (Node relays). */
  perConnectionLiveKiBPerRelay?: number[];
}

async function measure(mode: Mode, dir: string, result: ModeResult): Promise<void> {
  const { port, pids, all, memory } = await relays(mode, dir);
  try {
    await load(port, "max", ["--seconds", "1", "--connections", "4"]);
    const before = await Promise.all(pids.map(cpuTimes));
    const t0 = performance.now();
    const latency = await load(port, "rate", ["--rate", String(RATE), "--seconds", String(SECONDS), "--connections", "16"]);
    const wall = (performance.now() - t0) / 1000;
    const after = await Promise.all(pids.map(cpuTimes));
    result.p50Ms.push(latency.p50Ms!);
    result.p99Ms.push(latency.p99Ms!);
    const used = pids.map((_, i) => ({ user: after[i]!.user - before[i]!.user, kernel: after[i]!.kernel - before[i]!.kernel }));
    result.cpuPer1kRps.push(used.map((u) => Number(((u.user + u.kernel) / wall / (latency.achievedRate! / 1000)).toFixed(4))));
    result.kernelShare.push(used.map((u) => Number((u.kernel / (u.user + u.kernel)).toFixed(2))));
    result.maxRps.push((await load(port, "max", ["--seconds", "5", "--connections", "32"])).requestsPerSecond!);
    if (result.perConnectionKiBPerRelay === undefined && pids.length > 0) {
      const m0 = await memory();
      const held = spawn(NODE, [
        path.join(TOOLS, "http-load.ts"),
        "--mode",
        "hold",
        "--target",
        `127.0.0.1:${port}`,
        "--connections",
        String(HELD_CONNECTIONS),
      ]);
      children.push(held);
      let report = "";
      held.stdout?.on("data", (d: Buffer) => (report += d.toString()));
      const deadline = Date.now() + 180_000;
      while (!report.includes('"mode":"hold"') && Date.now() < deadline && held.exitCode === null) await sleep(200);
      await sleep(3000);
      const m1 = await memory();
      const ok = JSON.parse(
        report
          .trim()
          .split("\n")
          .find((l) => l.includes('"mode":"hold"')) ?? '{"ok":0}',
      ).ok as number;
      if (ok !== HELD_CONNECTIONS) console.warn(`${mode}: only ${ok} of ${HELD_CONNECTIONS} held connections answered`);
      const per = (f: (x: { rssKiB: number; liveKiB?: number }) => number | undefined) =>
        m1.map((x, i) => Number((((f(x) ?? NaN) - (f(m0[i]!) ?? NaN)) / HELD_CONNECTIONS).toFixed(2)));
      result.perConnectionKiBPerRelay = per((x) => x.rssKiB);
      if (mode !== "c-tcp") result.perConnectionLiveKiBPerRelay = per((x) => x.liveKiB);
      held.stdin?.end();
      await held;
    }
  } finally {
    await Promise.all(all.map(stop));
  }
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-floor-"));
  try {
    const ca = TestCa.create();
    const id = { trustDomain: "cluster.local", namespace: "bench", serviceAccount: "relay" };
    const creds = ca.issue(id);
    await fs.writeFile(path.join(dir, "ca.pem"), ca.rootPem);
    await fs.writeFile(path.join(dir, "cert.pem"), creds.certChainPem);
    await fs.writeFile(path.join(dir, "key.pem"), creds.keyPem, { mode: 0o600 });
    await execa("cc", ["-O2", "-o", path.join(dir, "tcp-relay"), path.join(TOOLS, "tcp-relay.c")]);
    await started(NODE, [path.join(TOOLS, "http-server.ts")], { PORT: String(PORTS.server) });
    const results = Object.fromEntries(MODES.map((m) => [m, { p50Ms: [], p99Ms: [], maxRps: [], cpuPer1kRps: [], kernelShare: [] } as ModeResult])) as Record<
      Mode,
      ModeResult
    >;
    for (let r = 1; r <= ROUNDS; r++) {
      for (const mode of MODES) await measure(mode, dir, results[mode]);
      console.log(`round ${r}: ` + MODES.map((m) => `${m} p50 ${results[m].p50Ms.at(-1)} ms, cpu ${JSON.stringify(results[m].cpuPer1kRps.at(-1))}`).join("; "));
    }
    const summary = Object.fromEntries(
      MODES.map((m) => {
        const x = results[m];
        const perRelay = (rows: number[][]) => (rows.length && rows[0]!.length ? [0, 1].map((i) => median(rows.map((c) => c[i]!))) : []);
        const cpu = perRelay(x.cpuPer1kRps);
        const kernel = perRelay(x.kernelShare);
        return [
          m,
          {
            p50Ms: median(x.p50Ms),
            p99Ms: median(x.p99Ms),
            maxRps: median(x.maxRps),
            cpuPer1kRpsPerRelay: { destination: cpu[0], source: cpu[1] },
            kernelShareOfCpu: { destination: kernel[0], source: kernel[1] },
            perConnectionKiB: {
              destination: x.perConnectionKiBPerRelay?.[0],
              source: x.perConnectionKiBPerRelay?.[1],
              both: x.perConnectionKiBPerRelay && Number(x.perConnectionKiBPerRelay.reduce((a, v) => a + v, 0).toFixed(2)),
            },
            perConnectionLiveKiB: { destination: x.perConnectionLiveKiBPerRelay?.[0], source: x.perConnectionLiveKiBPerRelay?.[1] },
            raw: x,
          },
        ];
      }),
    );
    console.log(
      `\n| two relays in a row, @${RATE} req/s | p50 ms | p99 ms | max req/s (32 conns) | vCPU per 1k req/s, dest / source relay (kernel share) | RSS per held connection after GC, dest + source = both (KiB) | heap+external per held connection, dest / source (KiB) |\n|---|---|---|---|---|---|---|`,
    );
    for (const m of MODES) {
      const s = summary[m] as {
        p50Ms: number;
        p99Ms: number;
        maxRps: number;
        cpuPer1kRpsPerRelay: { destination?: number; source?: number };
        kernelShareOfCpu: { destination?: number; source?: number };
        perConnectionKiB: { destination?: number; source?: number; both?: number };
        perConnectionLiveKiB: { destination?: number; source?: number };
      };
      const mem = s.perConnectionKiB.both === undefined ? "-" : `${s.perConnectionKiB.destination} + ${s.perConnectionKiB.source} = ${s.perConnectionKiB.both}`;
      const live = s.perConnectionLiveKiB.destination === undefined ? "-" : `${s.perConnectionLiveKiB.destination} / ${s.perConnectionLiveKiB.source}`;
      console.log(
        `| ${m} | ${s.p50Ms} | ${s.p99Ms} | ${s.maxRps} | ${m === "direct" ? "-" : `${s.cpuPer1kRpsPerRelay.destination} / ${s.cpuPer1kRpsPerRelay.source} (kernel ${s.kernelShareOfCpu.destination} / ${s.kernelShareOfCpu.source})`} | ${mem} | ${live} |`,
      );
    }
    const out = path.join(REPO_ROOT, "bench", "results", "dataplane-floor.json");
    await fs.writeFile(
      out,
      JSON.stringify({ rate: RATE, seconds: SECONDS, rounds: ROUNDS, heldConnections: HELD_CONNECTIONS, modes: summary }, null, 2) + "\n",
    );
    console.log(`\nwritten to ${path.relative(REPO_ROOT, out)}`);
  } finally {
    await Promise.all(children.map(stop));
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
