// Public surface of pki: P-256 X.509 built on node:crypto (OpenSSL) and our own DER, for the mesh CA, the sandbox API server and tests.
export { DerError, derToPem, pemToDer } from "./der.ts";
export {
  type CaOptions,
  CsrError,
  type DistinguishedName,
  type IssuedLeaf,
  type IssuerInfo,
  LeafError,
  type LeafRequest,
  type LeafUsage,
  type LocalCa,
  type ParsedCsr,
  buildCsr,
  createRootCa,
  createSelfSignedCa,
  generateP256,
  issueLeaf,
  issuerInfo,
  parseCsr,
  privateKeyPem,
  signLeaf,
} from "./workload-certs.ts";
