// Minimal DER (ASN.1) writer and reader: exactly what workload certificates and PKCS#10 CSRs need, no more.
import { AmbitError } from "../contract/errors.ts";
import { PKI_ERRORS } from "../contract/error-codes.ts";

/** A tag-length-value with its own bytes and, for constructed types, its content range. */
export interface Tlv {
  tag: number;
  /** The whole encoding (tag, length, content). */
  raw: Buffer;
  content: Buffer;
}

export class DerError extends AmbitError<typeof PKI_ERRORS.code.der> {
  constructor(message: string) {
    super(PKI_ERRORS.code.der, message);
    this.name = "DerError";
  }
}

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
};

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  /** Context-specific constructed [n]. */
  context: (n: number) => 0xa0 | n,
  /** Context-specific primitive [n] (e.g. a GeneralName's uniformResourceIdentifier is [6]). */
  contextPrimitive: (n: number) => 0x80 | n,
} as const;

export const sequence = (...items: Buffer[]): Buffer => tlv(TAG.sequence, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(TAG.set, ...items);
export const octetString = (b: Buffer): Buffer => tlv(TAG.octetString, b);
/** A BIT STRING with no unused bits. */
export const bitString = (b: Buffer): Buffer => tlv(TAG.bitString, Buffer.from([0]), b);
export const boolean = (v: boolean): Buffer => tlv(TAG.boolean, Buffer.from([v ? 0xff : 0]));

/** A non-negative INTEGER from big-endian magnitude bytes (a leading zero is added when the top bit is set). */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  return tlv(TAG.integer, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}
export const smallInteger = (n: number): Buffer => unsignedInteger(Buffer.from([n]));

export function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const bytes = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const chunk = [part & 0x7f];
    for (let v = Math.floor(part / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(TAG.oid, Buffer.from(bytes));
}

export function decodeOid(content: Buffer): string {
  const out = [Math.floor(content[0]! / 40), content[0]! % 40];
  let v = 0;
  for (const b of content.subarray(1)) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      out.push(v);
      v = 0;
    }
  }
  return out.join(".");
}

/** UTCTime through 2049, GeneralizedTime after, as RFC 5280 requires. */
export function time(d: Date): Buffer {
  const iso = d
    .toISOString()
    .replace(/[-:T]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return d.getUTCFullYear() < 2050 ? tlv(TAG.utcTime, Buffer.from(iso.slice(2))) : tlv(TAG.generalizedTime, Buffer.from(iso));
}

/** Reads one TLV at `offset`; throws on truncation or lengths DER does not allow. */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new DerError("truncated DER: no room for a tag and length");
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError("multi-byte DER tags are not supported");
  let len = buf[offset + 1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError("DER length must be definite and at most 4 bytes long");
    if (offset + 2 + n > buf.length) throw new DerError("truncated DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
    header += n;
  }
  const end = offset + header + len;
  if (end > buf.length) throw new DerError("truncated DER: content runs past the end");
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + header, end) };
}

/** The TLVs inside a constructed value. */
export function children(parent: Tlv | Buffer): Tlv[] {
  const content = Buffer.isBuffer(parent) ? parent : parent.content;
  const out: Tlv[] = [];
  for (let offset = 0; offset < content.length;) {
    const item = readTlv(content, offset);
    out.push(item);
    offset += item.raw.length;
  }
  return out;
}

/** Reads a whole buffer as exactly one TLV of the expected tag. */
export function expectTlv(buf: Buffer, tag: number, what: string): Tlv {
  const t = readTlv(buf);
  if (t.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`);
  if (t.raw.length !== buf.length) throw new DerError(`${what}: trailing bytes after the value`);
  return t;
}

export const pemToDer = (pem: string, label: string): Buffer => {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`).exec(pem);
  if (!m) throw new DerError(`no PEM block "${label}" found`);
  return Buffer.from(m[1]!.replace(/\s+/g, ""), "base64");
};

export const derToPem = (der: Buffer, label: string): string =>
  `-----BEGIN ${label}-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
