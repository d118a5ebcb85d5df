// The CA's native X.509 path: CSR parsing and proof of possession, workload certificate fields, openssl's verdict.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CsrError, buildCsr, createSelfSignedCa, derToPem, generateP256, issuerInfo, parseCsr, signLeaf } from "../../pki/index.ts";

const ID = "spiffe://cluster.local/ns/demo/sa/orders";
let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-pki-"));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const openssl = async (args: string[], input?: string) => execa("openssl", args, { reject: false, ...(input ? { input } : {}) });
// DER on stdout is binary: execa's default strips a trailing 0x0a byte, which truncated one CSR in 256 (a flaky MALFORMED).
const derOutput = { encoding: "buffer", stripFinalNewline: false } as const;
const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as CsrError).code;
  }
  return "accepted";
};

describe("CSRs", () => {
  it("builds a CSR openssl accepts, and parses back the key and the one URI", async () => {
    const { privateKey, publicKey } = generateP256();
    const csr = buildCsr(privateKey, ID);
    const check = await openssl(["req", "-noout", "-verify", "-text"], derToPem(csr, "CERTIFICATE REQUEST"));
    expect(check.exitCode, check.stderr).toBe(0);
    expect(check.stdout).toContain(`URI:${ID}`);
    const parsed = parseCsr(csr);
    expect(parsed.uris).toEqual([ID]);
    expect(parsed.otherSans).toBe(0);
    expect(parsed.spki.equals(publicKey.export({ type: "spki", format: "der" }))).toBe(true);
  });

  it("refuses a tampered CSR (no proof of possession), other curves, RSA and garbage", async () => {
    const csr = buildCsr(generateP256().privateKey, ID);
    const tampered = Buffer.from(csr);
    tampered[tampered.length - 5]! ^= 0x01;
    expect(codeOf(() => parseCsr(tampered))).toBe("AMBIT_E_CSR_SIGNATURE");
    const p384 = path.join(dir, "p384.key");
    await openssl(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", p384]);
    const p384Csr = await execa("openssl", ["req", "-new", "-key", p384, "-subj", "/", "-addext", `subjectAltName=URI:${ID}`, "-outform", "DER"], derOutput);
    expect(codeOf(() => parseCsr(Buffer.from(p384Csr.stdout)))).toBe("AMBIT_E_CSR_KEY");
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    await fs.writeFile(path.join(dir, "rsa.key"), rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string);
    const rsaCsr = await execa(
      "openssl",
      ["req", "-new", "-key", path.join(dir, "rsa.key"), "-subj", "/", "-addext", `subjectAltName=URI:${ID}`, "-outform", "DER"],
      derOutput,
    );
    expect(codeOf(() => parseCsr(Buffer.from(rsaCsr.stdout)))).toBe("AMBIT_E_CSR_KEY");
    expect(codeOf(() => parseCsr(Buffer.from("not a csr")))).toBe("AMBIT_E_CSR_MALFORMED");
    expect(codeOf(() => parseCsr(csr.subarray(0, csr.length - 10)))).toBe("AMBIT_E_CSR_MALFORMED");
  });

  it("reports every SAN a CSR asks for, so the CA can refuse more than one", async () => {
    const key = path.join(dir, "p256.key");
    await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
    const two = await execa(
      "openssl",
      ["req", "-new", "-key", key, "-subj", "/", "-addext", `subjectAltName=URI:${ID},DNS:evil.example`, "-outform", "DER"],
      derOutput,
    );
    const parsed = parseCsr(Buffer.from(two.stdout));
    expect(parsed.uris).toEqual([ID]);
    expect(parsed.otherSans).toBe(1);
  });
});

describe("workload certificates", () => {
  it("carry exactly the SPIFFE URI SAN, are not CAs, and pass openssl verify against the root", async () => {
    const root = createSelfSignedCa({ organization: "cluster.local", commonName: "test-root", ttlSeconds: 3600 });
    const { privateKey } = generateP256();
    const parsed = parseCsr(buildCsr(privateKey, ID));
    const notBefore = new Date(Date.now() - 60_000);
    const notAfter = new Date(Date.now() + 24 * 3600_000);
    const leaf = signLeaf(issuerInfo(root.certDer), root.privateKey, { spki: parsed.spki, uris: parsed.uris, notBefore, notAfter });
    const cert = new X509Certificate(leaf);
    expect(cert.subjectAltName).toBe(`URI:${ID}`);
    expect(cert.subject ?? "").toBe("");
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    expect(Math.abs(new Date(cert.validTo).getTime() - notAfter.getTime())).toBeLessThan(1000);
    expect(cert.checkPrivateKey(privateKey)).toBe(true);
    await fs.writeFile(path.join(dir, "root.pem"), derToPem(root.certDer, "CERTIFICATE"));
    await fs.writeFile(path.join(dir, "leaf.pem"), derToPem(leaf, "CERTIFICATE"));
    const verify = await openssl(["verify", "-CAfile", path.join(dir, "root.pem"), path.join(dir, "leaf.pem")]);
    expect(verify.stdout.trim(), verify.stderr).toBe(`${path.join(dir, "leaf.pem")}: OK`);
    // And against a different root it must fail, or the check above proves nothing.
    const other = createSelfSignedCa({ organization: "cluster.local", commonName: "other-root", ttlSeconds: 3600 });
    await fs.writeFile(path.join(dir, "other.pem"), derToPem(other.certDer, "CERTIFICATE"));
    expect((await openssl(["verify", "-CAfile", path.join(dir, "other.pem"), path.join(dir, "leaf.pem")])).exitCode).not.toBe(0);
  });
});
