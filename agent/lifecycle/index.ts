// Public surface of the agent's lifecycle: handing the node over to the next agent when this one stops; start and stop helpers the waypoint shares; memory given back after a burst.
export { type HandoverOptions, type HandoverOutcome, awaitSuccessor } from "./handover.ts";
export { retryUntil, stopOnSignals } from "./process.ts";
export { type IdleMemoryOptions, IdleMemoryReleaser, type MemorySample, type ReleaseReason } from "./idle-memory.ts";
