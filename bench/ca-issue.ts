// Certificate issuance rate: CSR verification plus P-256 signing on one core, and the whole CSR endpoint over TLS.
import fs from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { Registry } from "prom-client";
import { MeshCa } from "../controller/identity/index.ts";
import { CallerAuthenticator, CsrServer } from "../controller/identity/index.ts";
import { kubeClientFromFile } from "../kube/kubeconfig.ts";
import { buildCsr, derToPem, generateP256, parseCsr, pemToDer } from "../pki/index.ts";
import { startApiServer } from "../sandbox/apiserver/index.ts";

const N = Number(process.env.ISSUANCES ?? 20_000);
const SECONDS = Number(process.env.SECONDS ?? 8);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const URI = "spiffe://cluster.local/ns/bench/sa/app";
const log = pino({ level: "silent" });
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-ca-bench-"));
const api = await startApiServer({ host: "127.0.0.1", port: 0, pkiDir: path.join(dir, "pki"), serviceCidr: "10.96.0.0/16" });
const kubeconfig = path.join(dir, "kubeconfig");
await api.writeKubeconfig(kubeconfig);
const client = kubeClientFromFile(kubeconfig);
try {
  for (const ns of ["ambit-system", "bench"]) await client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  await client.create("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: "node-1" } });
  for (const [ns, sa] of [
    ["ambit-system", "ambit-agent"],
    ["bench", "app"],
  ])
    await client.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa } });
  const agent = await client.create("/api/v1/namespaces/ambit-system/pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "agent" },
    spec: { nodeName: "node-1", serviceAccountName: "ambit-agent", containers: [{ name: "a", image: "ambit.dev/agent:0.1" }] },
  });
  const appPod = await client.create("/api/v1/namespaces/bench/pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "app" },
    spec: { nodeName: "node-1", serviceAccountName: "app", containers: [{ name: "a", image: "ambit.dev/toolbox:0.1" }] },
  });
  const ca = new MeshCa({ client, namespace: "ambit-system", trustDomain: "cluster.local", log, mayWrite: () => true, maxCertTtlSeconds: 86400 });
  await ca.refresh();

  // 1. The signing path alone, one thread: parse + verify the CSR (proof of possession), build and sign the leaf.
  const csrs = Array.from({ length: 256 }, () => buildCsr(generateP256().privateKey, URI));
  const perIssue: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const s = performance.now();
    const parsed = parseCsr(csrs[i % csrs.length]!);
    ca.issueWorkload(parsed.spki, parsed.uris[0]!, 86400);
    perIssue.push((performance.now() - s) * 1000);
  }
  const corePerSecond = Math.round(N / ((performance.now() - t0) / 1000));

  // 2. The endpoint: TLS, token review (cached), node authorization, signing; clients in this same process.
  const pods = [appPod];
  const server = new CsrServer({
    ca,
    authenticator: new CallerAuthenticator(client, ["ambit-system/ambit-agent"]),
    trustDomain: "cluster.local",
    hasPodOnNode: async (node, ns, sa) => pods.some((p) => p.spec?.nodeName === node && p.metadata.namespace === ns && p.spec?.serviceAccountName === sa),
    defaultTtlSeconds: 86400,
    credentials: ca.issueServing(["ambit-controller.ambit-system.svc"], 3600),
    log,
    registry: new Registry(),
  });
  const port = (await server.listen(0, "127.0.0.1")).port;
  const token = (
    await client.create<{ apiVersion: string; kind: string; metadata: { name: string }; status: { token: string } }>(
      "/api/v1/namespaces/ambit-system/serviceaccounts/ambit-agent/token",
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { audiences: ["ambit-ca"], expirationSeconds: 3600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: "agent", uid: agent.metadata.uid } },
      },
    )
  ).status.token;
  const agentPool = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const bodies = csrs.map((c) => JSON.stringify({ csr: derToPem(c, "CERTIFICATE REQUEST") }));
  const latencies: number[] = [];
  let issued = 0;
  let failed = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const request = (body: string) =>
    new Promise<number>((resolve) => {
      const req = https.request(
        {
          host: "127.0.0.1",
          port,
          servername: "ambit-controller.ambit-system.svc",
          method: "POST",
          path: "/v1/certificates",
          ca: ca.trustBundle().join(""),
          agent: agentPool,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            if (res.statusCode === 200) pemToDer(JSON.parse(Buffer.concat(chunks).toString()).certChain[0], "CERTIFICATE");
            resolve(res.statusCode ?? 0);
          });
        },
      );
      req.on("error", () => resolve(0));
      req.end(body);
    });
  const e0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      for (let i = w; performance.now() < deadline; i += CONCURRENCY) {
        const s = performance.now();
        const status = await request(bodies[i % bodies.length]!);
        latencies.push(performance.now() - s);
        if (status === 200) issued++;
        else failed++;
      }
    }),
  );
  const endpointPerSecond = Math.round(issued / ((performance.now() - e0) / 1000));
  agentPool.destroy();
  await server.close();

  const summary = {
    signingOneCore: {
      issuancesPerSecond: corePerSecond,
      p50Us: Number(percentile(perIssue, 50).toFixed(1)),
      p99Us: Number(percentile(perIssue, 99).toFixed(1)),
    },
    endpoint: {
      concurrency: CONCURRENCY,
      issuedPerSecond: endpointPerSecond,
      failed,
      p50Ms: Number(percentile(latencies, 50).toFixed(2)),
      p99Ms: Number(percentile(latencies, 99).toFixed(2)),
    },
    node: process.version,
  };
  console.log("\n| measure | value | goal |\n|---|---|---|");
  console.log(
    `| CSR verify + sign, one core (issuances/s) | ${summary.signingOneCore.issuancesPerSecond} (p50 ${summary.signingOneCore.p50Us} µs, p99 ${summary.signingOneCore.p99Us} µs) | >= 1,000 |`,
  );
  console.log(
    `| CSR endpoint over TLS, ${CONCURRENCY} keep-alive clients in-process (issued/s) | ${summary.endpoint.issuedPerSecond} (p50 ${summary.endpoint.p50Ms} ms, p99 ${summary.endpoint.p99Ms} ms, ${failed} failed) | |`,
  );
  const out = path.join(REPO_ROOT, "bench", "results", "ca-issue.json");
  await fs.mkdir(path.dirname(out), { recursive: true });
  await fs.writeFile(out, JSON.stringify(summary, null, 2) + "\n");
  console.log(`\nwrote ${out}`);
} finally {
  client.close();
  await api.close();
  await fs.rm(dir, { recursive: true, force: true });
}
process.exit(0);
