// A local CA for tests: P-256 root and SPIFFE workload certificates, as the controller's CA will issue them.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { type Credentials, type SpiffeId, formatSpiffeId } from "../../agent/identity/index.ts";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n`;
}

const serial = () => Buffer.from(webcrypto.getRandomValues(new Uint8Array(12))).toString("hex").replace(/^[89a-f]/, "1");

export class TestCa {
  readonly rootPem: string;
  readonly #root: x509.X509Certificate;
  readonly #key: webcrypto.CryptoKey;

  private constructor(root: x509.X509Certificate, key: webcrypto.CryptoKey) {
    this.#root = root;
    this.#key = key;
    this.rootPem = root.toString("pem") + "\n";
  }

  static async create(name = "ambit-test-root"): Promise<TestCa> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${name}`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      signingAlgorithm: ALG,
      keys,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    return new TestCa(root, keys.privateKey);
  }

  /** A leaf for `id` with only the SPIFFE URI SAN, usable for client and server auth. */
  async issue(id: SpiffeId, ttlSeconds = 3600): Promise<Credentials> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: "",
      issuer: this.#root.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + ttlSeconds * 1000),
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
    return { certChainPem: cert.toString("pem") + "\n", keyPem: await pkcs8Pem(keys.privateKey) };
  }
}
