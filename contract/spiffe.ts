// SPIFFE IDs for every component: the one parser (the SPIFFE ID spec's syntax, then Ambit's workload form spiffe://<td>/ns/<ns>/sa/<sa>).
import type { X509Certificate } from "node:crypto";
import { AmbitError } from "./errors.ts";
import { IDENTITY_ERRORS } from "./error-codes.ts";

export const SPIFFE_SCHEME = "spiffe://";
/** The spec's bound on a SPIFFE ID (URI) in bytes; every character the syntax admits is ASCII, so also in characters. */
export const MAX_SPIFFE_ID_LENGTH = 2048;

/** A workload identity: what Ambit issues and accepts on every mesh connection. */
export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** Any SPIFFE ID the spec admits, split into its trust domain and path segments. */
export interface ParsedSpiffeId {
  trustDomain: string;
  /** "" or `/seg/seg...`. */
  path: string;
  segments: string[];
}

export class IdentityError extends AmbitError<typeof IDENTITY_ERRORS.code.invalid> {
  constructor(message: string) {
    super(IDENTITY_ERRORS.code.invalid, message);
    this.name = "IdentityError";
  }
}

// The reasons below use go-spiffe's (spiffeid/errors.go) words, so a refusal reads the same as SPIRE's and its tests port as they are.
const REASONS = {
  empty: "cannot be empty",
  tooLong: `longer than ${MAX_SPIFFE_ID_LENGTH} bytes`,
  scheme: "scheme is missing or invalid",
  noTrustDomain: "trust domain is missing",
  trustDomainChar: "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
  pathChar: "path segment characters are limited to letters, numbers, dots, dashes, and underscores",
  emptySegment: "path cannot contain empty segments",
  trailingSlash: "path cannot have a trailing slash",
  dotSegment: "path cannot contain dot segments",
} as const;

/** The spec's trust domain characters. Port (`:`), user info (`@`), percent-encoding, query and fragment all fail here. */
const isTrustDomainChar = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
/** The spec's path segment characters: letters of either case, digits, `.`, `-`, `_`. */
const isPathChar = (c: number) => isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a);

function trustDomainProblem(td: string): string | undefined {
  if (td === "") return REASONS.noTrustDomain;
  for (let i = 0; i < td.length; i++) if (!isTrustDomainChar(td.charCodeAt(i))) return REASONS.trustDomainChar;
  return undefined;
}

/** Walks the path as go-spiffe does, so the first problem (left to right) is the one reported. */
function pathProblem(path: string): string | undefined {
  let start = 0;
  for (let i = 1; i <= path.length; i++) {
    const end = i === path.length;
    if (!end && path[i] !== "/") {
      if (!isPathChar(path.charCodeAt(i))) return REASONS.pathChar;
      continue;
    }
    const segment = path.slice(start + 1, i);
    if (segment === "") return end ? REASONS.trailingSlash : REASONS.emptySegment;
    if (segment === "." || segment === "..") return REASONS.dotSegment;
    start = i;
  }
  return undefined;
}

/** Any SPIFFE ID, strictly per the SPIFFE ID spec (lowercase scheme and trust domain, no port, user info, query, fragment or escapes). */
export function parseSpiffeUri(id: string): ParsedSpiffeId {
  const fail = (reason: string): never => {
    throw new IdentityError(`"${id.length > 100 ? `${id.slice(0, 100)}...` : id}" is not a SPIFFE ID: ${reason}`);
  };
  if (id === "") fail(REASONS.empty);
  if (id.length > MAX_SPIFFE_ID_LENGTH) fail(REASONS.tooLong);
  if (!id.startsWith(SPIFFE_SCHEME)) fail(REASONS.scheme);
  const rest = id.slice(SPIFFE_SCHEME.length);
  const slash = rest.indexOf("/");
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash);
  const problem = trustDomainProblem(trustDomain) ?? pathProblem(path);
  if (problem) fail(problem);
  return { trustDomain, path, segments: path === "" ? [] : path.slice(1).split("/") };
}

