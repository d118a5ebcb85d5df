// Wire contract of the controller's CSR endpoint: path, audience, request and answer bodies, refusal codes.
import { CA_ERRORS } from "./error-codes.ts";

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
  unauthenticated: CA_ERRORS.code.unauthenticated,
  notAnAgent: CA_ERRORS.code.notAnAgent,
  noNode: CA_ERRORS.code.noNode,
  notOnNode: CA_ERRORS.code.notOnNode,
  /** A non-agent token without the pod claims: it proves no pod. */
  notPodBound: CA_ERRORS.code.notPodBound,
  /** The token's pod is gone (or replaced: another uid), terminating, or finished. */
  podNotLive: CA_ERRORS.code.podNotLive,
  /** The token's service account is not the one its pod runs as. */
  podServiceAccount: CA_ERRORS.code.podServiceAccount,
  /** A pod that is not an agent asked for an identity other than its own. */
  notOwnIdentity: CA_ERRORS.code.notOwnIdentity,
  trustDomain: CA_ERRORS.code.trustDomain,
  badRequest: CA_ERRORS.code.badRequest,
  badCsr: CA_ERRORS.code.badCsr,
  tooLarge: CA_ERRORS.code.tooLarge,
  notFound: CA_ERRORS.code.notFound,
  notReady: CA_ERRORS.code.notReady,
  internal: CA_ERRORS.code.internal,
} as const;
export type CaRefusalCode = (typeof CaRefusalCode)[keyof typeof CaRefusalCode];

export interface CaErrorBody {
  code: CaRefusalCode;
  message: string;
}
