// Public surface of the controller's identity concern: the mesh CA, caller authentication (agents and pods) and the CSR endpoint.
export {
  type AgentAuthentication,
  type CallerAuthentication,
  CallerAuthenticator,
  type CallerAuthenticatorOptions,
  type CallerRefusal,
  type PodCaller,
} from "./caller-auth.ts";
export { CA_SECRET, CaError, MeshCa, type MeshCaOptions, PLUGIN_CA_SECRET, loadPluginCa } from "./authority.ts";
export { CsrServer, type CsrServerOptions } from "./csr-server.ts";
export { podOnNodeCheck } from "./pod-lookup.ts";
export { TrustRootsPublisher } from "./roots-publisher.ts";
