// Every field the mesh CA writes into its root and workload certificates, read back from the DER, not just what Node summarises.
import { X509Certificate } from "node:crypto";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { MeshCa } from "../../controller/identity/index.ts";
import { fakeSecretsClient } from "../support/fake-secrets-client.ts";
// DER readers are pki internals: this test dissects certificates field by field.
import { type Tlv, TAG, children, decodeOid, pemToDer, readTlv } from "../../pki/der.ts";
import { generateP256 } from "../../pki/index.ts";

const URI = "spiffe://cluster.local/ns/demo/sa/orders";
const log = pino({ level: "silent" });

interface Extension {
  critical: boolean;
  value: Tlv;
}

/** A certificate's TBS fields by name, and its extensions by OID. */
function dissect(pem: string) {
  const [tbs, sigAlg] = children(readTlv(pemToDer(pem, "CERTIFICATE")));
  const [version, serial, , issuer, validity, subject, spki, extensionsTag] = children(tbs!);
  const extensions = new Map<string, Extension>();
  for (const ext of children(children(extensionsTag!)[0]!)) {
    const parts = children(ext);
    const critical = parts.length === 3 && parts[1]!.tag === TAG.boolean && parts[1]!.content[0] === 0xff;
    extensions.set(decodeOid(parts[0]!.content), { critical, value: readTlv(parts.at(-1)!.content) });
  }
  return {
    version: version!,
    serial: serial!,
    issuer: issuer!,
    validity: validity!,
    subject: subject!,
    spki: spki!,
    sigAlg: decodeOid(children(sigAlg!)[0]!.content),
    extensions,
  };
}

const OID = { san: "2.5.29.17", bc: "2.5.29.19", ku: "2.5.29.15", eku: "2.5.29.37", ski: "2.5.29.14", aki: "2.5.29.35" };

async function readyCa(now: () => Date = () => new Date()) {
  const ca = new MeshCa({
    client: fakeSecretsClient(),
    namespace: "ambit-system",
    trustDomain: "cluster.local",
    log,
    mayWrite: () => true,
    maxCertTtlSeconds: 86400,
    now,
  });
  await ca.refresh();
  return ca;
}

describe("mesh root", () => {
  it("is a self-signed P-256 CA for ten years with pathLen 1 and keyCertSign|cRLSign, both critical", async () => {
    const now = new Date("2026-11-22T12:00:00Z");
    const ca = await readyCa(() => now);
    const [rootPem] = ca.trustBundle();
    const root = new X509Certificate(rootPem!);
    expect(root.ca).toBe(true);
    expect(root.checkIssued(root)).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    const years = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / (365 * 24 * 3600_000);
    expect(years).toBeGreaterThan(9.99);
    expect(years).toBeLessThan(10.01);
    const f = dissect(rootPem!);
    expect(f.sigAlg).toBe("1.2.840.10045.4.3.2");
    const bc = f.extensions.get(OID.bc)!;
    expect(bc.critical).toBe(true);
    const [isCa, pathLen] = children(bc.value);
    expect(isCa!.content[0]).toBe(0xff);
    expect(pathLen!.content).toEqual(Buffer.from([1]));
    const ku = f.extensions.get(OID.ku)!;
    expect(ku.critical).toBe(true);
    // keyCertSign (bit 5) and cRLSign (bit 6) only.
    expect(ku.value.content).toEqual(Buffer.from([1, 0x06]));
    expect(f.extensions.has(OID.ski)).toBe(true);
  });
});

describe("workload certificates from MeshCa", () => {
  it("have a random positive 16-byte serial, an empty subject, a backdated notBefore and the asked lifetime", async () => {
    const now = new Date("2026-11-22T12:00:00Z");
    const ca = await readyCa(() => now);
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { certChainPem, notAfter } = ca.issueWorkload(generateP256().publicKey.export({ type: "spki", format: "der" }), URI, 3600);
      const f = dissect(certChainPem[0]!);
      expect(f.version.tag).toBe(TAG.context(0));
      // DER INTEGER: 16 magnitude bytes, top bit clear (positive), first byte non-zero (no padding needed).
      expect(f.serial.content.length).toBe(16);
      expect(f.serial.content[0]! & 0x80).toBe(0);
      expect(f.serial.content[0]).not.toBe(0);
      serials.add(f.serial.content.toString("hex"));
      expect(f.subject.content.length).toBe(0);
      const cert = new X509Certificate(certChainPem[0]!);
      expect(Date.parse(cert.validFrom)).toBe(now.getTime() - 60_000);
      expect(Date.parse(cert.validTo)).toBe(now.getTime() + 3600_000);
      expect(notAfter.getTime()).toBe(now.getTime() + 3600_000);
    }
    expect(serials.size).toBe(20);
  });

  it("carry exactly one critical URI SAN, critical digitalSignature, server+client auth, CA:false, and an AKI equal to the root's SKI", async () => {
    const ca = await readyCa();
    const { publicKey } = generateP256();
    const spki = publicKey.export({ type: "spki", format: "der" });
    const { certChainPem } = ca.issueWorkload(spki, URI, 3600);
    expect(certChainPem).toHaveLength(1);
    const f = dissect(certChainPem[0]!);
    expect([...f.extensions.keys()].sort()).toEqual(Object.values(OID).sort());
    expect(f.spki.raw.equals(spki)).toBe(true);

    const san = f.extensions.get(OID.san)!;
    expect(san.critical).toBe(true);
    const names = children(san.value);
    expect(names.map((n) => [n.tag, n.content.toString()])).toEqual([[TAG.contextPrimitive(6), URI]]);

    const ku = f.extensions.get(OID.ku)!;
    expect(ku.critical).toBe(true);
    expect(ku.value.content).toEqual(Buffer.from([7, 0x80]));

    const eku = f.extensions.get(OID.eku)!;
    expect(children(eku.value).map((o) => decodeOid(o.content))).toEqual(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);

    const bc = f.extensions.get(OID.bc)!;
    expect(bc.critical).toBe(true);
    expect(bc.value.content.length).toBe(0);
    expect(new X509Certificate(certChainPem[0]!).ca).toBe(false);

    const root = dissect(ca.trustBundle()[0]!);
    const aki = children(f.extensions.get(OID.aki)!.value)[0]!;
    expect(aki.tag).toBe(TAG.contextPrimitive(0));
    expect(aki.content.equals(root.extensions.get(OID.ski)!.value.content)).toBe(true);
    expect(f.issuer.raw.equals(root.subject.raw)).toBe(true);
    const leaf = new X509Certificate(certChainPem[0]!);
    expect(leaf.verify(new X509Certificate(ca.trustBundle()[0]!).publicKey)).toBe(true);
  });

  it("give the controller's serving certificate the DNS names asked for and a key of its own", async () => {
    const ca = await readyCa();
    const serving = ca.issueServing(["ambit-controller.ambit-system.svc", "ambit-controller.ambit-system.svc.cluster.local"], 3600);
    const cert = new X509Certificate(serving.certChainPem);
    expect(cert.subjectAltName).toBe("DNS:ambit-controller.ambit-system.svc, DNS:ambit-controller.ambit-system.svc.cluster.local");
    expect(cert.checkHost("ambit-controller.ambit-system.svc")).toBe("ambit-controller.ambit-system.svc");
    expect(serving.keyPem).toContain("BEGIN PRIVATE KEY");
    expect(cert.verify(new X509Certificate(ca.trustBundle()[0]!).publicKey)).toBe(true);
  });
});
