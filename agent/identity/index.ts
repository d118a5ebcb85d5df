// Public surface of identity: SPIFFE IDs and how they are read from certificates.
export { IdentityError, type SpiffeId, formatSpiffeId, parseSpiffeId, sameIdentity, spiffeIdFromCertificate } from "./spiffe.ts";

/** A workload's certificate chain and private key (PEM), as TLS contexts need them. */
export interface Credentials {
  certChainPem: string;
  keyPem: string;
}
