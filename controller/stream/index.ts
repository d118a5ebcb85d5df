// Public surface of the config stream server: what the controller wires up and what the admin page reads.
export {
  type AgentConnectionStatus,
  type AuthenticationRequest,
  type AuthenticationResult,
  ConfigStreamServer,
  type ConfigStreamServerOptions,
} from "./server.ts";
