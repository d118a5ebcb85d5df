// Native-speed X.509 for the mesh CA: PKCS#10 CSRs with a SPIFFE URI, P-256 workload certificates and roots, signed by OpenSSL.
import { type KeyObject, createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import { DerError, TAG, bitString, boolean, children, decodeOid, expectTlv, octetString, oid, readTlv, sequence, set, smallInteger, time, tlv, unsignedInteger } from "./der.ts";

const OID = {
  ecPublicKey: "1.2.840.10045.2.1",
  prime256v1: "1.2.840.10045.3.1.7",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  extensionRequest: "1.2.840.113549.1.9.14",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
} as const;

const ECDSA_SHA256 = sequence(oid(OID.ecdsaWithSha256));
const URI_TAG = TAG.contextPrimitive(6);
const DNS_TAG = TAG.contextPrimitive(2);
const IP_TAG = TAG.contextPrimitive(7);

export class CsrError extends Error {
  readonly code: string;
  constructor(code: "AMBIT_E_CSR_MALFORMED" | "AMBIT_E_CSR_KEY" | "AMBIT_E_CSR_SIGNATURE" | "AMBIT_E_CSR_SAN", message: string) {
    super(message);
    this.name = "CsrError";
    this.code = code;
  }
}

const extension = (id: string, critical: boolean, value: Buffer): Buffer => sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));

/** A fresh P-256 key pair (OpenSSL). */
export const generateP256 = (): { privateKey: KeyObject; publicKey: KeyObject } => generateKeyPairSync("ec", { namedCurve: "P-256" });

/** A PKCS#10 CSR (DER) with an empty subject and exactly one SAN, `uri`, signed by `privateKey`. */
export function buildCsr(privateKey: KeyObject, uri: string): Buffer {
  const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  const extensions = sequence(extension(OID.subjectAltName, true, sequence(tlv(URI_TAG, Buffer.from(uri)))));
  const info = sequence(smallInteger(0), sequence(), spki, tlv(TAG.context(0), sequence(oid(OID.extensionRequest), set(extensions))));
  return sequence(info, ECDSA_SHA256, bitString(sign("sha256", info, { key: privateKey, dsaEncoding: "der" })));
}

export interface ParsedCsr {
  /** The requester's SubjectPublicKeyInfo, copied into the certificate unchanged. */
  spki: Buffer;
  uris: string[];
  /** Other SAN kinds asked for (refused by the CA: workload certificates carry the SPIFFE URI only). */
  otherSans: number;
}

/** The SAN entries inside an extensions SEQUENCE. */
function sansOf(extensions: Buffer): { uris: string[]; other: number } {
  const out = { uris: [] as string[], other: 0 };
  for (const ext of children(readTlv(extensions))) {
    const parts = children(ext);
    if (parts[0]?.tag !== TAG.oid || decodeOid(parts[0].content) !== OID.subjectAltName) continue;
    const value = parts.at(-1)!;
    if (value.tag !== TAG.octetString) throw new CsrError("AMBIT_E_CSR_MALFORMED", "subjectAltName extension value is not an OCTET STRING");
    for (const name of children(readTlv(value.content))) {
      if (name.tag === URI_TAG) out.uris.push(name.content.toString("latin1"));
      else out.other++;
    }
  }
  return out;
}

/**
 * Parses and verifies a PKCS#10 CSR: the key must be P-256 and the signature (proof of possession) valid.
 * Every structural problem is a CsrError with a message naming what is wrong.
 */
