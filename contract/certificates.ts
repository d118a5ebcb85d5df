// Wire contract of the controller's CSR endpoint: path, audience, request and answer bodies, refusal codes.

export const CSR_PATH = "/v1/certificates";
/** Audience of the projected service-account token an agent presents to the CA (and the config stream). */
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

/** Stable codes of every refusal; the answer body is `{ code, message }`. */
export const CaRefusalCode = {
  unauthenticated: "AMBIT_E_CA_UNAUTHENTICATED",
  notAnAgent: "AMBIT_E_CA_NOT_AN_AGENT",
  noNode: "AMBIT_E_CA_NO_NODE",
  notOnNode: "AMBIT_E_CA_IDENTITY_NOT_ON_NODE",
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
