// Public surface of HBONE: the mTLS HTTP/2 CONNECT tunnel between node agents (client pool and server).
export { type HboneClientOptions, HboneConnectionPool, HboneError, type OpenStreamRequest } from "./client.ts";
export {
  type Authorization,
  HboneServer,
  type HboneServerOptions,
  type SourceAddressResult,
  type StreamEvent,
  type StreamRefusal,
  type StreamTarget,
  peerAddressOnly,
} from "./server.ts";
export { HBONE_SETTINGS, parseAuthority } from "./protocol.ts";
