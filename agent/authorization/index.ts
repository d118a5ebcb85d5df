// Public surface of L4 authorization in the agent: the policy store the data path asks on every inbound connection.
export { IpSet } from "./ip-set.ts";
export { PolicyError, PolicyStore, matchesPattern } from "./policy-store.ts";
