// Interim workload certificates from a CA shared through a Secret, until the controller's CA (issue #4) signs them.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { type KubeClient, isConflict, isNotFound } from "../../kube/client.ts";
import { type SpiffeId, formatSpiffeId } from "./spiffe.ts";
import type { Credentials } from "./index.ts";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
export const LOCAL_CA_SECRET = { namespace: "ambit-system", name: "ambit-local-ca" };

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n`;
}

function pemToDer(pem: string): ArrayBuffer {
  const b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const buf = Buffer.from(b64, "base64");
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
}

const serial = () => Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1");

export interface IssuedCertificate extends Credentials {
  identity: string;
  notAfter: Date;
}

/**
 * Every agent loads the same root from a Secret (the first one creates it). This is the sandbox's
 * stand-in: the design's CA keeps the signing key in the controller only.
 */
export class LocalCa {
  readonly rootPem: string;
  readonly #root: x509.X509Certificate;
  readonly #key: webcrypto.CryptoKey;

  private constructor(rootPem: string, key: webcrypto.CryptoKey) {
    this.rootPem = rootPem;
    this.#root = new x509.X509Certificate(rootPem);
    this.#key = key;
  }

  static async loadOrCreate(client: KubeClient): Promise<LocalCa> {
    const path = `/api/v1/namespaces/${LOCAL_CA_SECRET.namespace}/secrets/${LOCAL_CA_SECRET.name}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const secret = await client.get(path);
        const data = secret.data as Record<string, string>;
        const rootPem = Buffer.from(data["ca.crt"] ?? "", "base64").toString();
        const keyPem = Buffer.from(data["ca.key"] ?? "", "base64").toString();
        const key = await webcrypto.subtle.importKey("pkcs8", pemToDer(keyPem), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
        return new LocalCa(rootPem, key);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
      const root = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial(),
        name: "O=cluster.local, CN=ambit-local-ca",
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 365 * 24 * 3600_000),
        signingAlgorithm: ALG,
        keys,
        extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
      });
      try {
        await client.create(`/api/v1/namespaces/${LOCAL_CA_SECRET.namespace}/secrets`, {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: LOCAL_CA_SECRET.name },
          type: "Opaque",
          data: { "ca.crt": Buffer.from(root.toString("pem") + "\n").toString("base64"), "ca.key": Buffer.from(await pkcs8Pem(keys.privateKey)).toString("base64") },
        });
      } catch (err) {
        // Another agent created it first: loop and load theirs.
        if (!isConflict(err) && !isNotFound(err)) throw err;
        if (isNotFound(err)) {
          await client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: LOCAL_CA_SECRET.namespace } }).catch(() => {});
        }
      }
    }
    throw new Error(`cannot load or create the local CA secret ${LOCAL_CA_SECRET.namespace}/${LOCAL_CA_SECRET.name}`);
  }

  /** A 24 h workload certificate with exactly the SPIFFE URI SAN of `id`. */
  async issue(id: SpiffeId, ttlSeconds = 24 * 3600): Promise<IssuedCertificate> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
    const notAfter = new Date(Date.now() + ttlSeconds * 1000);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: "",
      issuer: this.#root.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter,
      signingAlgorithm: ALG,
      publicKey: keys.publicKey,
      signingKey: this.#key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: formatSpiffeId(id) }], true),
      ],
    });
    return { identity: formatSpiffeId(id), notAfter, certChainPem: cert.toString("pem") + "\n", keyPem: await pkcs8Pem(keys.privateKey) };
  }
}
