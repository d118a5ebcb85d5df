// CsrServer over real TLS on loopback with a scripted TokenReview: lifetimes, methods and paths, SAN refusals, logs that never leak.
import https from "node:https";
import { X509Certificate, createPublicKey, sign } from "node:crypto";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CallerAuthenticator, CsrServer, MeshCa } from "../../controller/identity/index.ts";
import { fakeSecretsClient } from "../support/fake-secrets-client.ts";
// DER writers are pki internals: this test builds malformed CSRs with them.
import { TAG, bitString, boolean, octetString, oid, sequence, set, smallInteger, tlv } from "../../pki/der.ts";
import { buildCsr, derToPem, generateP256 } from "../../pki/index.ts";

const SERVER_NAME = "ambit-controller.ambit-system.svc";
const TOKEN = "agent-token-that-must-never-be-logged";
const DAY = 86400;

/** Secrets in a map, and a TokenReview that knows one agent token bound to node-1. */
const fakeClient = () =>
  fakeSecretsClient({
    request: async (_method: string, _path: string, body: { spec: { token: string } }) => ({
      status:
        body.spec.token === TOKEN
          ? {
              authenticated: true,
              audiences: ["ambit-ca"],
              user: { username: "system:serviceaccount:ambit-system:ambit-agent", extra: { "authentication.kubernetes.io/node-name": ["node-1"] } },
            }
          : { authenticated: false, error: "invalid bearer token" },
    }),
  });

const csrPem = (uri: string) => derToPem(buildCsr(generateP256().privateKey, uri), "CERTIFICATE REQUEST");

