// Per-connection cost of the agent's L4 policy decision as one policy grows (issue 10 item 2): check time and build time.
import fs from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { PolicyStore } from "../agent/authorization/index.ts";
import type { InboundAttributes } from "../agent/dataplane/index.ts";
import type { Workload } from "../agent/state/index.ts";
import { compileAuthorizationPolicy } from "../controller/authorization/index.ts";
import { REPO_ROOT } from "../sandbox/config.ts";

const SIZES = (process.env.SIZES ?? "10,1000,20000").split(",").map(Number);
/** Decisions timed per size; each one is a new connection's check, with a source address that changes every time. */
const CHECKS = Number(process.env.CHECKS ?? 2000);

const payments: Workload = {
  uid: "p",
  namespace: "demo",
  name: "payments-1",
  workloadName: "payments",
  serviceAccount: "payments",
  node: "node-2",
  ip: "10.244.2.3",
  captured: true,
  labels: { app: "payments" },
};
const blocks = (n: number) => Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
const principals = (n: number) => Array.from({ length: n }, (_, i) => `cluster.local/ns/ns-${i}/sa/app`);
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

interface Row {
  values: number;
  kind: string;
  buildMs: number;
  checkP50Us: number;
  checkP99Us: number;
  heapMiB: number;
}

const rows: Row[] = [];
for (const n of SIZES) {
  for (const [kind, source] of [
    ["DENY ipBlocks", { ipBlocks: blocks(n) }],
    ["ALLOW principals", { principals: principals(n) }],
  ] as const) {
    const object = {
      apiVersion: "security.ambit.dev/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: "big", namespace: "demo" },
      spec: { action: kind.startsWith("DENY") ? "DENY" : "ALLOW", rules: [{ from: [{ source }] }] },
    };
    const compiled = compileAuthorizationPolicy(object).compiled;
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const store = new PolicyStore({ rootNamespace: "ambit-system" });
    const t0 = performance.now();
    store.replace([compiled], []);
    const buildMs = performance.now() - t0;
    const times: number[] = [];
    for (let i = 0; i < CHECKS; i++) {
      const conn: InboundAttributes = {
        source: { trustDomain: "cluster.local", namespace: `ns-${i}`, serviceAccount: "app" },
        sourceIp: `10.244.${(i >> 8) & 255}.${i & 255}`,
        destination: payments,
        destinationIp: payments.ip,
        destinationPort: 8080,
      };
      const start = performance.now();
      store.check(conn);
      times.push((performance.now() - start) * 1000);
    }
    times.sort((a, b) => a - b);
    globalThis.gc?.();
    rows.push({
      values: n,
      kind,
      buildMs: Math.round(buildMs * 100) / 100,
      checkP50Us: Math.round(quantile(times, 0.5) * 10) / 10,
      checkP99Us: Math.round(quantile(times, 0.99) * 10) / 10,
      heapMiB: Math.round(((process.memoryUsage().heapUsed - heapBefore) / 2 ** 20) * 10) / 10,
    });
  }
}

console.log("| values in the policy | policy | build once per config (ms) | check p50 (µs) | check p99 (µs) | heap held (MiB) |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.values.toLocaleString("en")} | ${r.kind} | ${r.buildMs} | ${r.checkP50Us} | ${r.checkP99Us} | ${r.heapMiB} |`);
const out = path.join(REPO_ROOT, "bench", "results", "policy-check.json");
await fs.mkdir(path.dirname(out), { recursive: true });
await fs.writeFile(out, JSON.stringify({ checks: CHECKS, rows }, null, 2) + "\n");
console.log(`\nwritten: ${path.relative(REPO_ROOT, out)}`);
