// Public surface of the controller's identity concern: the mesh CA, agent authentication and the CSR endpoint.
export { AgentAuthenticator, type AgentAuthentication } from "./agent-auth.ts";
export { CA_SECRET, CaError, MeshCa, type MeshCaOptions, PLUGIN_CA_SECRET, loadPluginCa } from "./authority.ts";
export { CsrServer, type CsrServerOptions } from "./csr-server.ts";
export { podOnNodeCheck } from "./pod-lookup.ts";
