// Public surface of the config stream client: the agent's connection to the controller's per-node config.
export {
  type BackoffPolicy,
  ConfigStreamClient,
  type ConfigStreamClientOptions,
  DEFAULT_BACKOFF,
  type Staleness,
  type UpdateInfo,
  backoffDelay,
} from "./client.ts";