describe("CsrServer", () => {
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(s) });
  const registry = new Registry();
  let ca: MeshCa;
  let server: CsrServer;
  let port: number;
  const onNode1 = new Set(["demo/orders"]);

  const call = (opts: { method?: string; path?: string; body?: unknown; token?: string | null }) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const payload = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body ?? {});
      const req = https.request(
        {
          host: "127.0.0.1",
          port,
          servername: SERVER_NAME,
          ca: ca.trustBundle().join(""),
          method: opts.method ?? "POST",
          path: opts.path ?? "/v1/certificates",
          agent: false,
          headers: { "content-type": "application/json", ...(opts.token === null ? {} : { authorization: `Bearer ${opts.token ?? TOKEN}` }) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || "{}") as Record<string, unknown> }));
        },
      );
      req.on("error", reject);
      req.end(opts.method === "GET" ? undefined : payload);
    });
  const count = async (outcome: string, reason: string) =>
    (await registry.getSingleMetric("ambit_ca_requests_total")!.get()).values.find((v) => v.labels.outcome === outcome && v.labels.reason === reason)?.value ??
    0;

  beforeAll(async () => {
    ca = new MeshCa({
      client: fakeClient(),
      namespace: "ambit-system",
      trustDomain: "cluster.local",
      log: pino({ level: "silent" }),
      mayWrite: () => true,
      maxCertTtlSeconds: DAY,
    });
    await ca.refresh();
    server = new CsrServer({
      ca,
      authenticator: new CallerAuthenticator(fakeClient(), ["ambit-system/ambit-agent"]),
      trustDomain: "cluster.local",
      hasPodOnNode: async (node, ns, sa) => node === "node-1" && onNode1.has(`${ns}/${sa}`),
      defaultTtlSeconds: DAY,
      credentials: ca.issueServing([SERVER_NAME], 3600),
      log,
      registry,
    });
    port = (await server.listen(0, "127.0.0.1")).port;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("issues for 24 h by default, honours a shorter ttlSeconds and caps a longer one", async () => {
    const uri = "spiffe://cluster.local/ns/demo/sa/orders";
    const lifetime = async (ttlSeconds?: number) => {
      const res = await call({ body: { csr: csrPem(uri), ...(ttlSeconds === undefined ? {} : { ttlSeconds }) } });
      expect(res.status).toBe(200);
      const chain = res.body.certChain as string[];
      expect(res.body.trustBundle).toEqual(ca.trustBundle());
      const cert = new X509Certificate(chain[0]!);
      expect(cert.subjectAltName).toBe(`URI:${uri}`);
      // The certificate keeps whole seconds; the answer's ISO time may carry the milliseconds.
      expect(Math.floor(Date.parse(res.body.notAfter as string) / 1000) * 1000).toBe(Date.parse(cert.validTo));
      // validFrom is backdated by a minute; the lifetime asked for starts now.
      return Math.round((Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 1000) - 60;
    };
    expect(await lifetime()).toBe(DAY);
    expect(await lifetime(600)).toBe(600);
    expect(await lifetime(30 * DAY)).toBe(DAY);
    expect(await lifetime(-5)).toBe(DAY);
    expect(await count("issued", "")).toBe(4);
  });

  it("answers 404 on other paths and 405 on other methods", async () => {
    expect(await call({ path: "/v1/other" })).toMatchObject({ status: 404, body: { code: "AMBIT_E_CA_NOT_FOUND" } });
    expect(await call({ method: "GET" })).toMatchObject({ status: 405, body: { message: expect.stringContaining("POST /v1/certificates") } });
  });

  it("refuses CSRs asking for two URIs, a URI and a DNS name, or no SAN, and a foreign trust domain", async () => {
    const key = generateP256().privateKey;
    // buildCsr writes exactly one URI, so CSRs with other SAN lists are built here, validly signed.
    const csrWith = (names: Buffer[]) => {
      const spki = createPublicKey(key).export({ type: "spki", format: "der" });
      const ext = sequence(sequence(oid("2.5.29.17"), boolean(true), octetString(sequence(...names))));
      const info = sequence(
        smallInteger(0),
        sequence(),
        spki,
        tlv(TAG.context(0), ...(names.length ? [sequence(oid("1.2.840.113549.1.9.14"), set(ext))] : [])),
      );
      return derToPem(
        sequence(info, sequence(oid("1.2.840.10045.4.3.2")), bitString(sign("sha256", info, { key, dsaEncoding: "der" }))),
        "CERTIFICATE REQUEST",
      );
    };
    const uri = (u: string) => tlv(TAG.contextPrimitive(6), Buffer.from(u));
    const dns = (d: string) => tlv(TAG.contextPrimitive(2), Buffer.from(d));
    const orders = "spiffe://cluster.local/ns/demo/sa/orders";
    for (const names of [[uri(orders), uri("spiffe://cluster.local/ns/demo/sa/payments")], [uri(orders), dns("evil.example")], []]) {
      expect(await call({ body: { csr: csrWith(names) } })).toMatchObject({
        status: 400,
        body: { code: "AMBIT_E_CA_BAD_CSR", message: expect.stringContaining("exactly one SAN") },
      });
    }
    expect(await call({ body: { csr: csrPem("spiffe://other.domain/ns/demo/sa/orders") } })).toMatchObject({
      status: 403,
      body: { code: "AMBIT_E_CA_TRUST_DOMAIN" },
    });
    expect(await call({ body: { csr: csrPem("spiffe://cluster.local/ns/demo/sa/payments") } })).toMatchObject({
      status: 403,
      body: { code: "AMBIT_E_CA_IDENTITY_NOT_ON_NODE" },
    });
    expect(await call({ body: "{not json" })).toMatchObject({ status: 400, body: { code: "AMBIT_E_CA_BAD_REQUEST" } });
    expect(await call({ body: { csr: 42 } })).toMatchObject({ status: 400, body: { code: "AMBIT_E_CA_BAD_REQUEST" } });
    expect(await count("refused", "AMBIT_E_CA_BAD_CSR")).toBe(3);
    expect(await count("refused", "AMBIT_E_CA_TRUST_DOMAIN")).toBe(1);
    expect(await count("refused", "AMBIT_E_CA_BAD_REQUEST")).toBe(2);
  });

  it("authenticates before it looks at the CSR, and refuses without a token or with a bad one", async () => {
    expect(await call({ token: null, body: { csr: "garbage" } })).toMatchObject({ status: 401, body: { code: "AMBIT_E_CA_UNAUTHENTICATED" } });
    expect(await call({ token: "forged", body: { csr: csrPem("spiffe://cluster.local/ns/demo/sa/orders") } })).toMatchObject({
      status: 401,
      body: { code: "AMBIT_E_CA_UNAUTHENTICATED" },
    });
  });

  it("logs every refusal at warn with its code and reason, and never the token, the CSR or a key", async () => {
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; code?: string; reason?: string; msg: string }).filter((l) => l.level === 40);
    const refusals = (await registry.getSingleMetric("ambit_ca_requests_total")!.get()).values
      .filter((v) => v.labels.outcome === "refused")
      .reduce((n, v) => n + v.value, 0);
    expect(warnings).toHaveLength(refusals);
    for (const w of warnings) {
      expect(w.msg).toBe("certificate request refused");
      expect(w.code).toMatch(/^AMBIT_E_CA_/);
      expect(w.reason).toBeTruthy();
    }
    const all = lines.join("\n");
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain("forged");
    expect(all).not.toContain("BEGIN");
  });
});
