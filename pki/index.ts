// X.509 with P-256 over WebCrypto (@peculiar/x509), for the sandbox API server and tests (the mesh CA uses der.ts + workload-certs.ts).
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import net from "node:net";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
export type PrivateKey = webcrypto.CryptoKey;

export async function privateKeyPem(key: PrivateKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n`;
}

export async function importPrivateKeyPem(pem: string): Promise<PrivateKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  return webcrypto.subtle.importKey("pkcs8", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
}

/** Positive serial numbers (leading bit clear), 16 random bytes. */
const serial = () => Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1");

export interface CertificateAuthority {
  certPem: string;
  cert: x509.X509Certificate;
  key: PrivateKey;
}

export async function createRootCa(subject: string, ttlSeconds: number): Promise<CertificateAuthority & { keyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(P256, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + ttlSeconds * 1000),
    signingAlgorithm: P256,
    keys,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  return { cert, certPem: cert.toString("pem") + "\n", key: keys.privateKey, keyPem: await privateKeyPem(keys.privateKey) };
}

export function loadCa(certPem: string, key: PrivateKey): CertificateAuthority {
  return { certPem, cert: new x509.X509Certificate(certPem), key };
}

export interface LeafRequest {
  /** Distinguished name; "" for SPIFFE workload certificates (the identity is the URI SAN). */
  subject: string;
  /** URIs, DNS names and IP addresses for the subjectAltName extension. */
  sans: string[];
  usage: "server" | "client-and-server";
  ttlSeconds: number;
}

export interface Leaf {
  certPem: string;
  keyPem: string;
  notAfter: Date;
}

export async function issueLeaf(ca: CertificateAuthority, req: LeafRequest): Promise<Leaf> {
  const keys = await webcrypto.subtle.generateKey(P256, true, ["sign", "verify"]);
  const notAfter = new Date(Date.now() + req.ttlSeconds * 1000);
  const names = req.sans.map((s) => (s.includes("://") ? { type: "url" as const, value: s } : net.isIP(s) ? { type: "ip" as const, value: s } : { type: "dns" as const, value: s }));
  const eku = req.usage === "server" ? [x509.ExtendedKeyUsage.serverAuth] : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: req.subject,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
    signingAlgorithm: P256,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku),
      // Critical when the subject is empty, as RFC 5280 asks (SPIFFE workload certificates).
      new x509.SubjectAlternativeNameExtension(names, req.subject === ""),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await privateKeyPem(keys.privateKey), notAfter };
}
