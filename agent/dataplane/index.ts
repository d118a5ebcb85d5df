// Public surface of the data path: the handlers that move captured connections over HBONE or straight through.
export { Dataplane } from "./proxy.ts";
export type { DataplaneOptions } from "./options.ts";
export { type InboundAttributes, type InboundDecision, type InboundPolicy, decideInbound } from "./plan.ts";
