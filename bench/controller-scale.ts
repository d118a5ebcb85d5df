// Issue-4 targets end to end: the real controller process against an API server holding PODS pods on NODES nodes,
// with NODES simulated agents on real mTLS config streams: policy change to enforcement on every agent, controller
// memory, and bytes pushed per pod change.
import { fork } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { ConfigStreamClient } from "../agent/config-client/index.ts";
import { ControllerCaClient } from "../agent/identity/controller-ca.ts";
import type { IssuedCertificate } from "../agent/identity/certificates.ts";
import { kubeClientFromFile } from "../kube/kubeconfig.ts";
import { startApiServer } from "../sandbox/apiserver/index.ts";

const PODS = Number(process.env.PODS ?? 10_000);
const NODES = Number(process.env.NODES ?? 20);
const SERVICES = Number(process.env.SERVICES ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 30);
const SETTLE_S = Number(process.env.SETTLE_S ?? 30);
const mib = (kib: number) => Number((kib / 1024).toFixed(1));

/** The V8 options the controller's Deployment sets (the chart rendered with its defaults), so it runs as deployed. */
async function manifestNodeOptions(): Promise<string> {
  const { renderChartDir } = await import("../helm/chart.ts");
  const docs = (await renderChartDir(path.join(REPO_ROOT, "daemonset"), { release: { name: "ambit", namespace: "ambit-system" } })).objects as Array<{
    kind?: string;
    spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } };
  }>;
  const env = docs.find((d) => d?.kind === "Deployment")?.spec?.template?.spec?.containers?.[0]?.env ?? [];
  return env.find((e) => e.name === "NODE_OPTIONS")?.value ?? "";
}
const PORTS = { stream: 25010, ca: 25012, monitoring: 25014 };
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const log = pino({ level: "silent" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(1));
};

