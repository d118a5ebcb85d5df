// Config stream push latency and size: one server, simulated agents, one policy-like change that touches every node.
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { Registry } from "prom-client";
import { ConfigStreamClient } from "../agent/config-client/index.ts";
import { type Resource, resourceId } from "../contract/stream.ts";
import { ConfigStreamServer } from "../controller/stream/index.ts";
import { TestCa } from "../test/support/test-ca.ts";

const NODES = Number(process.env.NODES ?? 20);
const WORKLOADS_PER_NODE = Number(process.env.WORKLOADS_PER_NODE ?? 50);
const SERVICES = Number(process.env.SERVICES ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 50);
const DEBOUNCES = (process.env.DEBOUNCE_MS ?? "100,0").split(",").map(Number);

const log = pino({ level: process.env.LOG_LEVEL ?? "silent" });
const id = (sa: string) => ({ trustDomain: "cluster.local", namespace: "ambit-system", serviceAccount: sa });
const ca = TestCa.create();
const controllerCreds = ca.issue(id("ambit-controller"));
const agentCreds = ca.issue(id("ambit-agent"));
const nodes = Array.from({ length: NODES }, (_, i) => `node-${i + 1}`);

/** Shapes close to what the agent will hold: its own workloads, every service, and mesh-wide policy. */
const workloads = new Map(
  nodes.map((node, n) => [
    node,
    Array.from({ length: WORKLOADS_PER_NODE }, (_, w): Resource => ({
      type: "workload",
      key: `demo/app-${n}-${w}`,
      value: {
        uid: `uid-${n}-${w}`,
        ip: `10.${n}.${w >> 8}.${w & 255}`,
        node,
        serviceAccount: `app-${w % 10}`,
        labels: { app: `app-${w % 10}`, version: "v1" },
        services: [`demo/svc-${w % SERVICES}`],
      },
    })),
  ]),
);
const services = Array.from({ length: SERVICES }, (_, s): Resource => ({
  type: "service",
  key: `demo/svc-${s}`,
  value: { vip: `10.96.0.${s}`, ports: [{ port: 80, targetPort: 8080 }] },
}));
let policyRound = 0;
const policy = (): Resource => ({
  type: "authorization",
  key: "ambit-system/mesh-default",
  value: { action: "ALLOW", rules: [{ from: [{ principals: ["cluster.local/ns/demo/sa/*"] }], when: [{ key: "round", values: [String(policyRound)] }] }] },
});
const viewFor = (node: string) => new Map([...(workloads.get(node) ?? []), ...services, policy()].map((r) => [resourceId(r), r]));

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const counter = async (registry: Registry, name: string) => (await registry.getSingleMetric(name)!.get()).values.reduce((s, v) => s + v.value, 0);

async function run(debounceMs: number) {
  policyRound = 0;
  const registry = new Registry();
  const server = new ConfigStreamServer({
    credentials: controllerCreds,
    trustBundlePem: ca.rootPem,
    authenticate: async ({ headers }) => ({ node: String(headers.authorization).replace(/^Bearer token-/, "") }),
    viewFor,
    log,
    registry,
    debounceMs,
  });
  const { port } = await server.listen(0, "127.0.0.1");
  /** Per node, the round it last applied and a waiter for the next one. */
  const applied = new Map<string, number>();
  let waiters: Array<() => void> = [];
  const clients = nodes.map(
    (node) =>
      new ConfigStreamClient({
        url: `https://127.0.0.1:${port}`,
        ca: ca.rootPem,
        credentials: () => agentCreds,
        token: () => `token-${node}`,
        node,
        log,
        serverIdentity: "spiffe://cluster.local/ns/ambit-system/sa/ambit-controller",
        onUpdate: (view) => {
          const p = view.get("authorization/ambit-system/mesh-default")?.value as { rules: Array<{ when: Array<{ values: string[] }> }> };
          applied.set(node, Number(p.rules[0]!.when[0]!.values[0]));
          for (const w of waiters) w();
        },
      }),
  );
  const untilAll = (round: number, onEach?: (node: string) => void) =>
    new Promise<void>((resolve) => {
      const seen = new Set<string>();
      const check = () => {
        for (const node of nodes) {
          if (!seen.has(node) && applied.get(node) === round) {
            seen.add(node);
            onEach?.(node);
          }
        }
        if (seen.size === nodes.length) {
          waiters = waiters.filter((w) => w !== check);
          resolve();
        }
      };
      waiters.push(check);
      check();
    });
  try {
    const connectStart = performance.now();
    for (const c of clients) c.start();
    await untilAll(0);
    const connectMs = performance.now() - connectStart;
    const snapshotBytes = (await counter(registry, "ambit_config_push_bytes_total")) / NODES;

    const allDone: number[] = [];
    const perAgent: number[] = [];
    const bytesBefore = await counter(registry, "ambit_config_push_bytes_total");
    for (let round = 1; round <= ROUNDS; round++) {
      policyRound = round;
      const t0 = performance.now();
      const done = untilAll(round, () => perAgent.push(performance.now() - t0));
      server.changed();
      await done;
      allDone.push(performance.now() - t0);
      // Let acks land and the debounce window pass, so rounds do not overlap.
      await new Promise((r) => setTimeout(r, debounceMs + 20));
    }
    const deltaBytesPerNode = ((await counter(registry, "ambit_config_push_bytes_total")) - bytesBefore) / NODES / ROUNDS;
    allDone.sort((a, b) => a - b);
    perAgent.sort((a, b) => a - b);
    return {
      debounceMs,
      connectAllMs: Math.round(connectMs),
      snapshotBytesPerNode: Math.round(snapshotBytes),
      deltaBytesPerNodePerChange: Math.round(deltaBytesPerNode),
      perAgentMs: { p50: +quantile(perAgent, 0.5).toFixed(2), p99: +quantile(perAgent, 0.99).toFixed(2) },
      allAgentsMs: { p50: +quantile(allDone, 0.5).toFixed(2), p99: +quantile(allDone, 0.99).toFixed(2) },
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  }
}

const results = [];
for (const d of DEBOUNCES) results.push(await run(d));

console.log(
  `config push: ${NODES} nodes × ${WORKLOADS_PER_NODE} workloads (+${SERVICES} services, 1 policy per view), ${ROUNDS} rounds of a change touching every node`,
);
console.log(
  "| debounce ms | changed()→agent p50 / p99 ms | changed()→all agents p50 / p99 ms | delta bytes per node per change | snapshot bytes per node | all agents connected in ms |",
);
console.log("|---|---|---|---|---|---|");
for (const r of results) {
  console.log(
    `| ${r.debounceMs} | ${r.perAgentMs.p50} / ${r.perAgentMs.p99} | ${r.allAgentsMs.p50} / ${r.allAgentsMs.p99} | ${r.deltaBytesPerNodePerChange} | ${r.snapshotBytesPerNode} | ${r.connectAllMs} |`,
  );
}
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results", "config-push.json");
await fs.mkdir(path.dirname(out), { recursive: true });
await fs.writeFile(
  out,
  JSON.stringify({ nodes: NODES, workloadsPerNode: WORKLOADS_PER_NODE, services: SERVICES, rounds: ROUNDS, node: process.version, results }, null, 2) + "\n",
);
console.log(`wrote ${path.relative(process.cwd(), out)}`);
