// The API server's own TLS: a self-signed CA and a serving certificate (P-256), kept on disk with 0600 keys.
import "reflect-metadata";
import fs from "node:fs/promises";
import path from "node:path";
import net from "node:net";
import { webcrypto, type webcrypto as WebCrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface ServingPki {
  caPem: string;
  certPem: string;
  keyPem: string;
}

async function keyToPem(key: WebCrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n`;
}

const serial = () => Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1");

async function generate(sans: string[]): Promise<ServingPki> {
  const now = Date.now();
  const caKeys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=ambit-dev-apiserver-ca",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * 24 * 3600_000),
    signingAlgorithm: ALG,
    keys: caKeys,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: "CN=kube-apiserver",
    issuer: ca.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * 24 * 3600_000),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans.map((s) => (net.isIP(s) ? { type: "ip" as const, value: s } : { type: "dns" as const, value: s }))),
    ],
  });
  return { caPem: ca.toString("pem") + "\n", certPem: cert.toString("pem") + "\n", keyPem: await keyToPem(keys.privateKey) };
}

/** Loads the serving PKI from `dir`, or creates it when absent or when the SANs changed. */
export async function loadOrCreateServingPki(dir: string, sans: string[]): Promise<ServingPki> {
  const files = { ca: path.join(dir, "ca.crt"), cert: path.join(dir, "apiserver.crt"), key: path.join(dir, "apiserver.key"), sans: path.join(dir, "apiserver.sans") };
  const wanted = [...new Set(sans)].sort().join(",");
  try {
    if ((await fs.readFile(files.sans, "utf8")) === wanted) {
      return { caPem: await fs.readFile(files.ca, "utf8"), certPem: await fs.readFile(files.cert, "utf8"), keyPem: await fs.readFile(files.key, "utf8") };
    }
  } catch {
    // not there yet
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const pki = await generate([...new Set(sans)]);
  await fs.writeFile(files.key, pki.keyPem, { mode: 0o600 });
  await fs.writeFile(files.cert, pki.certPem);
  await fs.writeFile(files.ca, pki.caPem);
  await fs.writeFile(files.sans, wanted);
  return pki;
}
