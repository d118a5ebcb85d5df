// Native-speed X.509, all P-256 and signed by OpenSSL: the mesh CA's CSRs and workload certificates, and local CAs' serving and client certificates.
import { type KeyObject, createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import net from "node:net";
import {
  DerError,
  TAG,
  bitString,
  boolean,
  children,
  decodeOid,
  derToPem,
  expectTlv,
  octetString,
  oid,
  readTlv,
  sequence,
  set,
  smallInteger,
  time,
  tlv,
  unsignedInteger,
} from "./der.ts";
import { AmbitError } from "../contract/errors.ts";
import { PKI_ERRORS } from "../contract/error-codes.ts";

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

type CsrErrorCode = (typeof PKI_ERRORS.code)["csrMalformed" | "csrKey" | "csrSignature" | "csrSan"];

export class CsrError extends AmbitError<CsrErrorCode> {
  constructor(code: CsrErrorCode, message: string) {
    super(code, message);
    this.name = "CsrError";
  }
}

/** A leaf request the certificate could not honestly carry (no name at all, or a SAN that is not what its type says). */
export class LeafError extends AmbitError<typeof PKI_ERRORS.code.leafRequest> {
  constructor(message: string) {
    super(PKI_ERRORS.code.leafRequest, message);
    this.name = "LeafError";
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
    if (!info || !algorithm || !signature || info.tag !== TAG.sequence || signature.tag !== TAG.bitString)
      throw new CsrError("AMBIT_E_CSR_MALFORMED", "a CSR is SEQUENCE { info, algorithm, signature }");
    if (!algorithm.raw.equals(ECDSA_SHA256)) throw new CsrError("AMBIT_E_CSR_KEY", "the CSR must be signed with ecdsa-with-SHA256 (a P-256 key)");
    const [version, , spki, attributes] = children(info);
    if (!version || version.tag !== TAG.integer || version.content.length !== 1 || version.content[0] !== 0)
      throw new CsrError("AMBIT_E_CSR_MALFORMED", "the CSR version must be 0");
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

/** A subject or issuer name. Kubernetes reads a client certificate's CN as the user and O as the group. */
export interface DistinguishedName {
  organization?: string;
  commonName?: string;
}

/** O before CN, each in its own RDN; absent or empty attributes are left out, so `{}` is the empty name. */
function name(dn: DistinguishedName): Buffer {
  const rdn = (id: string, value: string) => set(sequence(oid(id), tlv(TAG.utf8String, Buffer.from(value))));
  return sequence(...(dn.organization ? [rdn(OID.organization, dn.organization)] : []), ...(dn.commonName ? [rdn(OID.commonName, dn.commonName)] : []));
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

export interface CaOptions {
  organization?: string;
  commonName: string;
  ttlSeconds: number;
  /** Intermediates allowed below this CA: 1 for the mesh root (a plug-in intermediate), 0 for CAs that sign leaves only. */
  pathLength?: number;
  now?: Date;
}

/** A self-signed P-256 CA (e.g. the mesh root), with a key identifier so leaves can name it. */
export function createSelfSignedCa(opts: CaOptions): { certDer: Buffer; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateP256();
  const spki = publicKey.export({ type: "spki", format: "der" });
  const now = opts.now ?? new Date();
  const subject = name({ organization: opts.organization, commonName: opts.commonName });
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

/** Which TLS side a leaf may play (extendedKeyUsage): mesh workloads are both, the sandbox API server only serves. */
export type LeafUsage = "server" | "client" | "client-and-server";

export interface LeafRequest {
  spki: Buffer;
  /** Empty when absent: SPIFFE workload certificates are named by their URI SAN alone. */
  subject?: DistinguishedName;
  /** SPIFFE URIs (workloads) go in as URIs; serving certificates may add DNS names and IPs. */
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
  /** Defaults to client-and-server. */
  usage?: LeafUsage;
  notBefore: Date;
  notAfter: Date;
}

const EKU: Record<LeafUsage, string[]> = {
  server: [OID.serverAuth],
  client: [OID.clientAuth],
  "client-and-server": [OID.serverAuth, OID.clientAuth],
};

/** The 4 or 16 address bytes an iPAddress SAN holds; any other length makes Go's x509 reject the whole certificate. */
function ipBytes(ip: string): Buffer {
  const family = net.isIP(ip);
  if (family === 4) return Buffer.from(ip.split(".").map(Number));
  // A zone (fe80::1%eth0) names a local interface, not an address a certificate can vouch for.
  if (family !== 6 || ip.includes("%")) throw new LeafError(`"${ip}" is not an IP address`);
  // An embedded IPv4 tail (::ffff:10.0.0.1) is the last two 16-bit groups written in dotted form.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  const hex = v4 ? `${ip.slice(0, v4.index)}${((+v4[1]! << 8) | +v4[2]!).toString(16)}:${((+v4[3]! << 8) | +v4[4]!).toString(16)}` : ip;
  const [head, tail] = hex.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

/** dNSName and uniformResourceIdentifier are IA5Strings: Go's x509 refuses a certificate whose SAN holds anything else. */
function ia5(kind: string, value: string): Buffer {
  if (!/^[\x21-\x7e]+$/.test(value)) throw new LeafError(`${kind} SAN "${value}" must be non-empty printable ASCII without spaces`);
  return Buffer.from(value, "latin1");
}

/**
 * Signs an end-entity certificate: the subject and SANs given, digital signature only, the extended key usages
 * `usage` names, not a CA. The SAN extension is critical when the subject is empty (RFC 5280 4.2.1.6) and left out
 * when there are no SANs, as an empty one is invalid. One OpenSSL ECDSA signature; everything else is copying.
 */
export function signLeaf(issuer: IssuerInfo, issuerKey: KeyObject, req: LeafRequest): Buffer {
  const names = [
    ...(req.uris ?? []).map((u) => tlv(URI_TAG, ia5("URI", u))),
    ...(req.dnsNames ?? []).map((d) => tlv(DNS_TAG, ia5("DNS", d))),
    ...(req.ips ?? []).map((ip) => tlv(IP_TAG, ipBytes(ip))),
  ];
  const subject = name(req.subject ?? {});
  const emptySubject = children(readTlv(subject)).length === 0;
  if (emptySubject && names.length === 0) throw new LeafError("a leaf needs a subject or at least one SAN: otherwise it names no one");
  const tbs = sequence(
    tlv(TAG.context(0), smallInteger(2)),
    serialNumber(),
    ECDSA_SHA256,
    issuer.subject,
    sequence(time(req.notBefore), time(req.notAfter)),
    subject,
    req.spki,
    tlv(
      TAG.context(3),
      sequence(
        extension(OID.basicConstraints, true, sequence()),
        // digitalSignature: bit 0. ECDHE-ECDSA handshakes sign with the key; keyEncipherment is RSA-only.
        extension(OID.keyUsage, true, tlv(TAG.bitString, Buffer.from([7, 0x80]))),
        extension(OID.extKeyUsage, false, sequence(...EKU[req.usage ?? "client-and-server"].map((u) => oid(u)))),
        ...(names.length > 0 ? [extension(OID.subjectAltName, emptySubject, sequence(...names))] : []),
        extension(OID.authorityKeyIdentifier, false, sequence(tlv(TAG.contextPrimitive(0), issuer.keyId))),
        extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(req.spki))),
      ),
    ),
  );
  return certificate(tbs, issuerKey);
}

/** PKCS#8 PEM ("BEGIN PRIVATE KEY"), the form Node's TLS, curl and kubectl all read. */
export const privateKeyPem = (key: KeyObject): string => key.export({ type: "pkcs8", format: "pem" }) as string;

/** A CA that signs in this process: the sandbox API server's CA and test roots (the mesh CA keeps its own in a Secret). */
export interface LocalCa {
  certPem: string;
  privateKey: KeyObject;
  issuer: IssuerInfo;
}

/** A self-signed CA ready for `issueLeaf`, with its key also as PKCS#8 PEM for callers that store it. */
export function createRootCa(opts: CaOptions): LocalCa & { keyPem: string } {
  const { certDer, privateKey } = createSelfSignedCa(opts);
  return { certPem: derToPem(certDer, "CERTIFICATE"), privateKey, issuer: issuerInfo(certDer), keyPem: privateKeyPem(privateKey) };
}

export interface IssuedLeaf {
  certPem: string;
  /** PKCS#8 PEM; whoever writes it to disk makes the file 0600. */
  keyPem: string;
  notAfter: Date;
}

/** A fresh P-256 key and its leaf from `ca`, valid from a minute ago (a peer's clock may lag) for `ttlSeconds`. */
export function issueLeaf(ca: LocalCa, req: Omit<LeafRequest, "spki" | "notBefore" | "notAfter"> & { ttlSeconds: number; now?: Date }): IssuedLeaf {
  const { privateKey, publicKey } = generateP256();
  const now = req.now ?? new Date();
  const notAfter = new Date(now.getTime() + req.ttlSeconds * 1000);
  const { ttlSeconds: _ttl, now: _now, ...names } = req;
  const der = signLeaf(ca.issuer, ca.privateKey, {
    ...names,
    spki: publicKey.export({ type: "spki", format: "der" }),
    notBefore: new Date(now.getTime() - 60_000),
    notAfter,
  });
  return { certPem: derToPem(der, "CERTIFICATE"), keyPem: privateKeyPem(privateKey), notAfter };
}
