// Public surface of the data path: the handlers that move captured connections over HBONE or straight through.
export { Dataplane, type DataplaneOptions, type InboundAttributes, type InboundDecision, type InboundPolicy } from "./proxy.ts";
