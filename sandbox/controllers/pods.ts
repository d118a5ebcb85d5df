// Small predicates over Pod and Node objects shared by the sandbox controllers and kubelet.
import type { KubeObject } from "../../kube/client.ts";

export const isPodTerminal = (pod: KubeObject): boolean => pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";

export const isPodReady = (pod: KubeObject): boolean =>
  Array.isArray(pod.status?.conditions) && pod.status.conditions.some((c: { type: string; status: string }) => c.type === "Ready" && c.status === "True");

export const isNodeReady = (node: KubeObject): boolean =>
  Array.isArray(node.status?.conditions) && node.status.conditions.some((c: { type: string; status: string }) => c.type === "Ready" && c.status === "True");

export const isControlledBy = (obj: KubeObject, ownerUid: string | undefined): boolean =>
  ownerUid !== undefined && (obj.metadata.ownerReferences ?? []).some((r) => r.uid === ownerUid && r.controller);
