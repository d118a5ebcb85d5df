// Public surface of the config stream server: what the controller wires up and what the admin page reads.
export { type MeshStreamAuthOptions, meshStreamAuthenticator } from "./mesh-auth.ts";
export {
  type AgentConnectionStatus,
  type AuthenticationRequest,
  type AuthenticationResult,
  ConfigStreamServer,
  type ConfigStreamServerOptions,
  type SidecarRef,
  type SubscriberKind,
} from "./server.ts";
export { stableStringify } from "./view.ts";
