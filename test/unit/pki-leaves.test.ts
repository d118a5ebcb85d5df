// Serving and client leaves from a local CA (the sandbox API server's, test roots'): fields, chains, and what Node, curl and kubectl accept.
import fs from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { AddressInfo } from "node:net";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCa, LeafError, createRootCa, issueLeaf } from "../../pki/index.ts";
import { loadOrCreateServingPki } from "../../sandbox/apiserver/pki.ts";
import { describeTier } from "../support/tiers.ts";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const hasCommand = async (cmd: string) => (await execa("sh", ["-c", `command -v ${cmd}`], { reject: false })).exitCode === 0;
const hasCurl = await hasCommand("curl");
const hasKubectl = await hasCommand("kubectl");

let dir: string;
let ca: LocalCa;
let caFile: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-pki-leaves-"));
  ca = createRootCa({ commonName: "leaves-test-ca", ttlSeconds: 3600, pathLength: 0 });
  caFile = path.join(dir, "ca.pem");
  await fs.writeFile(caFile, ca.certPem);
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const serverLeaf = () =>
  issueLeaf(ca, {
    subject: { commonName: "kube-apiserver" },
    dnsNames: ["localhost", "kubernetes.default.svc"],
    ips: ["127.0.0.1", "::1", "10.96.0.1"],
    usage: "server",
    ttlSeconds: 600,
  });
const clientLeaf = () => issueLeaf(ca, { subject: { organization: "system:masters", commonName: "ambit-admin" }, usage: "client", ttlSeconds: 600 });

const opensslText = async (pem: string) => (await execa("openssl", ["x509", "-noout", "-text"], { input: pem })).stdout;
async function opensslVerify(pem: string, purpose: "sslserver" | "sslclient") {
  const file = path.join(dir, `verify-${purpose}.pem`);
  await fs.writeFile(file, pem);
  return execa("openssl", ["verify", "-purpose", purpose, "-CAfile", caFile, file], { reject: false });
}

/** DER INTEGER content of the serial, as Go's x509 reads it: it refuses negative serials and ones over 20 bytes. */
function serialBytes(cert: X509Certificate): Buffer {
  return Buffer.from(cert.serialNumber.length % 2 ? `0${cert.serialNumber}` : cert.serialNumber, "hex");
}

describe("local CA", () => {
  it("is a self-signed CA with pathlen 0, a CN-only subject, and keyCertSign|cRLSign", async () => {
    const root = new X509Certificate(ca.certPem);
    expect(root.ca).toBe(true);
    expect(root.subject).toBe("CN=leaves-test-ca");
    expect(root.checkIssued(root)).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
    const text = await opensslText(ca.certPem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(serialBytes(root)[0]! & 0x80).toBe(0);
    expect(serialBytes(root).length).toBeLessThanOrEqual(20);
  });
});

describe("serving leaf", () => {
  it("carries the subject CN, DNS and IP SANs (non-critical beside a subject), serverAuth only, and chains to the CA", async () => {
    const leaf = serverLeaf();
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.subject).toBe("CN=kube-apiserver");
    expect(cert.issuer).toBe("CN=leaves-test-ca");
    expect(cert.subjectAltName).toBe("DNS:localhost, DNS:kubernetes.default.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.96.0.1");
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual([SERVER_AUTH]);
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.checkHost("kubernetes.default.svc")).toBe("kubernetes.default.svc");
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.checkIP("::1")).toBe("::1");
    expect(cert.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
    expect(leaf.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(Math.abs(Date.parse(cert.validTo) - leaf.notAfter.getTime())).toBeLessThan(1000);
    expect(serialBytes(cert)[0]! & 0x80).toBe(0);
    const text = await opensslText(leaf.certPem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/Extended Key Usage: \s*\n\s+TLS Web Server Authentication\n/);
    expect(text).toMatch(/Subject Alternative Name: \s*\n/);
    expect((await opensslVerify(leaf.certPem, "sslserver")).exitCode).toBe(0);
    expect((await opensslVerify(leaf.certPem, "sslclient")).exitCode).not.toBe(0);
  });

  it("writes IPv6 and IPv4-mapped addresses as 16 bytes", () => {
    const leaf = issueLeaf(ca, { ips: ["fd00::10", "::ffff:10.0.0.1", "2001:db8::5.6.7.8", "::"], usage: "server", ttlSeconds: 60 });
    expect(new X509Certificate(leaf.certPem).subjectAltName).toBe(
      "IP Address:FD00:0:0:0:0:0:0:10, IP Address:0:0:0:0:0:FFFF:A00:1, IP Address:2001:DB8:0:0:0:0:506:708, IP Address:0:0:0:0:0:0:0:0",
    );
  });

  it("refuses requests a strict parser would reject: no name at all, bad IPs, non-ASCII or empty names", () => {
    const refused = (req: Parameters<typeof issueLeaf>[1]) => {
      try {
        issueLeaf(ca, req);
      } catch (err) {
        return err instanceof LeafError ? err.code : String(err);
      }
      return "issued";
    };
    expect(refused({ ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ subject: {}, dnsNames: [], ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ ips: ["10.0.0.256"], ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ ips: ["localhost"], ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ ips: ["fe80::1%eth0"], ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ dnsNames: ["bücher.example"], ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ dnsNames: [""], ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ uris: ["spiffe://cluster.local/ns/a b/sa/c"], ttlSeconds: 60 })).toBe("AMBIT_E_LEAF_REQUEST");
    expect(refused({ subject: { commonName: "only-a-subject" }, usage: "client", ttlSeconds: 60 })).toBe("issued");
  });
});

