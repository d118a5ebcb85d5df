// Whether a pod should be captured by the mesh, from its namespace's and its own labels: one decision for the agent and the CNI plugin.
import type { KubeObject } from "../kube/client.ts";

/** Namespace label that enrolls every pod of the namespace; on a pod, `none` opts that pod out. */
export const DATAPLANE_MODE_LABEL = "ambit.dev/dataplane-mode";
export const DATAPLANE_MODE_AMBIENT = "ambient";
export const DATAPLANE_MODE_NONE = "none";
export { REDIRECTION_ANNOTATION } from "./pods.ts";

export interface CaptureIntent {
  capture: boolean;
  /** Why, in words an operator can act on (shown by the admin API and logs). */
  reason: string;
}

export function captureIntent(namespace: KubeObject | undefined, pod: KubeObject): CaptureIntent {
  if (pod.spec?.hostNetwork) return { capture: false, reason: "pod uses the host network" };
  if (pod.metadata.deletionTimestamp) return { capture: false, reason: "pod is terminating" };
  if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed")
    return { capture: false, reason: `pod has ${String(pod.status.phase).toLowerCase()}` };
  if (pod.metadata.labels?.[DATAPLANE_MODE_LABEL] === DATAPLANE_MODE_NONE) {
    return { capture: false, reason: `pod opted out with label ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_NONE}` };
  }
  if (!namespace) return { capture: false, reason: "namespace not known yet" };
  const mode = namespace.metadata.labels?.[DATAPLANE_MODE_LABEL];
  if (mode === DATAPLANE_MODE_AMBIENT)
    return { capture: true, reason: `namespace ${namespace.metadata.name} has ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT}` };
  return { capture: false, reason: `namespace ${namespace.metadata.name} is not enrolled (label it ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT})` };
}