export function parseCsr(der: Buffer): ParsedCsr {
  try {
    const [info, algorithm, signature] = children(expectTlv(der, TAG.sequence, "CSR"));
    if (!info || !algorithm || !signature || info.tag !== TAG.sequence || signature.tag !== TAG.bitString) throw new CsrError("AMBIT_E_CSR_MALFORMED", "a CSR is SEQUENCE { info, algorithm, signature }");
    if (!algorithm.raw.equals(ECDSA_SHA256)) throw new CsrError("AMBIT_E_CSR_KEY", "the CSR must be signed with ecdsa-with-SHA256 (a P-256 key)");
    const [version, , spki, attributes] = children(info);
    if (!version || version.tag !== TAG.integer || version.content.length !== 1 || version.content[0] !== 0) throw new CsrError("AMBIT_E_CSR_MALFORMED", "the CSR version must be 0");
    if (!spki || spki.tag !== TAG.sequence) throw new CsrError("AMBIT_E_CSR_MALFORMED", "the CSR has no subjectPublicKeyInfo");
    const [keyAlgorithm] = children(spki);
    const [keyType, curve] = keyAlgorithm ? children(keyAlgorithm) : [];
    if (keyType?.tag !== TAG.oid || decodeOid(keyType.content) !== OID.ecPublicKey || curve?.tag !== TAG.oid || decodeOid(curve.content) !== OID.prime256v1) {
      throw new CsrError("AMBIT_E_CSR_KEY", "the CSR key must be ECDSA P-256 (prime256v1)");
    }
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: spki.raw, format: "der", type: "spki" });
    } catch (err) {
      // OpenSSL's decoder errors carry no stable code: any failure here is a key the CSR does not really hold.
      throw new CsrError("AMBIT_E_CSR_KEY", `the CSR's public key cannot be read: ${(err as Error).message}`);
    }
    if (signature.content[0] !== 0) throw new CsrError("AMBIT_E_CSR_MALFORMED", "the CSR signature BIT STRING has unused bits");
    if (!verify("sha256", info.raw, { key: publicKey, dsaEncoding: "der" }, signature.content.subarray(1))) {
      throw new CsrError("AMBIT_E_CSR_SIGNATURE", "the CSR signature does not verify: the requester does not hold the private key");
    }
    const sans = { uris: [] as string[], other: 0 };
    if (attributes && attributes.tag === TAG.context(0)) {
      for (const attribute of children(attributes)) {
        const [type, values] = children(attribute);
        if (type?.tag !== TAG.oid || decodeOid(type.content) !== OID.extensionRequest || !values) continue;
        for (const exts of children(values)) {
          const found = sansOf(exts.raw);
          sans.uris.push(...found.uris);
          sans.other += found.other;
        }
      }
    }
    return { spki: spki.raw, uris: sans.uris, otherSans: sans.other };
  } catch (err) {
    if (err instanceof CsrError) throw err;
    if (err instanceof DerError || err instanceof TypeError || (err as { code?: string }).code?.startsWith("ERR_")) {
      throw new CsrError("AMBIT_E_CSR_MALFORMED", `the CSR is not valid DER PKCS#10: ${(err as Error).message}`);
    }
    throw err;
  }
}

/** Key identifier as RFC 5280 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(spki: Buffer): Buffer {
  const [, key] = children(readTlv(spki));
  return createHash("sha1").update(key!.content.subarray(1)).digest();
}

const serialNumber = (): Buffer => {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  b[0]! |= 0x01;
  return unsignedInteger(b);
};

function name(organization: string, commonName: string): Buffer {
  const rdn = (id: string, value: string) => set(sequence(oid(id), tlv(TAG.utf8String, Buffer.from(value))));
  return sequence(rdn(OID.organization, organization), rdn(OID.commonName, commonName));
}

function certificate(tbs: Buffer, issuerKey: KeyObject): Buffer {
  return sequence(tbs, ECDSA_SHA256, bitString(sign("sha256", tbs, { key: issuerKey, dsaEncoding: "der" })));
}

/** The issuer-side facts of a CA certificate that every certificate it signs repeats. */
export interface IssuerInfo {
  subject: Buffer;
  keyId: Buffer;
}

