// Sandbox API server under load: N concurrent pod watches (a separate process) while pods are written at a fixed rate.
import fs from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { startApiServer } from "../sandbox/apiserver/index.ts";
import { KubeClient } from "../kube/client.ts";

const WATCHERS = Number(process.env.WATCHERS ?? 1000);
const WRITES_PER_SECOND = Number(process.env.WRITES_PER_SECOND ?? 100);
const SECONDS = Number(process.env.SECONDS ?? 10);

interface ClientReport {
  delivered: number;
  lagsMs: number[];
}

async function runWatchers(url: string, token: string, ca: string, count: number): Promise<void> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: Infinity, ca });
  const report: ClientReport = { delivered: 0, lagsMs: [] };
  let open = 0;
  for (let i = 0; i < count; i++) {
    const req = https.request(
      `${url}/api/v1/namespaces/bench/pods?watch=1&resourceVersion=0`,
      { agent, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        open++;
        if (open === count) process.send?.({ type: "ready" });
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            const m = /"bench\/written-at":"(\d+\.?\d*)"/.exec(line);
            if (m) {
              report.delivered++;
              // Sample lags so the report stays small; every event still counts as delivered.
              if (report.delivered % 10 === 0) report.lagsMs.push(performance.timeOrigin + performance.now() - Number(m[1]));
            }
          }
        });
      },
    );
    req.on("error", (err) => console.error("watch failed:", err.message));
    req.end();
  }
  process.on("message", (msg: { type: string }) => {
    if (msg.type === "report") {
      process.send?.({ type: "report", report });
      setTimeout(() => process.exit(0), 100);
    }
  });
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-bench-api-"));
  const api = await startApiServer({ host: "127.0.0.1", port: 0, pkiDir: path.join(dir, "pki"), serviceCidr: "10.96.0.0/16", bookmarkIntervalMs: 60_000 });
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  const client = new KubeClient(kc);
  const child = fork(fileURLToPath(import.meta.url), ["--watchers", api.url, api.adminToken, String(WATCHERS)], {
    env: { ...process.env, BENCH_CA: api.caPem },
  });
  try {
    await client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "bench" } });
    for (let i = 0; i < 50; i++) {
      await client.create("/api/v1/namespaces/bench/pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: `p-${i}` },
        spec: { containers: [{ name: "c", image: "i" }] },
      });
    }
    await new Promise<void>((resolve) => child.once("message", () => resolve()));
    const rssBefore = process.memoryUsage().rss;
    const total = WRITES_PER_SECOND * SECONDS;
    const started = performance.now();
    let lateWrites = 0;
    // Open loop: writes start on schedule whether or not earlier ones have answered, as independent
    // clients would; a server that falls behind shows up as late starts and growing lag.
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / WRITES_PER_SECOND;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else if (wait < -50) lateWrites++;
      if (inFlight.size >= 64) await Promise.race(inFlight);
      const name = `p-${i % 50}`;
      const stamp = String(performance.timeOrigin + performance.now());
      const annotations = { "bench/written-at": stamp };
      const write = client.mergePatch(`/api/v1/namespaces/bench/pods/${name}`, { metadata: { annotations } });
      const tracked = write.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
    await Promise.all(inFlight);
    const writeSeconds = (performance.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    const report = await new Promise<ClientReport>((resolve) => {
      child.on("message", (msg: { type: string; report?: ClientReport }) => {
        if (msg.type === "report" && msg.report) resolve(msg.report);
      });
      child.send({ type: "report" });
    });
    const result = {
      watchers: WATCHERS,
      writes: total,
      targetWritesPerSecond: WRITES_PER_SECOND,
      achievedWritesPerSecond: Number((total / writeSeconds).toFixed(1)),
      writesMoreThan50msLate: lateWrites,
      eventsExpected: total * WATCHERS,
      eventsDelivered: report.delivered,
      lagP50Ms: Number(percentile(report.lagsMs, 50).toFixed(2)),
      lagP99Ms: Number(percentile(report.lagsMs, 99).toFixed(2)),
      lagMaxMs: Number(Math.max(...report.lagsMs).toFixed(2)),
      serverRssMiB: Number((process.memoryUsage().rss / 2 ** 20).toFixed(1)),
      serverRssGrowthMiB: Number(((process.memoryUsage().rss - rssBefore) / 2 ** 20).toFixed(1)),
    };
    console.log("| metric | value |\n|---|---|");
    for (const [k, v] of Object.entries(result)) console.log(`| ${k} | ${v} |`);
    const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");
    await fs.mkdir(out, { recursive: true });
    await fs.writeFile(path.join(out, "apiserver-watch.json"), JSON.stringify(result, null, 2) + "\n");
  } finally {
    child.kill();
    client.close();
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--watchers") {
  await runWatchers(process.argv[3]!, process.argv[4]!, process.env.BENCH_CA ?? "", Number(process.argv[5]));
} else {
  await main();
}
