// Node authorization's question: does a live pod with this service account run on this node?
import { type KubeClient, type KubeObject, pathFor } from "../../kube/client.ts";

const runsAs = (node: string, serviceAccount: string) => (p: KubeObject) =>
  p.spec?.nodeName === node &&
  (p.spec?.serviceAccountName ?? "default") === serviceAccount &&
  !p.metadata.deletionTimestamp &&
  !["Succeeded", "Failed"].includes(p.status?.phase as string);

/**
 * The informer cache answers first; a pod created a moment ago may not be there yet, so the API is asked before
 * a refusal (a fresh pod's CNI ADD must not fail on cache lag).
 */
export function podOnNodeCheck(client: KubeClient, cachedPods: (namespace: string) => KubeObject[] = () => []) {
  return async (node: string, namespace: string, serviceAccount: string): Promise<boolean> => {
    const matches = runsAs(node, serviceAccount);
    if (cachedPods(namespace).some(matches)) return true;
    const live = await client.list(`${pathFor("v1", "pods", namespace)}?fieldSelector=${encodeURIComponent(`spec.nodeName=${node}`)}`);
    return live.some(matches);
  };
}
