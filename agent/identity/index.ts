// Public surface of identity: SPIFFE IDs and how they are read from certificates; local pods' certificates and their issuer.
// One SPIFFE parser for every component lives in contract/; the agent re-exports it for its own folders.
export { IdentityError, type SpiffeId, formatSpiffeId, parseSpiffeId, sameIdentity, spiffeIdFromCertificate } from "../../contract/spiffe.ts";
export { type CertificateIssuer, CertificateManager, type IssuedCertificate, describeChain } from "./certificates.ts";
export { CaRequestError, ControllerCaClient, type ControllerCaOptions } from "./controller-ca.ts";

/** A workload's certificate chain and private key (PEM), as TLS contexts need them. */
export interface Credentials {
  certChainPem: string;
  keyPem: string;
}
export { PodIdentity, type PodIdentityOptions } from "./pod-identity.ts";
