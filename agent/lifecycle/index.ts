// Public surface of the agent's lifecycle: handing the node over to the next agent when this one stops.
export { type HandoverOptions, type HandoverOutcome, awaitSuccessor } from "./handover.ts";
