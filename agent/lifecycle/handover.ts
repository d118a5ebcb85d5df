// Stopping without refusing a connection: an agent told to stop keeps serving until its successor on the node is ready.
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { type CniResponse, sendCniRequest } from "../../cni/index.ts";

export type HandoverOutcome = "successor-ready" | "no-successor" | "deadline";

export interface HandoverOptions {
  /** The node's CNI socket: whichever agent serves the node answers there, the newest one last. */
  socketPath: string;
  /** This agent's instance id: a STATUS answer carrying another one comes from a successor. */
  self: string;
  /** How long to keep serving while waiting; then the agent stops anyway. */
  timeoutMs: number;
  /** False when no successor will come (the DaemonSet is gone or being deleted): stop at once. */
  successorExpected(): Promise<boolean>;
  log: Logger;
  pollMs?: number;
}

/** The serving agent's answer to STATUS, if it is another agent that is ready. */
const readySuccessor = (r: CniResponse, self: string): boolean => r.ok && r.agent !== undefined && r.agent.instance !== self && r.agent.ready;

/**
 * On `kubectl rollout restart` (surge) the successor is ready before this agent is told to stop; on `kubectl delete
 * pod` the DaemonSet starts it only now. Either way this agent's pod listeners stay open (and it keeps capturing and
 * serving) until a successor answers STATUS as ready on the node's CNI socket, which it binds once it has opened its
 * own listeners in every pod: only then does closing ours hand the accept queues over instead of refusing them.
 */
export async function awaitSuccessor(opts: HandoverOptions): Promise<HandoverOutcome> {
  const deadline = Date.now() + opts.timeoutMs;
  let expected: boolean;
  try {
    expected = await opts.successorExpected();
  } catch (err) {
    // Unknown (the API may be unreachable): wait for one, bounded by the deadline.
    opts.log.warn({ err: String(err) }, "cannot tell whether a successor will start; waiting for one");
    expected = true;
  }
  if (!expected) return "no-successor";
  while (Date.now() < deadline) {
    const answer = await sendCniRequest(opts.socketPath, { command: "STATUS" }, 1_000).catch(() => undefined);
    if (answer && readySuccessor(answer, opts.self)) return "successor-ready";
    await sleep(opts.pollMs ?? 200);
  }
  return "deadline";
}
