// Deployment controller: keeps `replicas` pods of the current template, replaces pods of older templates, reports status.
import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, pathFor } from "../../kube/client.ts";
import { type SharedInformers, keyOf, splitKey } from "../../kube/informers.ts";
import { QueueController } from "../../kube/controller.ts";
import { isControlledBy, isPodReady, isPodTerminal } from "./pods.ts";
import { EventRecorder } from "./events.ts";

/**
 * Pods are owned by the Deployment directly. Real Kubernetes puts a ReplicaSet in between; the sandbox
 * skips it because nothing in Ambit depends on ReplicaSets, and the pod-template-hash label is kept.
 */
export function templateHash(template: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(template ?? {}))
    .digest("hex")
    .slice(0, 10);
}

/** Five characters from the alphabet Kubernetes uses for generated name suffixes. */
export const randomSuffix = (): string => {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  return [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join("");
};

/** How long a created pod counts before the informer shows it (Kubernetes uses 5 minutes; the sandbox is local). */
export const EXPECTATION_TTL_MS = 30_000;

export class DeploymentController extends QueueController {
  /**
   * Pods this controller created that its informer has not shown yet, per Deployment key (the ReplicaSet
   * controller's "expectations"): without them a reconcile that runs before the watch event creates the same
   * replicas again, and the surplus is started and then deleted.
   */
  readonly #expected = new Map<string, Map<string, number>>();
  /**
   * The replica count each template ("replica set", `<deployment>-<pod-template-hash>`) was last scaled to, per
   * `<deployment key>/<hash>`: what the ReplicaSet's spec.replicas would hold, for ScalingReplicaSet events.
   */
  readonly #scaledTo = new Map<string, number>();
  /** The Deployment controller's events (ScalingReplicaSet) and the ReplicaSet controller's (SuccessfulCreate...). */
  readonly #deploymentEvents: EventRecorder;
  readonly #replicaSetEvents: EventRecorder;

  constructor(client: KubeClient, informers: SharedInformers, log: Logger) {
    super(client, informers, log, "deployment-controller", "deployment");
    this.#deploymentEvents = new EventRecorder(client, { component: "deployment-controller" }, this.log);
    this.#replicaSetEvents = new EventRecorder(client, { component: "replicaset-controller" }, this.log);
    informers.on("deployments", (event, d) => {
      if (event !== "delete") return this.queue.add(keyOf(d));
      this.#expected.delete(keyOf(d));
      for (const k of this.#scaledTo.keys()) if (k.startsWith(`${keyOf(d)}/`)) this.#scaledTo.delete(k);
    });
    informers.on("pods", (_event, pod) => {
      const owner = (pod.metadata.ownerReferences ?? []).find((r) => r.kind === "Deployment" && r.controller);
      if (!owner || !pod.metadata.namespace) return;
      const key = `${pod.metadata.namespace}/${owner.name}`;
      this.#expected.get(key)?.delete(pod.metadata.name);
      this.queue.add(key);
    });
  }

  /**
   * Created pods still on their way to the cache (the pod handler forgets each one as its first event arrives,
   * when the cache shows it too); an expectation lapses after a while, as in Kubernetes.
   */
  #pending(key: string): number {
    const expected = this.#expected.get(key);
    if (!expected) return 0;
    const now = Date.now();
    for (const [name, at] of expected) if (now - at > EXPECTATION_TTL_MS) expected.delete(name);
    return expected.size;
  }

  protected async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const deployment = this.informers.get("deployments", name, namespace);
    if (!deployment || deployment.metadata.deletionTimestamp || !namespace) return;
    const hash = templateHash(deployment.spec?.template);
    const owned = this.informers
      .list("pods", namespace)
      .filter((p) => isControlledBy(p, deployment.metadata.uid) && !p.metadata.deletionTimestamp && !isPodTerminal(p));
    const current = owned.filter((p) => p.metadata.labels?.["pod-template-hash"] === hash);
    const old = owned.filter((p) => p.metadata.labels?.["pod-template-hash"] !== hash);
    const desired = Number(deployment.spec?.replicas ?? 1);

    const have = current.length + this.#pending(key);
    // A template seen for the first time with pods already running (a restarted controller) is taken as scaled.
    this.#scaleEvent(deployment, hash, this.#scaledTo.get(`${key}/${hash}`) ?? (have === 0 ? 0 : desired), desired);
    for (let i = have; i < desired; i++) await this.#createPod(deployment, hash, key);
    const surplus = current
      .slice()
      .sort((a, b) => String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)))
      .slice(0, Math.max(0, current.length - desired));
    for (const pod of surplus) await this.#deletePod(deployment, pod);
    // Old pods go once the new template has enough ready pods, so a template change never drops to zero.
    const readyCurrent = current.filter(isPodReady).length;
    if (readyCurrent >= desired || desired === 0) {
      const oldHashes = new Set(old.map((p) => p.metadata.labels?.["pod-template-hash"] ?? ""));
      for (const h of oldHashes) {
        const pods = old.filter((p) => (p.metadata.labels?.["pod-template-hash"] ?? "") === h);
        this.#scaleEvent(deployment, h, this.#scaledTo.get(`${key}/${h}`) ?? pods.length, 0);
        for (const pod of pods) await this.#deletePod(deployment, pod);
      }
    }

    const ready = owned.filter(isPodReady).length;
    const status = {
      observedGeneration: deployment.metadata.generation,
      replicas: owned.length,
      updatedReplicas: current.length,
      readyReplicas: ready,
      availableReplicas: ready,
      unavailableReplicas: Math.max(0, desired - ready),
      conditions: [
        {
          type: "Available",
          status: ready >= desired ? "True" : "False",
          reason: ready >= desired ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
          message: ready >= desired ? "Deployment has minimum availability." : "Deployment does not have minimum availability.",
        },
      ],
    };
    if (JSON.stringify(pickStatus(deployment.status)) !== JSON.stringify(pickStatus(status))) {
      const now = new Date().toISOString();
      status.conditions = status.conditions.map((c) => ({ ...c, lastUpdateTime: now, lastTransitionTime: now }));
      await this.client.mergePatch(pathFor("apps/v1", "deployments", namespace, name, "status"), { status });
    }
  }

  async #createPod(deployment: KubeObject, hash: string, key: string): Promise<void> {
    const template = deployment.spec?.template ?? {};
    const namespace = deployment.metadata.namespace as string;
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${deployment.metadata.name}-${hash}-${randomSuffix()}`,
        namespace,
        labels: { ...(template.metadata?.labels ?? {}), "pod-template-hash": hash },
        annotations: { ...(template.metadata?.annotations ?? {}) },
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            name: deployment.metadata.name,
            uid: deployment.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: template.spec ?? {},
    };
    const expected = this.#expected.get(key) ?? new Map<string, number>();
    this.#expected.set(key, expected);
    expected.set(pod.metadata.name, Date.now());
    try {
      await this.client.create(pathFor("v1", "pods", namespace), pod);
    } catch (err) {
      expected.delete(pod.metadata.name);
      this.#replicaSetEvents.event(deployment, "Warning", "FailedCreate", `Error creating: ${(err as Error).message}`);
      throw err;
    }
    this.log.info({ deployment: keyOf(deployment), pod: pod.metadata.name }, "pod created");
    // On the Deployment: the sandbox has no ReplicaSet objects for the ReplicaSet controller's events to be about.
    this.#replicaSetEvents.event(deployment, "Normal", "SuccessfulCreate", `Created pod: ${pod.metadata.name}`);
  }

  async #deletePod(deployment: KubeObject, pod: KubeObject): Promise<void> {
    await this.deleteIfPresent(pathFor("v1", "pods", pod.metadata.namespace, pod.metadata.name));
    this.#replicaSetEvents.event(deployment, "Normal", "SuccessfulDelete", `Deleted pod: ${pod.metadata.name}`);
  }

  /** ScalingReplicaSet, worded as the Deployment controller words it, when a template's replica count changes. */
  #scaleEvent(deployment: KubeObject, hash: string, from: number, to: number): void {
    this.#scaledTo.set(`${keyOf(deployment)}/${hash}`, to);
    if (from === to) return;
    const direction = to > from ? "up" : "down";
    this.#deploymentEvents.event(
      deployment,
      "Normal",
      "ScalingReplicaSet",
      `Scaled ${direction} replica set ${deployment.metadata.name}-${hash} from ${from} to ${to}`,
    );
  }
}

// Conditions carry timestamps; compare only what decides whether status changed.
const pickStatus = (s: Record<string, unknown> | undefined) => {
  if (!s) return {};
  const conditions = (s.conditions as Array<{ type: string; status: string }> | undefined)?.map((c) => `${c.type}=${c.status}`);
  return { ...s, conditions };
};
