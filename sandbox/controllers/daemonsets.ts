// DaemonSet controller: one pod of the current template on every ready node the DaemonSet selects.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, pathFor } from "../../kube/client.ts";
import { type SharedInformers, keyOf, splitKey } from "../../kube/informers.ts";
import { QueueController } from "../../kube/controller.ts";
import { EXPECTATION_TTL_MS, randomSuffix, templateHash } from "./deployments.ts";
import { isControlledBy, isNodeReady, isPodReady, isPodTerminal } from "./pods.ts";
import { EventRecorder } from "./events.ts";

export class DaemonSetController extends QueueController {
  readonly #events: EventRecorder;
  /**
   * Pods created and not yet in the cache, per DaemonSet and node, as Kubernetes' controller expectations: a pass
   * that runs before the created pod's first event would otherwise see the node empty and create a second pod.
   */
  readonly #expected = new Map<string, Map<string, { pod: string; at: number }>>();

  constructor(client: KubeClient, informers: SharedInformers, log: Logger) {
    super(client, informers, log, "daemonset-controller", "daemonset");
    this.#events = new EventRecorder(client, { component: "daemonset-controller" }, this.log);
    informers.on("daemonsets", (event, ds) => {
      if (event !== "delete") this.queue.add(keyOf(ds));
      else this.#expected.delete(keyOf(ds));
    });
    informers.on("pods", (_event, pod) => {
      const owner = (pod.metadata.ownerReferences ?? []).find((r) => r.kind === "DaemonSet" && r.controller);
      if (!owner || !pod.metadata.namespace) return;
      const key = `${pod.metadata.namespace}/${owner.name}`;
      const expected = this.#expected.get(key);
      for (const [node, e] of expected ?? []) if (e.pod === pod.metadata.name) expected!.delete(node);
      this.queue.add(key);
    });
    informers.on("nodes", () => {
      for (const ds of informers.list("daemonsets")) this.queue.add(keyOf(ds));
    });
  }