/** A trust domain given bare (`cluster.local`) or as a SPIFFE ID (`spiffe://cluster.local[/path]`), as go-spiffe's TrustDomainFromString. */
export function parseTrustDomain(value: string): string {
  if (value.includes(":/")) return parseSpiffeUri(value).trustDomain;
  const problem = trustDomainProblem(value);
  if (problem) throw new IdentityError(`"${value}" is not a trust domain: ${problem}`);
  return value;
}

/** Kubernetes names: a namespace is a DNS-1123 label, a service account name a DNS-1123 subdomain. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const isDnsLabel = (s: string) => s.length <= 63 && DNS_LABEL.test(s);
const isDnsSubdomain = (s: string) => s.length <= 253 && s.split(".").every(isDnsLabel);

/** A workload identity: a valid SPIFFE ID whose path is exactly /ns/<namespace>/sa/<service-account> with Kubernetes names. */
export function parseSpiffeId(uri: string): SpiffeId {
  const form = "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>";
  let parsed: ParsedSpiffeId;
  try {
    parsed = parseSpiffeUri(uri);
  } catch (err) {
    throw new IdentityError(`${(err as Error).message} (a workload identity has the form ${form})`);
  }
  const [ns, namespace, sa, serviceAccount, ...extra] = parsed.segments;
  const problem =
    ns !== "ns" || sa !== "sa" || namespace === undefined || serviceAccount === undefined || extra.length > 0
      ? `the path must be /ns/<namespace>/sa/<service-account>`
      : !isDnsLabel(namespace)
        ? `namespace "${namespace}" is not a Kubernetes namespace name (a DNS-1123 label)`
        : !isDnsSubdomain(serviceAccount)
          ? `service account "${serviceAccount}" is not a Kubernetes name (a DNS-1123 subdomain)`
          : undefined;
  if (problem) throw new IdentityError(`"${uri}" is not a workload identity of the form ${form}: ${problem}`);
  return { trustDomain: parsed.trustDomain, namespace: namespace!, serviceAccount: serviceAccount! };
}

export function formatSpiffeId(id: SpiffeId): string {
  return `${SPIFFE_SCHEME}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

export const sameIdentity = (a: SpiffeId, b: SpiffeId): boolean => formatSpiffeId(a) === formatSpiffeId(b);

/**
 * The URI SANs of Node's `subjectAltName` text (`DNS:a, URI:spiffe://...`). Node writes a value holding a comma, quote
 * or other special character as a JSON string (`DNS:"a, URI:spiffe://..."`): read as such, so a name can never pass
 * for a second entry; its decoded value is then no valid SPIFFE ID anyway.
 */
export function urisOfSubjectAltName(subjectAltName: string | undefined): string[] {
  const text = subjectAltName ?? "";
  const uris: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        // Unreadable: counted as a URI that can never parse, so the certificate is refused rather than misread.
        value = '"';
      }
      next = text.indexOf(", ", j + 1);
    } else {
      next = text.indexOf(", ", colon + 1);
      value = text.slice(colon + 1, next < 0 ? text.length : next);
    }
    if (type === "URI") uris.push(value);
    if (next < 0) break;
    i = next + 2;
  }
  return uris;
}

/** The one SPIFFE URI SAN of an X.509-SVID (the spec allows exactly one); none, several or a malformed one is refused. */
export function spiffeIdFromSubjectAltName(subjectAltName: string | undefined): SpiffeId {
  const uris = urisOfSubjectAltName(subjectAltName);
  if (uris.length !== 1) throw new IdentityError(`a workload certificate must carry exactly one URI SAN, found ${uris.length}`);
  return parseSpiffeId(uris[0]!);
}

export const spiffeIdFromCertificate = (cert: X509Certificate): SpiffeId => spiffeIdFromSubjectAltName(cert.subjectAltName);
