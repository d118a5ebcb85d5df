// How a Pod becomes a workload record: shared by the controller (the records every node receives) and the agent
// (its own pods, before the controller's view names them).
import type { KubeObject } from "../kube/client.ts";
import type { Workload } from "./mesh.ts";
import { hasSidecar } from "./sidecar.ts";

/** Annotation the agent sets on every pod of its node: `enabled` while its traffic is captured. */
export const REDIRECTION_ANNOTATION = "ambit.dev/redirection";

/** The owning workload's name, as Istio derives `source_workload`: Deployment pods drop their two hash suffixes. */
export function workloadNameOf(pod: KubeObject): string {
  const owner = pod.metadata.ownerReferences?.find((r) => r.controller);
  if (!owner) return pod.metadata.name;
  if (owner.kind === "ReplicaSet") return owner.name.replace(/-[a-z0-9]{6,10}$/, "");
  return owner.name;
}

/** A running, addressable pod on the pod network; host-network and terminating pods are not workloads. */
export function workloadFromPod(pod: KubeObject): Workload | undefined {
  const ip = pod.status?.podIP as string | undefined;
  if (!ip || pod.spec?.hostNetwork || pod.metadata.deletionTimestamp) return undefined;
  const phase = pod.status?.phase as string | undefined;
  if (phase === "Succeeded" || phase === "Failed") return undefined;
  return {
    uid: pod.metadata.uid ?? "",
    namespace: pod.metadata.namespace ?? "",
    name: pod.metadata.name,
    workloadName: workloadNameOf(pod),
    serviceAccount: pod.spec?.serviceAccountName ?? "default",
    node: pod.spec?.nodeName ?? "",
    ip,
    // Either its node's agent captures it, or its own sidecar terminates HBONE on 15008: peers reach both the same way.
    captured: pod.metadata.annotations?.[REDIRECTION_ANNOTATION] === "enabled" || hasSidecar(pod),
    labels: pod.metadata.labels ?? {},
  };
}
