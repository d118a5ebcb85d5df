// Scheduler: binds each unscheduled pod to the ready node with the fewest pods that matches its nodeSelector.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, pathFor, isNotFound } from "../../kube/client.ts";
import { type SharedInformers, keyOf, splitKey } from "../../kube/informers.ts";
import { QueueController } from "../../kube/controller.ts";
import { isNodeReady, isPodTerminal } from "./pods.ts";

export class Scheduler extends QueueController {
  /** Binds not yet visible in the informer cache, so bursts of pods still spread (pod uid -> node). */
  readonly #assumed = new Map<string, string>();

  constructor(client: KubeClient, informers: SharedInformers, log: Logger) {
    super(client, informers, log, "scheduler", "pod");
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
      return;
    }
    try {
      await this.client.mergePatch(pathFor("v1", "pods", namespace, name), { spec: { nodeName: node } });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (pod.metadata.uid) this.#assumed.set(pod.metadata.uid, node);
    this.log.info({ pod: key, node }, "pod scheduled");
  }

  #pickNode(pod: KubeObject): string | undefined {
    const selector: Record<string, string> = pod.spec?.nodeSelector ?? {};
    const candidates = this.informers
      .list("nodes")
      .filter((n) => isNodeReady(n) && !n.spec?.unschedulable)
      .filter((n) => Object.entries(selector).every(([k, v]) => n.metadata.labels?.[k] === v))
      .map((n) => n.metadata.name);
    if (candidates.length === 0) return undefined;
    const load = new Map(candidates.map((n) => [n, 0]));
    for (const p of this.informers.list("pods")) {
      const node = p.spec?.nodeName as string | undefined;
      if (node && load.has(node) && !isPodTerminal(p)) load.set(node, (load.get(node) ?? 0) + 1);
    }
    for (const node of this.#assumed.values()) if (load.has(node)) load.set(node, (load.get(node) ?? 0) + 1);
    return [...load.entries()].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0]?.[0];
  }

}