/** Runs `fn` over `items` with at most `limit` in flight: bulk creation without drowning the API server. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-controller-scale-"));
  const api = await startApiServer({ host: "127.0.0.1", port: 0, pkiDir: path.join(dir, "pki"), serviceCidr: "10.96.0.0/16", watchHistorySize: 50_000 });
  const kubeconfig = path.join(dir, "kubeconfig");
  await api.writeKubeconfig(kubeconfig);
  const client = kubeClientFromFile(kubeconfig);
  let controller: ReturnType<typeof fork> | undefined;
  const clients: ConfigStreamClient[] = [];
  try {
    const nodes = Array.from({ length: NODES }, (_, i) => `node-${i + 1}`);
    for (const ns of ["ambit-system", "bench"]) await client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    await client.create("/api/v1/namespaces/ambit-system/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "ambit-agent" } });
    for (const node of nodes) await client.create("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
    const agentPods = new Map<string, string>();
    for (const node of nodes) {
      const p = await client.create("/api/v1/namespaces/ambit-system/pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: `agent-${node}` },
        spec: { nodeName: node, hostNetwork: true, serviceAccountName: "ambit-agent", containers: [{ name: "a", image: "ambit.dev/agent:0.1" }] },
      });
      agentPods.set(node, p.metadata.uid!);
    }
    console.log(`creating ${PODS} pods on ${NODES} nodes and ${SERVICES} services...`);
    const started = performance.now();
    const ipOf = (i: number) => `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    await pool(
      Array.from({ length: PODS }, (_, i) => i),
      32,
      async (i) => {
        const created = await client.create("/api/v1/namespaces/bench/pods", {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: `app-${i}`, labels: { app: `svc-${i % SERVICES}` }, annotations: { "ambit.dev/redirection": "enabled" } },
          spec: { nodeName: nodes[i % NODES], serviceAccountName: `sa-${i % 50}`, containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }] },
        });
        await client.request("PUT", `/api/v1/namespaces/bench/pods/app-${i}/status`, { ...created, status: { phase: "Running", podIP: ipOf(i) } });
      },
    );
    for (let s = 0; s < SERVICES; s++) {
      await client.create("/api/v1/namespaces/bench/services", {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: `svc-${s}` },
        spec: { selector: { app: `svc-${s}` }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
      });
      const ips = Array.from({ length: Math.ceil(PODS / SERVICES) }, (_, k) => s + k * SERVICES)
        .filter((i) => i < PODS)
        .map(ipOf);
      await client.create("/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices", {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: { name: `svc-${s}-1`, labels: { "kubernetes.io/service-name": `svc-${s}` } },
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080 }],
        endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
      });
    }
    await client.create(
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      (await import("yaml")).parse(await fs.readFile(path.join(REPO_ROOT, "daemonset/crds/authorizationpolicies.security.ambit.dev.yaml"), "utf8")),
    );
    await client.create(
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      (await import("yaml")).parse(await fs.readFile(path.join(REPO_ROOT, "daemonset/crds/peerauthentications.security.ambit.dev.yaml"), "utf8")),
    );
    const policyPath = "/apis/security.ambit.dev/v1/namespaces/bench/authorizationpolicies";
    await client.create(policyPath, {
      apiVersion: "security.ambit.dev/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: "bench-policy" },
      spec: { rules: [{ to: [{ operation: { ports: ["1"] } }] }] },
    });
    console.log(`cluster objects created in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const nodeOptions = await manifestNodeOptions();
    // The bundle the controller image runs (npm run build), not the .ts sources.
    const { buildBundles } = await import("../scripts/build.ts");
    await buildBundles();
    controller = fork(path.join(REPO_ROOT, "dist", "controller.mjs"), [], {
      env: {
        ...process.env,
        NODE_OPTIONS: nodeOptions,
        KUBECONFIG: kubeconfig,
        POD_NAME: "bench-controller",
        POD_NAMESPACE: "ambit-system",
        AMBIT_LOG_LEVEL: "warn",
        AMBIT_CONFIG_STREAM_PORT: String(PORTS.stream),
        AMBIT_CA_PORT: String(PORTS.ca),
        AMBIT_MONITORING_PORT: String(PORTS.monitoring),
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    // VmHWM is the peak RSS: what a container memory limit has to allow.
    const rssKiB = async (field: "VmRSS" | "VmHWM" = "VmRSS") =>
      Number(new RegExp(`${field}:\\s+(\\d+)`).exec(await fs.readFile(`/proc/${controller!.pid}/status`, "utf8"))![1]);
    const metric = async (name: string) =>
      Number(new RegExp(`^${name} ([\\d.e+]+)`, "m").exec(await (await fetch(`http://127.0.0.1:${PORTS.monitoring}/metrics`)).text())?.[1] ?? 0);
    for (let i = 0; ; i++) {
      const ready = await fetch(`http://127.0.0.1:${PORTS.monitoring}/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (i > 300) throw new Error("the controller did not become ready");
      await sleep(200);
    }
    let trust = "";
    for (let i = 0; !trust; i++) {
      trust =
        ((await client.get("/api/v1/namespaces/ambit-system/configmaps/ambit-ca-root").catch(() => undefined))?.data as Record<string, string> | undefined)?.[
          "root-cert.pem"
        ] ?? "";
      if (!trust) await sleep(200);
    }
    await sleep(3000);
    const rssNoAgents = await rssKiB();

    // Agents: each proves its node with a pod-bound token and holds the agent identity's certificate.
    const versions = new Map<string, number>();
    const seenAt = new Map<string, number>();
    let expectPort = "";
    for (const node of nodes) {
      const tokenRes = await client.create<{ apiVersion: string; kind: string; metadata: { name: string }; status: { token: string } }>(
        "/api/v1/namespaces/ambit-system/serviceaccounts/ambit-agent/token",
        {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: {
            audiences: ["ambit-ca"],
            expirationSeconds: 3600,
            boundObjectRef: { apiVersion: "v1", kind: "Pod", name: `agent-${node}`, uid: agentPods.get(node) },
          },
        },
      );
      const tokenFile = path.join(dir, `token-${node}`);
      await fs.writeFile(tokenFile, tokenRes.status.token, { mode: 0o600 });
      const ca = new ControllerCaClient({
        host: "127.0.0.1",
        port: PORTS.ca,
        serverName: "ambit-controller.ambit-system.svc",
        trustBundlePem: () => trust,
        tokenFile,
      });
      const cert: IssuedCertificate = await ca.issue({ trustDomain: "cluster.local", namespace: "ambit-system", serviceAccount: "ambit-agent" });
      const c = new ConfigStreamClient({
        url: `https://127.0.0.1:${PORTS.stream}`,
        serverName: "ambit-controller.ambit-system.svc",
        ca: trust,
        credentials: () => cert,
        token: () => tokenRes.status.token,
        node,
        log,
        onUpdate: (view, info) => {
          versions.set(node, info.version);
          const p = view.get("authorization/bench/bench-policy")?.value as { rules: Array<{ to: Array<{ ports: number[] }> }> } | undefined;
          if (expectPort && String(p?.rules[0]?.to[0]?.ports[0]) === expectPort && !seenAt.has(node)) seenAt.set(node, performance.now());
        },
      });
      c.start();
      clients.push(c);
    }
    while (versions.size < NODES) await sleep(100);
    await sleep(3000);
    const rssWithAgents = await rssKiB();
    const snapshotBytes = await metric("ambit_config_push_bytes_total");

    // Policy change -> on every agent.
    const perAgent: number[] = [];
    const allAgents: number[] = [];
    for (let r = 2; r < ROUNDS + 2; r++) {
      seenAt.clear();
      expectPort = String(r);
      const t0 = performance.now();
      await client.mergePatch(`${policyPath}/bench-policy`, { spec: { rules: [{ to: [{ operation: { ports: [String(r)] } }] }] } });
      while (seenAt.size < NODES) {
        if (performance.now() - t0 > 10_000) throw new Error(`round ${r}: only ${seenAt.size}/${NODES} agents saw the change`);
        await sleep(1);
      }
      const lat = [...seenAt.values()].map((t) => t - t0);
      perAgent.push(...lat);
      allAgents.push(Math.max(...lat));
      await sleep(150);
    }

    // Bytes pushed per pod change (a label change of one pod: its workload record goes to every node).
    const before = await metric("ambit_config_push_bytes_total");
    const changes = 20;
    for (let i = 0; i < changes; i++) {
      await client.mergePatch(`/api/v1/namespaces/bench/pods/app-${i}`, { metadata: { labels: { version: `v${i}` } } });
      await sleep(250);
    }
    await sleep(500);
    const bytesPerPodChange = Math.round(((await metric("ambit_config_push_bytes_total")) - before) / changes);
    // RSS right after the agents' snapshots includes their garbage; V8 returns memory once the process idles.
    await sleep(SETTLE_S * 1000);
    const rssSettled = await rssKiB();
    const rssPeak = await rssKiB("VmHWM");

    const summary = {
      pods: PODS,
      nodes: NODES,
      services: SERVICES,
      rounds: ROUNDS,
      policyToEnforcementMs: {
        perAgentP50: percentile(perAgent, 50),
        perAgentP99: percentile(perAgent, 99),
        allAgentsP50: percentile(allAgents, 50),
        allAgentsP99: percentile(allAgents, 99),
        debounceMs: 100,
      },
      controllerRssMiB: {
        noAgents: mib(rssNoAgents),
        withAgents: mib(rssWithAgents),
        withAgentsSettled: mib(rssSettled),
        peak: mib(rssPeak),
        settleSeconds: SETTLE_S,
      },
      controllerNodeOptions: nodeOptions,
      snapshotBytesPerNode: Math.round(snapshotBytes / NODES),
      bytesPerPodChange: { allAgents: bytesPerPodChange, perAgent: Math.round(bytesPerPodChange / NODES) },
    };
    console.log("\n| measure | value | goal |\n|---|---|---|");
    console.log(
      `| policy change -> every agent, p50 / p99 (ms, ${NODES} agents, ${PODS} pods, debounce 100) | ${summary.policyToEnforcementMs.allAgentsP50} / ${summary.policyToEnforcementMs.allAgentsP99} | p99 <= 200 (100 beyond debounce) |`,
    );
    console.log(
      `| policy change -> one agent, p50 / p99 (ms) | ${summary.policyToEnforcementMs.perAgentP50} / ${summary.policyToEnforcementMs.perAgentP99} | |`,
    );
    console.log(
      `| controller RSS with ${PODS} pods (MiB), no agents / ${NODES} agents: 3 s after their snapshots, ${SETTLE_S} s after the last change | ${summary.controllerRssMiB.noAgents} / ${summary.controllerRssMiB.withAgents}, ${summary.controllerRssMiB.withAgentsSettled} | <= 300 |`,
    );
    console.log(
      `| controller peak RSS over the whole run (MiB; NODE_OPTIONS from its manifest: ${nodeOptions || "none"}) | ${summary.controllerRssMiB.peak} | |`,
    );
    console.log(`| snapshot per node (bytes) | ${summary.snapshotBytesPerNode} | |`);
    console.log(`| bytes pushed per pod change (all agents / per agent) | ${summary.bytesPerPodChange.allAgents} / ${summary.bytesPerPodChange.perAgent} | |`);
    const out = path.join(REPO_ROOT, "bench", "results", `controller-scale-${PODS}.json`);
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, JSON.stringify(summary, null, 2) + "\n");
    console.log(`\nwrote ${out}`);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    controller?.kill("SIGKILL");
    client.close();
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
