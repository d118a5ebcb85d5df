// The controller's CSR endpoint over real TLS against the sandbox API server: real bound tokens, TokenReview, node authorization for agents, own identity for other pods.
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
import { CallerAuthenticator, CsrServer, MeshCa, podOnNodeCheck } from "../../controller/identity/index.ts";
import { buildCsr, derToPem, generateP256 } from "../../pki/index.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const SERVER_NAME = "ambit-controller.ambit-system.svc";
const lines: string[] = [];
const log = pino({ level: "warn" }, { write: (s: string) => void lines.push(s) });

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
    for (const ns of ["ambit-system", "demo", "shop"])
      await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    for (const node of ["node-1", "node-2"]) await t.client.create("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
    for (const [ns, sa] of [
      ["ambit-system", "ambit-agent"],
      ["demo", "orders"],
      ["demo", "payments"],
      ["demo", "intruder"],
      ["shop", "waypoint"],
    ]) {
      await t.client.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa } });
    }
    const pods: Array<[string, string, string, string]> = [
      ["ambit-system", "agent-1", "ambit-agent", "node-1"],
      ["ambit-system", "agent-2", "ambit-agent", "node-2"],
      ["demo", "orders-1", "orders", "node-1"],
      ["demo", "payments-1", "payments", "node-2"],
      ["demo", "intruder-1", "intruder", "node-1"],
      ["shop", "waypoint-1", "waypoint", "node-2"],
      ["shop", "waypoint-2", "waypoint", "node-2"],
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
      authenticator: new CallerAuthenticator(t.client, ["ambit-system/ambit-agent"]),
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

  it("gives a pod that is not an agent its own identity and no other; an agent is unaffected", async () => {
    // A waypoint: its ServiceAccount is named after its Gateway.
    const waypoint = await clientWith(await token("shop", "waypoint", "waypoint-1"));
    const issued = await waypoint.issue({ trustDomain: "cluster.local", namespace: "shop", serviceAccount: "waypoint" });
    expect(new X509Certificate(issued.certChainPem).subjectAltName).toBe("URI:spiffe://cluster.local/ns/shop/sa/waypoint");
    // Not the identity of a pod on its node, not another SA of its namespace, not an agent's.
    expect(await refusal(waypoint, "demo", "orders")).toBe("403 AMBIT_E_CA_NOT_OWN_IDENTITY");
    expect(await refusal(waypoint, "shop", "default")).toBe("403 AMBIT_E_CA_NOT_OWN_IDENTITY");
    expect(await refusal(waypoint, "ambit-system", "ambit-agent")).toBe("403 AMBIT_E_CA_NOT_OWN_IDENTITY");
    const refused = lines.map((l) => JSON.parse(l) as { code?: string; reason?: string }).find((l) => l.code === "AMBIT_E_CA_NOT_OWN_IDENTITY");
    expect(refused?.reason).toContain(
      "pod shop/waypoint-1 runs as shop/waypoint and may only obtain its own identity spiffe://cluster.local/ns/shop/sa/waypoint",
    );
    // The agent of node-1 still gets what its node runs, and not the waypoint's (which runs on node-2).
    const agent = await clientWith(await token("ambit-system", "ambit-agent", "agent-1"));
    expect(await refusal(agent, "demo", "orders")).toBe("issued");
    expect(await refusal(agent, "shop", "waypoint")).toBe("403 AMBIT_E_CA_IDENTITY_NOT_ON_NODE");
    expect(await counter("refused", "AMBIT_E_CA_NOT_OWN_IDENTITY")).toBe(3);
  });

  it("refuses a pod token once its pod is terminating, and a token bound to no pod", async () => {
    const tok = await token("shop", "waypoint", "waypoint-2");
    await t.client.request("DELETE", "/api/v1/namespaces/shop/pods/waypoint-2", { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 30 });
    expect(await refusal(await clientWith(tok), "shop", "waypoint")).toBe("403 AMBIT_E_CA_POD_NOT_LIVE");
    const unbound = await t.client.create<{ apiVersion: string; kind: string; metadata: { name: string }; status: { token: string } }>(
      "/api/v1/namespaces/shop/serviceaccounts/waypoint/token",
      { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { audiences: ["ambit-ca"], expirationSeconds: 3600 } },
    );
    expect(await refusal(await clientWith(unbound.status.token), "shop", "waypoint")).toBe("403 AMBIT_E_CA_TOKEN_NOT_POD_BOUND");
  });

  it("refuses a token of another service account, a token for another audience, and an expired token", async () => {
    expect(await refusal(await clientWith(await token("demo", "intruder", "intruder-1")), "demo", "orders")).toBe("403 AMBIT_E_CA_NOT_OWN_IDENTITY");
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
    expect(await counter("refused", "AMBIT_E_CA_NOT_OWN_IDENTITY")).toBe(4);
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
