// Whether a pod's DaemonSet will replace it: what a node program asks before it leaves the node to a successor.
import { type KubeClient, isNotFound, pathFor } from "./client.ts";

/**
 * False when the pod's owning DaemonSet is gone, being deleted or replaced by another of the same name (uid), or the
 * pod has none: then no successor pod will start on this node. True otherwise. API errors other than 404 propagate
 * (the caller decides what an unknown answer means).
 */
export async function ownerDaemonSetStays(client: KubeClient, namespace: string, podName: string): Promise<boolean> {
  const getOrNone = (p: string) =>
    client.get(p).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
  const pod = await getOrNone(pathFor("v1", "pods", namespace, podName));
  const owner = pod?.metadata.ownerReferences?.find((o) => o.kind === "DaemonSet");
  if (!owner) return false;
  const ds = await getOrNone(pathFor("apps/v1", "daemonsets", namespace, owner.name));
  return ds !== undefined && !ds.metadata.deletionTimestamp && ds.metadata.uid === owner.uid;
}