describe("client leaf", () => {
  it("carries O and CN (Kubernetes' group and user), no SAN extension, clientAuth only", async () => {
    const leaf = clientLeaf();
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.subject).toBe("O=system:masters\nCN=ambit-admin");
    expect(cert.subjectAltName).toBeUndefined();
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]);
    expect((await opensslVerify(leaf.certPem, "sslclient")).exitCode).toBe(0);
    expect((await opensslVerify(leaf.certPem, "sslserver")).exitCode).not.toBe(0);
  });
});

describe("SPIFFE leaf (the test CA's)", () => {
  it("has an empty subject, so its one URI SAN is critical, and serves both sides", async () => {
    const leaf = issueLeaf(ca, { uris: ["spiffe://cluster.local/ns/demo/sa/orders"], ttlSeconds: 60 });
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.subject ?? "").toBe("");
    expect(cert.subjectAltName).toBe("URI:spiffe://cluster.local/ns/demo/sa/orders");
    expect(cert.keyUsage).toEqual([SERVER_AUTH, CLIENT_AUTH]);
    expect(await opensslText(leaf.certPem)).toMatch(/Subject Alternative Name: critical/);
    expect((await opensslVerify(leaf.certPem, "sslserver")).exitCode).toBe(0);
    expect((await opensslVerify(leaf.certPem, "sslclient")).exitCode).toBe(0);
  });
});

/** A TLS server on 127.0.0.1 that asks for a client certificate; resolves with what each connection proved. */
async function mtlsServer(server: { certPem: string; keyPem: string }) {
  const peers: { authorized: boolean; subject?: string | string[]; error?: string }[] = [];
  const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false }, (socket) => {
    const peer = socket.getPeerCertificate();
    peers.push({ authorized: socket.authorized, subject: peer.subject?.CN, error: socket.authorizationError?.toString() });
    socket.end("ok");
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { port: (srv.address() as AddressInfo).port, peers, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
}

function connect(
  port: number,
  opts: { servername?: string; host?: string; client?: { certPem: string; keyPem: string } },
): Promise<{ authorized: boolean; error?: string; data: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host: "127.0.0.1",
        port,
        ca: ca.certPem,
        ...(opts.servername ? { servername: opts.servername } : {}),
        ...(opts.client ? { cert: opts.client.certPem, key: opts.client.keyPem } : {}),
      },
      () => {
        let data = "";
        socket.on("data", (d: Buffer) => (data += d.toString()));
        socket.on("end", () => resolve({ authorized: socket.authorized, data }));
      },
    );
    socket.on("error", reject);
  });
}