  protected async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const ds = this.informers.get("daemonsets", name, namespace);
    if (!ds || ds.metadata.deletionTimestamp || !namespace) return;
    const hash = templateHash(ds.spec?.template);
    const selector: Record<string, string> = ds.spec?.template?.spec?.nodeSelector ?? {};
    const nodes = this.informers
      .list("nodes")
      .filter((n) => isNodeReady(n) && Object.entries(selector).every(([k, v]) => n.metadata.labels?.[k] === v))
      .map((n) => n.metadata.name);
    const owned = this.informers
      .list("pods", namespace)
      .filter((p) => isControlledBy(p, ds.metadata.uid) && !p.metadata.deletionTimestamp && !isPodTerminal(p));
    const maxSurge = maxSurgeOf(ds, nodes.length);
    const onNodeOf = (node: string) => owned.filter((p) => p.spec?.nodeName === node);
    const expected = this.#expected.get(key);
    const now = Date.now();
    for (const [node, e] of expected ?? []) if (now - e.at > EXPECTATION_TTL_MS) expected!.delete(node);
    /** A pod was created for the node and has not reached the cache yet: it counts as there. */
    const awaited = (node: string) => expected?.has(node) === true;
    const isCurrent = (p: KubeObject) => p.metadata.labels?.["controller-revision-hash"] === hash;
    let surging = nodes.filter((n) => onNodeOf(n).some(isCurrent) && onNodeOf(n).some((p) => !isCurrent(p))).length;
    for (const node of nodes) {
      const onNode = onNodeOf(node);
      const current = onNode.filter(isCurrent);
      const old = onNode.filter((p) => !isCurrent(p));
      if (maxSurge > 0 && old.length > 0) {
        // Surge: the new pod starts next to the old one, which goes only once the new one is Ready (a node agent
        // takes its listeners over without a gap this way).
        if (current.length === 0 && !awaited(node) && surging < maxSurge) {
          await this.#createPod(ds, key, node, hash);
          surging++;
        } else if (current.some(isPodReady)) {
          for (const p of old) await this.#deletePod(ds, p);
        }
        continue;
      }
      // Replace one node's pod at a time: delete the old one, the next pass creates the new one.
      for (const p of old) await this.#deletePod(ds, p);
      // More than one current pod on a node (made by an earlier controller, or by hand): keep the oldest, as Kubernetes does.
      const byAge = current.slice().sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)));
      for (const extra of byAge.slice(1)) await this.#deletePod(ds, extra);
      if (onNode.length === 0 && !awaited(node)) await this.#createPod(ds, key, node, hash);
    }
    for (const stray of owned.filter((p) => !nodes.includes(p.spec?.nodeName))) await this.#deletePod(ds, stray);

    // Counted per node, as Kubernetes does: during a surge a node runs two pods but counts once.
    const scheduledNodes = nodes.filter((n) => onNodeOf(n).length > 0);
    const ready = nodes.filter((n) => onNodeOf(n).some(isPodReady)).length;
    const status = {
      observedGeneration: ds.metadata.generation,
      desiredNumberScheduled: nodes.length,
      currentNumberScheduled: scheduledNodes.length,
      updatedNumberScheduled: nodes.filter((n) => onNodeOf(n).some(isCurrent)).length,
      numberReady: ready,
      numberAvailable: ready,
      numberUnavailable: Math.max(0, nodes.length - ready),
      numberMisscheduled: 0,
    };
    if (JSON.stringify({ ...ds.status, ...status }) !== JSON.stringify(ds.status ?? {})) {
      await this.client.mergePatch(pathFor("apps/v1", "daemonsets", namespace, name, "status"), { status });
    }
  }

  async #createPod(ds: KubeObject, key: string, node: string, hash: string): Promise<void> {
    const template = ds.spec?.template ?? {};
    const namespace = ds.metadata.namespace as string;
    const name = `${ds.metadata.name}-${randomSuffix()}`;
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace,
        labels: { ...(template.metadata?.labels ?? {}), "controller-revision-hash": hash },
        annotations: { ...(template.metadata?.annotations ?? {}) },
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "DaemonSet", name: ds.metadata.name, uid: ds.metadata.uid, controller: true, blockOwnerDeletion: true },
        ],
      },
      // Bound directly, as the real DaemonSet controller does through node affinity.
      spec: { ...(template.spec ?? {}), nodeName: node },
    };
    const expected = this.#expected.get(key) ?? new Map<string, { pod: string; at: number }>();
    this.#expected.set(key, expected);
    expected.set(node, { pod: name, at: Date.now() });
    try {
      await this.client.create(pathFor("v1", "pods", namespace), pod);
    } catch (err) {
      expected.delete(node);
      this.#events.event(ds, "Warning", "FailedCreate", `Error creating: ${(err as Error).message}`);
      throw err;
    }
    this.log.info({ daemonset: keyOf(ds), node }, "pod created");
    this.#events.event(ds, "Normal", "SuccessfulCreate", `Created pod: ${name}`);
  }

  async #deletePod(ds: KubeObject, pod: KubeObject): Promise<void> {
    await this.deleteIfPresent(pathFor("v1", "pods", pod.metadata.namespace, pod.metadata.name));
    this.#events.event(ds, "Normal", "SuccessfulDelete", `Deleted pod: ${pod.metadata.name}`);
  }
}

/** spec.updateStrategy.rollingUpdate.maxSurge as a node count (an integer or a percentage rounded up); 0 when unset. */
export function maxSurgeOf(ds: KubeObject, nodeCount: number): number {
  const strategy = ds.spec?.updateStrategy as { type?: string; rollingUpdate?: { maxSurge?: number | string } } | undefined;
  if ((strategy?.type ?? "RollingUpdate") !== "RollingUpdate") return 0;
  const raw = strategy?.rollingUpdate?.maxSurge;
  if (typeof raw === "number") return Math.max(0, Math.floor(raw));
  const percent = typeof raw === "string" ? /^(\d+)%$/.exec(raw) : null;
  if (percent) return Math.ceil((Number(percent[1]) / 100) * nodeCount);
  return 0;
}
