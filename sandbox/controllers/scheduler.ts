// Scheduler: binds each unscheduled pod to a ready node matching its nodeSelector, spreading replicas, then by load.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, pathFor, isNotFound } from "../../kube/client.ts";
import { type SharedInformers, keyOf, splitKey } from "../../kube/informers.ts";
import { QueueController } from "../../kube/controller.ts";
import { isNodeReady, isPodTerminal } from "./pods.ts";
import { EventRecorder } from "./events.ts";

export class Scheduler extends QueueController {
  /** Binds not yet visible in the informer cache, so bursts of pods still spread (pod uid -> node). */
  readonly #assumed = new Map<string, string>();
  readonly #events: EventRecorder;

  constructor(client: KubeClient, informers: SharedInformers, log: Logger) {
    super(client, informers, log, "scheduler", "pod");
    this.#events = new EventRecorder(client, { component: "default-scheduler" }, this.log);
    informers.on("pods", (event, pod) => {
      if (pod.metadata.uid && (event === "delete" || pod.spec?.nodeName)) this.#assumed.delete(pod.metadata.uid);
      if (event !== "delete" && !pod.spec?.nodeName && !pod.metadata.deletionTimestamp) this.queue.add(keyOf(pod));
    });
    // A node becoming ready may unblock pods that found no node.
    informers.on("nodes", () => {
      for (const pod of informers.list("pods")) if (!pod.spec?.nodeName) this.queue.add(keyOf(pod));
    });
  }

  protected async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.informers.get("pods", name, namespace);
    if (!pod || pod.spec?.nodeName || pod.metadata.deletionTimestamp) return;
    const node = this.#pickNode(pod);
    if (!node) {
      this.log.info({ pod: key }, "no ready node matches the pod's nodeSelector; waiting");
      this.#events.event(pod, "Warning", "FailedScheduling", this.#unschedulable(pod));
      return;
    }
    // Assumed before the bind is sent, as kube-scheduler does: pods are reconciled concurrently, and the next
    // pick must count this one even while the patch is in flight.
    const uid = pod.metadata.uid;
    if (uid) this.#assumed.set(uid, node);
    try {
      await this.client.mergePatch(pathFor("v1", "pods", namespace, name), { spec: { nodeName: node } });
    } catch (err) {
      if (uid) this.#assumed.delete(uid);
      if (isNotFound(err)) return;
      throw err;
    }
    this.log.info({ pod: key, node }, "pod scheduled");
    this.#events.event(pod, "Normal", "Scheduled", `Successfully assigned ${namespace}/${name} to ${node}`);
  }

  /** Why no node fits, counted per reason as kube-scheduler words its FailedScheduling events. */
  #unschedulable(pod: KubeObject): string {
    const nodes = this.informers.list("nodes");
    if (nodes.length === 0) return "no nodes available to schedule pods";
    const selector: Record<string, string> = pod.spec?.nodeSelector ?? {};
    const reasons = new Map<string, number>();
    for (const n of nodes) {
      const reason = !isNodeReady(n)
        ? "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        : n.spec?.unschedulable
          ? "node(s) were unschedulable"
          : "node(s) didn't match Pod's node affinity/selector";
      if (reason.endsWith("selector") && Object.entries(selector).every(([k, v]) => n.metadata.labels?.[k] === v)) continue;
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    const counted = [...reasons].map(([reason, count]) => `${count} ${reason}`).sort();
    const total = nodes.length;
    return `0/${total} nodes are available: ${counted.join(", ")}. preemption: 0/${total} nodes are available: ${total} Preemption is not helpful for scheduling.`;
  }

  #pickNode(pod: KubeObject): string | undefined {
    const selector: Record<string, string> = pod.spec?.nodeSelector ?? {};
    const candidates = this.informers
      .list("nodes")
      .filter((n) => isNodeReady(n) && !n.spec?.unschedulable)
      .filter((n) => Object.entries(selector).every(([k, v]) => n.metadata.labels?.[k] === v))
      .map((n) => n.metadata.name);
    if (candidates.length === 0) return undefined;
    // Like kube-scheduler's default topology spread: fewest pods of the same owner (replicas of one ReplicaSet
    // land on different nodes, so a Service always has endpoints on more than one node), then fewest pods.
    const owner = ownerOf(pod);
    const load = new Map(candidates.map((n) => [n, { siblings: 0, pods: 0 }]));
    const count = (node: string | undefined, sibling: boolean) => {
      const entry = node ? load.get(node) : undefined;
      if (!entry) return;
      entry.pods++;
      if (sibling) entry.siblings++;
    };
    for (const p of this.informers.list("pods")) {
      if (isPodTerminal(p)) continue;
      const node = (p.spec?.nodeName as string | undefined) ?? this.#assumed.get(p.metadata.uid ?? "");
      // Terminating replicas do not count toward the spread (as in kube-scheduler's topology spread): their
      // replacements must not avoid the node they are leaving.
      count(node, owner !== undefined && !p.metadata.deletionTimestamp && ownerOf(p) === owner);
    }
    return [...load.entries()].sort((a, b) => a[1].siblings - b[1].siblings || a[1].pods - b[1].pods || a[0].localeCompare(b[0]))[0]?.[0];
  }
}

/** The controller that owns a pod (its ReplicaSet, DaemonSet...), as `kind/name`. */
function ownerOf(pod: KubeObject): string | undefined {
  const ref = pod.metadata.ownerReferences?.find((o) => o.controller) ?? pod.metadata.ownerReferences?.[0];
  return ref ? `${ref.kind}/${ref.name}` : undefined;
}
