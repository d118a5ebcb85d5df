// Wire contract of the controller's CSR endpoint: path, audience, request and answer bodies, refusal codes.

export const CSR_PATH = "/v1/certificates";
/** Audience of the projected service-account token an agent or a waypoint presents to the CA (and the config stream). */
export const CA_TOKEN_AUDIENCE = "ambit-ca";
/** Requests are small (one CSR); anything larger is refused before it is read. */
export const MAX_CSR_REQUEST_BYTES = 64 * 1024;

export interface CsrRequest {
  /** PEM PKCS#10 with a P-256 key and exactly one SAN: the SPIFFE URI asked for. */
  csr: string;
  /** Shorter than the CA's default is honoured; longer is capped. */
  ttlSeconds?: number;
}

export interface CsrResponse {
  /** Leaf first, then any intermediates. */
  certChain: string[];
  trustBundle: string[];
  notAfter: string;
}

/**
 * Stable codes of every refusal; the answer body is `{ code, message }`. Agents may obtain the identities of their
 * node's pods; any other pod (a waypoint, a sidecar) exactly its own, proven by its pod-bound token.
 */
export const CaRefusalCode = {
  unauthenticated: "AMBIT_E_CA_UNAUTHENTICATED",
  /** Only an agent may do this (hold a node's config stream), or the caller is not a service account at all. */
  notAnAgent: "AMBIT_E_CA_NOT_AN_AGENT",
  noNode: "AMBIT_E_CA_NO_NODE",
  notOnNode: "AMBIT_E_CA_IDENTITY_NOT_ON_NODE",
  /** A non-agent token without the pod claims (a TokenRequest without boundObjectRef, a Secret token): it proves no pod. */
  notPodBound: "AMBIT_E_CA_TOKEN_NOT_POD_BOUND",
  /** The token's pod is gone (or replaced: another uid), terminating, or finished. */
  podNotLive: "AMBIT_E_CA_POD_NOT_LIVE",
  /** The token's service account is not the one its pod runs as. */
  podServiceAccount: "AMBIT_E_CA_POD_SERVICE_ACCOUNT",
  /** A pod that is not an agent asked for an identity other than its own. */
  notOwnIdentity: "AMBIT_E_CA_NOT_OWN_IDENTITY",
  trustDomain: "AMBIT_E_CA_TRUST_DOMAIN",
  badRequest: "AMBIT_E_CA_BAD_REQUEST",
  badCsr: "AMBIT_E_CA_BAD_CSR",
  tooLarge: "AMBIT_E_CA_TOO_LARGE",
  notFound: "AMBIT_E_CA_NOT_FOUND",
  notReady: "AMBIT_E_CA_NOT_READY",
  internal: "AMBIT_E_CA_INTERNAL",
} as const;
export type CaRefusalCode = (typeof CaRefusalCode)[keyof typeof CaRefusalCode];

export interface CaErrorBody {
  code: CaRefusalCode;
  message: string;
}