describe("TLS with node:tls", () => {
  it("a client trusting the CA verifies the serving leaf by DNS name and by IP, and the server verifies the client leaf", async () => {
    const server = await mtlsServer(serverLeaf());
    try {
      // No servername: Node checks the 127.0.0.1 IP SAN; with one, the DNS SAN.
      expect(await connect(server.port, { client: clientLeaf() })).toMatchObject({ authorized: true, data: "ok" });
      expect(await connect(server.port, { servername: "kubernetes.default.svc", client: clientLeaf() })).toMatchObject({ authorized: true, data: "ok" });
      expect(server.peers).toEqual([
        { authorized: true, subject: "ambit-admin", error: undefined },
        { authorized: true, subject: "ambit-admin", error: undefined },
      ]);
      await expect(connect(server.port, { servername: "elsewhere.example" })).rejects.toThrow(/does not match|not in the cert's altnames/);
    } finally {
      await server.close();
    }
  });

  it("a serverAuth-only leaf is refused as a client certificate, and a clientAuth-only leaf as a server certificate", async () => {
    const server = await mtlsServer(serverLeaf());
    try {
      await connect(server.port, { client: serverLeaf() });
      expect(server.peers[0]).toMatchObject({ authorized: false, error: "INVALID_PURPOSE" });
    } finally {
      await server.close();
    }
    const clientAsServer = await mtlsServer(issueLeaf(ca, { subject: { commonName: "client-only" }, ips: ["127.0.0.1"], usage: "client", ttlSeconds: 60 }));
    try {
      await expect(connect(clientAsServer.port, {})).rejects.toThrow(/purpose/i);
    } finally {
      await clientAsServer.close();
    }
  });
});

/** The sandbox API server's PKI as it writes it, served over HTTPS on 127.0.0.1 with an optional client-certificate check. */
async function httpsWithServingPki(requireClientCert: boolean) {
  const pkiDir = path.join(dir, `apiserver-pki-${requireClientCert}`);
  const pki = await loadOrCreateServingPki(pkiDir, ["127.0.0.1", "localhost", "kubernetes.default.svc"]);
  const srv = https.createServer(
    { cert: pki.certPem, key: pki.keyPem, ...(requireClientCert ? { ca: ca.certPem, requestCert: true, rejectUnauthorized: true } : {}) },
    (req, res) => {
      const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Success", message: peer.subject ? `${peer.subject.O}/${peer.subject.CN}` : "anonymous" }),
      );
    },
  );
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { pkiDir, pki, port: (srv.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
}

describe("the sandbox API server's serving PKI on disk", () => {
  it("keeps the PKCS#8 key 0600, reuses the files for the same SANs and reissues when they change", async () => {
    const pkiDir = path.join(dir, "apiserver-pki-files");
    const first = await loadOrCreateServingPki(pkiDir, ["127.0.0.1", "localhost"]);
    expect((await fs.stat(path.join(pkiDir, "apiserver.key"))).mode & 0o777).toBe(0o600);
    expect(first.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const cert = new X509Certificate(first.certPem);
    expect(cert.subject).toBe("CN=kube-apiserver");
    expect(cert.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1");
    expect(cert.keyUsage).toEqual([SERVER_AUTH]);
    expect(cert.verify(new X509Certificate(first.caPem).publicKey)).toBe(true);
    expect(await loadOrCreateServingPki(pkiDir, ["localhost", "127.0.0.1", "localhost"])).toEqual(first);
    const changed = await loadOrCreateServingPki(pkiDir, ["127.0.0.1", "localhost", "10.96.0.1"]);
    expect(changed.certPem).not.toBe(first.certPem);
    expect(new X509Certificate(changed.certPem).subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1, IP Address:10.96.0.1");
    expect((await fs.stat(path.join(pkiDir, "apiserver.key"))).mode & 0o777).toBe(0o600);
  });
});

describeTier(hasCurl, "curl not installed: run scripts/setup.sh")("curl", () => {
  it("trusts the serving leaf through --cacert by IP and by DNS name, and presents a client leaf", async () => {
    const server = await httpsWithServingPki(false);
    const mtls = await httpsWithServingPki(true);
    try {
      const caPath = path.join(server.pkiDir, "ca.crt");
      const byIp = await execa("curl", ["-sS", "--fail", "--cacert", caPath, `https://127.0.0.1:${server.port}/`], { reject: false });
      expect(byIp.exitCode, byIp.stderr).toBe(0);
      expect(JSON.parse(byIp.stdout).message).toBe("anonymous");
      const byName = await execa(
        "curl",
        ["-sS", "--fail", "--cacert", caPath, "--resolve", `localhost:${server.port}:127.0.0.1`, `https://localhost:${server.port}/`],
        { reject: false },
      );
      expect(byName.exitCode, byName.stderr).toBe(0);
      // A name the certificate does not carry must fail, or the checks above prove nothing.
      const wrongName = await execa(
        "curl",
        ["-sS", "--cacert", caPath, "--resolve", `elsewhere.example:${server.port}:127.0.0.1`, `https://elsewhere.example:${server.port}/`],
        { reject: false },
      );
      expect(wrongName.exitCode).toBe(60);

      const client = clientLeaf();
      await fs.writeFile(path.join(dir, "client.crt"), client.certPem);
      await fs.writeFile(path.join(dir, "client.key"), client.keyPem, { mode: 0o600 });
      const withCert = await execa(
        "curl",
        [
          "-sS",
          "--fail",
          "--cacert",
          path.join(mtls.pkiDir, "ca.crt"),
          "--cert",
          path.join(dir, "client.crt"),
          "--key",
          path.join(dir, "client.key"),
          `https://127.0.0.1:${mtls.port}/`,
        ],
        { reject: false },
      );
      expect(withCert.exitCode, withCert.stderr).toBe(0);
      expect(JSON.parse(withCert.stdout).message).toBe("system:masters/ambit-admin");
    } finally {
      await server.close();
      await mtls.close();
    }
  });
});

describeTier(hasKubectl, "kubectl not installed: run scripts/setup.sh")("kubectl (Go's crypto/x509)", () => {
  it("accepts the serving leaf and loads a client leaf and its PKCS#8 key", async () => {
    const server = await httpsWithServingPki(true);
    try {
      const client = clientLeaf();
      const kubeconfig = path.join(dir, "kubeconfig");
      const b64 = (s: string) => Buffer.from(s).toString("base64");
      await fs.writeFile(
        kubeconfig,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [{ name: "c", cluster: { server: `https://127.0.0.1:${server.port}`, "certificate-authority-data": b64(server.pki.caPem) } }],
          users: [{ name: "u", user: { "client-certificate-data": b64(client.certPem), "client-key-data": b64(client.keyPem) } }],
          contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
          "current-context": "x",
        }),
        { mode: 0o600 },
      );
      const r = await execa("kubectl", ["get", "--raw", "/"], { env: { KUBECONFIG: kubeconfig }, reject: false, timeout: 30_000 });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).message).toBe("system:masters/ambit-admin");
    } finally {
      await server.close();
    }
  });
});
