// The status.ancestors the leader writes on each BackendTrafficPolicy (GEP-713 PolicyAncestorStatus), leaving other controllers' entries alone.
import type { Logger } from "pino";
import { TRAFFIC_POLICY_PLURAL, TRAFFIC_POLICY_VERSION } from "../../contract/traffic-policy.ts";
import { WAYPOINT_CONTROLLER_NAME } from "../../contract/waypoint.ts";
import { type KubeClient, type KubeObject, pathFor } from "../../kube/client.ts";
import { stableStringify } from "../stream/index.ts";
import { carryTransitions } from "../waypoints/index.ts";
import type { PolicyAncestorStatus, TrafficPolicyResult } from "./attach.ts";

type WrittenAncestor = Omit<PolicyAncestorStatus, "conditions"> & {
  conditions: Array<PolicyAncestorStatus["conditions"][number] & { lastTransitionTime: string }>;
};

/**
 * The policy's next `status.ancestors`, or undefined when it already says so: ours replaced, every other controller's
 * kept; a condition keeps its lastTransitionTime while its status holds for the same ancestor.
 */
export function nextPolicyAncestors(policy: KubeObject, ours: readonly PolicyAncestorStatus[], now: string): WrittenAncestor[] | undefined {
  const existing = ((policy.status?.ancestors ?? []) as WrittenAncestor[]).filter((a) => typeof a === "object" && a !== null);
  const theirs = existing.filter((a) => a.controllerName !== WAYPOINT_CONTROLLER_NAME);
  const oursBefore = existing.filter((a) => a.controllerName === WAYPOINT_CONTROLLER_NAME);
  const next = [
    ...theirs,
    ...ours.map((a) => {
      const before = oursBefore.find((o) => stableStringify(o.ancestorRef) === stableStringify(a.ancestorRef));
      return { ...a, conditions: carryTransitions(a.conditions, before?.conditions, now) };
    }),
  ];
  return stableStringify(next) === stableStringify(existing) ? undefined : next;
}

/**
 * Writes each policy's status that differs (the leader's duty), conditional on the resourceVersion the cache holds: a
 * concurrent writer makes it fail with 409 and the watch event that follows brings the object to compute from again.
 */
export async function writeTrafficPolicyStatuses(
  client: KubeClient,
  results: readonly TrafficPolicyResult[],
  log: Logger,
  now: () => string = () => new Date().toISOString(),
): Promise<number> {
  let written = 0;
  await Promise.all(
    results.map(async ({ object, ancestors }) => {
      const next = nextPolicyAncestors(object, ancestors, now());
      if (!next) return;
      const namespace = object.metadata.namespace ?? "";
      const path = pathFor(TRAFFIC_POLICY_VERSION, TRAFFIC_POLICY_PLURAL, namespace, object.metadata.name, "status");
      try {
        await client.mergePatch(path, { metadata: { resourceVersion: object.metadata.resourceVersion }, status: { ancestors: next } });
        written++;
      } catch (err) {
        log.warn(
          { policy: `${namespace}/${object.metadata.name}`, err: String(err) },
          "could not write BackendTrafficPolicy status; retrying on its next change",
        );
      }
    }),
  );
  return written;
}
