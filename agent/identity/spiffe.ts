// SPIFFE workload identities: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
import type { X509Certificate } from "node:crypto";

export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export class IdentityError extends Error {
  readonly code = "AMBIT_E_IDENTITY_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "IdentityError";
  }
}

const SEGMENT = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

export function parseSpiffeId(uri: string): SpiffeId {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  if (!m || !TRUST_DOMAIN.test(m[1]!) || !SEGMENT.test(m[2]!) || !SEGMENT.test(m[3]!)) {
    throw new IdentityError(`"${uri}" is not a workload identity of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
  }
  return { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
}

export function formatSpiffeId(id: SpiffeId): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

export const sameIdentity = (a: SpiffeId, b: SpiffeId): boolean => formatSpiffeId(a) === formatSpiffeId(b);

/** The one SPIFFE URI SAN of a certificate; anything else (none, several, other URIs) is refused. */
export function spiffeIdFromCertificate(cert: X509Certificate): SpiffeId {
  const uris = (cert.subjectAltName ?? "")
    .split(", ")
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
  if (uris.length !== 1) throw new IdentityError(`a workload certificate must carry exactly one URI SAN, found ${uris.length}`);
  return parseSpiffeId(uris[0]!);
}
