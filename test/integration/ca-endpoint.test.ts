// The controller's CSR endpoint over real TLS against the sandbox API server: real bound tokens, TokenReview, node authorization.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import https from "node:https";
import { X509Certificate } from "node:crypto";
import { execa } from "execa";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CaRequestError } from "../../agent/identity/controller-ca.ts";
import { ControllerCaClient } from "../../agent/identity/controller-ca.ts";
import { AgentAuthenticator, CsrServer, MeshCa, podOnNodeCheck } from "../../controller/identity/index.ts";
import { buildCsr, derToPem, generateP256 } from "../../pki/index.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const SERVER_NAME = "ambit-controller.ambit-system.svc";
const log = pino({ level: "silent" });

describe("CSR endpoint", () => {
  let t: TestApiServer;
  let ca: MeshCa;
  let server: CsrServer;
  let port: number;
  let dir: string;
  const registry = new Registry();
  const uids: Record<string, string> = {};

  const token = async (namespace: string, sa: string, pod: string, audience = "ambit-ca") => {
    const res = await t.client.create<{ apiVersion: string; kind: string; metadata: { name: string }; status: { token: string } }>(
      `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { audiences: [audience], expirationSeconds: 3600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod, uid: uids[pod] } },
      },
    );
    return res.status.token;
  };
  const clientWith = async (tok: string) => {
    const file = path.join(dir, `token-${Math.random()}`);
    await fs.writeFile(file, tok, { mode: 0o600 });
    return new ControllerCaClient({ host: "127.0.0.1", port, serverName: SERVER_NAME, trustBundlePem: () => ca.trustBundle().join(""), tokenFile: file });
  };
  const refusal = async (client: ControllerCaClient, namespace: string, sa: string) => {
    try {
      await client.issue({ trustDomain: "cluster.local", namespace, serviceAccount: sa });
      return "issued";
    } catch (err) {
      return `${(err as CaRequestError).status} ${(err as CaRequestError).code}`;
    }
  };
  const counter = async (outcome: string, reason: string) =>
    (await registry.getSingleMetric("ambit_ca_requests_total")!.get()).values.find((v) => v.labels.outcome === outcome && v.labels.reason === reason)?.value ??
    0;

  beforeAll(async () => {
    t = await startTestApiServer();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-ca-"));
    for (const ns of ["ambit-system", "demo"]) await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    for (const node of ["node-1", "node-2"]) await t.client.create("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
    for (const [ns, sa] of [
      ["ambit-system", "ambit-agent"],
      ["demo", "orders"],
      ["demo", "payments"],
      ["demo", "intruder"],
    ]) {
      await t.client.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa } });
    }
    const pods: Array<[string, string, string, string]> = [
      ["ambit-system", "agent-1", "ambit-agent", "node-1"],
      ["ambit-system", "agent-2", "ambit-agent", "node-2"],
      ["demo", "orders-1", "orders", "node-1"],
      ["demo", "payments-1", "payments", "node-2"],
      ["demo", "intruder-1", "intruder", "node-1"],
    ];
    for (const [ns, name, sa, node] of pods) {
      const p = await t.client.create(`/api/v1/namespaces/${ns}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name },
        spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: "c", image: "ambit.dev/toolbox:0.1" }] },
      });
      uids[name] = p.metadata.uid!;
    }
    ca = new MeshCa({ client: t.client, namespace: "ambit-system", trustDomain: "cluster.local", log, mayWrite: () => true, maxCertTtlSeconds: 86400 });
    await ca.refresh();
    server = new CsrServer({
      ca,
      authenticator: new AgentAuthenticator(t.client, ["ambit-system/ambit-agent"]),
      trustDomain: "cluster.local",
      hasPodOnNode: podOnNodeCheck(t.client),
      defaultTtlSeconds: 86400,
      credentials: ca.issueServing([SERVER_NAME], 3600),
      log,
      registry,
    });
    port = (await server.listen(0, "127.0.0.1")).port;
  });

  afterAll(async () => {
    vi.useRealTimers();
    await server?.close();
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("signs an identity with a pod on the caller's node; the certificate passes openssl verify and carries exactly the SPIFFE URI", async () => {
    const client = await clientWith(await token("ambit-system", "ambit-agent", "agent-1"));
    const issued = await client.issue({ trustDomain: "cluster.local", namespace: "demo", serviceAccount: "orders" });
    const leaf = new X509Certificate(issued.certChainPem);
    expect(leaf.subjectAltName).toBe("URI:spiffe://cluster.local/ns/demo/sa/orders");
    expect(leaf.checkPrivateKey((await import("node:crypto")).createPrivateKey(issued.keyPem))).toBe(true);
    expect(client.latestTrustBundle).toEqual(ca.trustBundle());
    await fs.writeFile(path.join(dir, "bundle.pem"), client.latestTrustBundle.join(""));
    await fs.writeFile(path.join(dir, "leaf.pem"), issued.certChainPem);
    const verify = await execa("openssl", ["verify", "-CAfile", path.join(dir, "bundle.pem"), path.join(dir, "leaf.pem")], { reject: false });
    expect(verify.stdout).toContain(": OK");
    expect(await counter("issued", "")).toBe(1);
  });

  it("refuses an identity whose pods run only on another node", async () => {
    const client = await clientWith(await token("ambit-system", "ambit-agent", "agent-1"));
    expect(await refusal(client, "demo", "payments")).toBe("403 AMBIT_E_CA_IDENTITY_NOT_ON_NODE");
    // The agent of that node gets it.
    const other = await clientWith(await token("ambit-system", "ambit-agent", "agent-2"));
    expect(await refusal(other, "demo", "payments")).toBe("issued");
  });

  it("refuses a token of another service account, a token for another audience, and an expired token", async () => {
    expect(await refusal(await clientWith(await token("demo", "intruder", "intruder-1")), "demo", "intruder")).toBe("403 AMBIT_E_CA_NOT_AN_AGENT");
    expect(
      await refusal(await clientWith(await token("ambit-system", "ambit-agent", "agent-1", "https://kubernetes.default.svc.cluster.local")), "demo", "orders"),
    ).toBe("401 AMBIT_E_CA_UNAUTHENTICATED");
    const soonExpired = await clientWith(await token("ambit-system", "ambit-agent", "agent-1"));
    // Only Date is faked: the API server in this process then judges the token two hours later.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 2 * 3600_000);
    try {
      expect(await refusal(soonExpired, "demo", "orders")).toBe("401 AMBIT_E_CA_UNAUTHENTICATED");
    } finally {
      vi.useRealTimers();
    }
    expect(await refusal(await clientWith("garbage"), "demo", "orders")).toBe("401 AMBIT_E_CA_UNAUTHENTICATED");
    expect(await counter("refused", "AMBIT_E_CA_UNAUTHENTICATED")).toBe(3);
    expect(await counter("refused", "AMBIT_E_CA_NOT_AN_AGENT")).toBe(1);
  });

  it("answers malformed JSON or CSRs, a non-workload URI, a foreign trust domain and an oversized body with clear refusals", async () => {
    const tok = await token("ambit-system", "ambit-agent", "agent-1");
    const post = (body: unknown) =>
      new Promise<{ status: number; body: { code: string; message: string } }>((resolve, reject) => {
        const req = https.request(
          {
            host: "127.0.0.1",
            port,
            servername: SERVER_NAME,
            method: "POST",
            path: "/v1/certificates",
            ca: ca.trustBundle().join(""),
            headers: { authorization: `Bearer ${tok}`, "content-type": "application/json" },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }));
          },
        );
        req.on("error", reject);
        req.end(typeof body === "string" ? body : JSON.stringify(body));
      });
    expect(await post("{not json")).toMatchObject({ status: 400, body: { code: "AMBIT_E_CA_BAD_REQUEST" } });
    expect(await post({ csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n" })).toMatchObject({
      status: 400,
      body: { code: "AMBIT_E_CA_BAD_CSR" },
    });
    const foreign = derToPem(buildCsr(generateP256().privateKey, "spiffe://other.domain/ns/demo/sa/orders"), "CERTIFICATE REQUEST");
    expect(await post({ csr: foreign })).toMatchObject({ status: 403, body: { code: "AMBIT_E_CA_TRUST_DOMAIN" } });
    const notWorkload = derToPem(buildCsr(generateP256().privateKey, "spiffe://cluster.local/admin"), "CERTIFICATE REQUEST");
    expect(await post({ csr: notWorkload })).toMatchObject({
      status: 400,
      body: { code: "AMBIT_E_CA_BAD_CSR", message: expect.stringContaining("is not a workload identity") },
    });
    expect(await post("x".repeat(70_000))).toMatchObject({ status: 413 });
  });
});
