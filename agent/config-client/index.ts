// Public surface of the config stream client: the agent's connection to the controller's per-node config, and its typed reading.
export {
  type BackoffPolicy,
  ConfigStreamClient,
  type ConfigStreamClientOptions,
  DEFAULT_BACKOFF,
  type Staleness,
  type UpdateInfo,
  backoffDelay,
} from "./client.ts";
export { type MeshConfig, MeshConfigError, meshConfigFromView } from "./mesh-config.ts";