export function issuerInfo(caCertDer: Buffer): IssuerInfo {
  const [tbs] = children(readTlv(caCertDer));
  const fields = children(tbs!);
  // [0] version, serial, signature, issuer, validity, subject, spki, ..., [3] extensions
  const offset = fields[0]!.tag === TAG.context(0) ? 1 : 0;
  // The issuer's own subjectKeyIdentifier when it has one: RFC 5280 lets a CA choose it freely, and a leaf
  // whose authorityKeyIdentifier differs from it does not verify. Computed (method 1) only when absent.
  const extensions = fields.find((f) => f.tag === TAG.context(3));
  for (const ext of extensions ? children(children(extensions)[0]!) : []) {
    const parts = children(ext);
    if (parts[0]?.tag === TAG.oid && decodeOid(parts[0].content) === OID.subjectKeyIdentifier) {
      return { subject: fields[offset + 4]!.raw, keyId: readTlv(parts.at(-1)!.content).content };
    }
  }
  return { subject: fields[offset + 4]!.raw, keyId: keyIdentifier(fields[offset + 5]!.raw) };
}

/** A self-signed P-256 CA (e.g. the mesh root), with a key identifier so leaves can name it. */
export function createSelfSignedCa(opts: { organization: string; commonName: string; ttlSeconds: number; pathLength?: number; now?: Date }): { certDer: Buffer; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateP256();
  const spki = publicKey.export({ type: "spki", format: "der" });
  const now = opts.now ?? new Date();
  const subject = name(opts.organization, opts.commonName);
  const keyId = keyIdentifier(spki);
  const tbs = sequence(
    tlv(TAG.context(0), smallInteger(2)),
    serialNumber(),
    ECDSA_SHA256,
    subject,
    sequence(time(new Date(now.getTime() - 60_000)), time(new Date(now.getTime() + opts.ttlSeconds * 1000))),
    subject,
    spki,
    tlv(
      TAG.context(3),
      sequence(
        extension(OID.basicConstraints, true, sequence(boolean(true), smallInteger(opts.pathLength ?? 1))),
        // keyCertSign | cRLSign: bits 5 and 6.
        extension(OID.keyUsage, true, tlv(TAG.bitString, Buffer.from([1, 0x06]))),
        extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
      ),
    ),
  );
  return { certDer: certificate(tbs, privateKey), privateKey };
}

export interface LeafRequest {
  spki: Buffer;
  /** SPIFFE URIs (workloads) go in as URIs; serving certificates may add DNS names and IPs. */
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
  notBefore: Date;
  notAfter: Date;
}

function ipBytes(ip: string): Buffer {
  if (ip.includes(":")) {
    const [head, tail] = ip.split("::") as [string, string | undefined];
    const h = head ? head.split(":") : [];
    const t = tail ? tail.split(":") : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
    return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
  }
  return Buffer.from(ip.split(".").map(Number));
}

/**
 * Signs an end-entity certificate: empty subject, the SANs given (critical, as the subject is empty), digital
 * signature only, server and client auth, not a CA. One OpenSSL ECDSA signature; everything else is copying.
 */
export function signLeaf(issuer: IssuerInfo, issuerKey: KeyObject, req: LeafRequest): Buffer {
  const names = [
    ...(req.uris ?? []).map((u) => tlv(URI_TAG, Buffer.from(u))),
    ...(req.dnsNames ?? []).map((d) => tlv(DNS_TAG, Buffer.from(d))),
    ...(req.ips ?? []).map((ip) => tlv(IP_TAG, ipBytes(ip))),
  ];
  const tbs = sequence(
    tlv(TAG.context(0), smallInteger(2)),
    serialNumber(),
    ECDSA_SHA256,
    issuer.subject,
    sequence(time(req.notBefore), time(req.notAfter)),
    sequence(),
    req.spki,
    tlv(
      TAG.context(3),
      sequence(
        extension(OID.basicConstraints, true, sequence()),
        // digitalSignature: bit 0.
        extension(OID.keyUsage, true, tlv(TAG.bitString, Buffer.from([7, 0x80]))),
        extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth), oid(OID.clientAuth))),
        extension(OID.subjectAltName, true, sequence(...names)),
        extension(OID.authorityKeyIdentifier, false, sequence(tlv(TAG.contextPrimitive(0), issuer.keyId))),
        extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(req.spki))),
      ),
    ),
  );
  return certificate(tbs, issuerKey);
}
