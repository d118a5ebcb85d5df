// Enrollment: keeps every pod of this node captured or released as its labels say, from CNI events and informers.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, isNotFound, pathFor } from "../../kube/client.ts";
import { SharedInformers, keyOf, podsOnNodePath, splitKey } from "../../kube/informers.ts";
import { WorkQueue } from "../../kube/queue.ts";
import type { Workload } from "../../contract/mesh.ts";
import { workloadFromPod } from "../../contract/pods.ts";
import { type CaptureIntent, REDIRECTION_ANNOTATION, captureIntent } from "./intent.ts";

/** A pod as the capture machinery needs it. */
export interface PodRef {
  uid: string;
  namespace: string;
  name: string;
  /** Path of the pod's network namespace, e.g. /run/netns/<name> or /proc/<pid>/ns/net. */
  netnsPath: string;
  ips: string[];
  /** The pod's service account: its identity, whose certificate must be held before it is captured. */
  serviceAccount: string;
}

/** What enrollment drives: install or remove capture (iptables rules, listeners) for one pod. Both idempotent. */
export interface CaptureDriver {
  capture(pod: PodRef): Promise<void>;
  release(pod: PodRef): Promise<void>;
}

export interface EnrollmentOptions {
  client: KubeClient;
  nodeName: string;
  driver: CaptureDriver;
  /** Finds the netns of a pod the agent did not hear about from CNI (pods running before the agent started), by its IPs. */
  resolveNetns(pod: KubeObject, ips: string[]): Promise<string | undefined>;
  log: Logger;
}

export interface PodEnrollment {
  namespace: string;
  name: string;
  uid: string;
  captured: boolean;
  reason: string;
  ips: string[];
  netnsPath?: string;
}

interface Tracked {
  uid: string;
  /** Set when the pod came through CNI ADD: what CNI GC's valid-attachments name. */
  containerId?: string;
  netnsPath?: string;
  captured: boolean;
  reason: string;
  ips: string[];
  serviceAccount: string;
}

export class EnrollmentController {
  readonly #opts: EnrollmentOptions;
  readonly #informers: SharedInformers;
  readonly #queue: WorkQueue;
  /** Pods of this node by namespace/name. */
  readonly #pods = new Map<string, Tracked>();
  readonly #log: Logger;
  /** Pods listed at start-up not yet reconciled: the agent is not ready (and must not replace its predecessor) before. */
  readonly #unsynced = new Set<string>();
  #started = false;

  constructor(opts: EnrollmentOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: "enrollment" });
    this.#informers = new SharedInformers(opts.client, ["pods", "namespaces"], (resource, err) => this.#log.warn({ resource, err: String(err) }, "watch failed; restarting"), {
      pods: podsOnNodePath(opts.nodeName),
    });
    this.#queue = new WorkQueue((key) => this.#reconcile(key), {
      onError: (key, err) => this.#log.warn({ pod: key, err: String(err) }, "enrollment failed; will retry"),
    });
    this.#informers.on("pods", (_event, pod) => this.#queue.add(keyOf(pod)));
    this.#informers.on("namespaces", (_event, ns) => {
      for (const pod of this.#informers.list("pods", ns.metadata.name)) this.#queue.add(keyOf(pod));
    });
  }

  /** Lists pods and namespaces, then reconciles every pod of the node (start-up reconciliation). */
  async start(): Promise<void> {
    await this.#informers.start();
    for (const pod of this.#informers.list("pods")) this.#unsynced.add(keyOf(pod));
    this.#started = true;
    for (const key of [...this.#unsynced]) this.#queue.add(key);
  }

  /** True once every pod that existed at start-up has been captured or released as its labels say. */
  get synced(): boolean {
    return this.#started && this.#unsynced.size === 0;
  }

  async stop(): Promise<void> {
    this.#queue.stop();
    await this.#informers.stop();
  }

  /**
   * A pod being created (CNI ADD): decide and capture before the pod's containers start. Reads the pod
   * from the API rather than the cache: CNI runs right after the pod was bound, before the watch event.
   */
  async podAdded(req: { namespace: string; name: string; uid: string; netnsPath: string; ips: string[]; containerId?: string }): Promise<CaptureIntent> {
    const key = `${req.namespace}/${req.name}`;
    const pod = await this.#opts.client.get(pathFor("v1", "pods", req.namespace, req.name));
    const namespace = this.#informers.get("namespaces", req.namespace) ?? (await this.#opts.client.get(pathFor("v1", "namespaces", undefined, req.namespace)));
    this.#pods.set(key, { uid: req.uid, netnsPath: req.netnsPath, captured: false, reason: "", ips: req.ips, serviceAccount: "default", ...(req.containerId ? { containerId: req.containerId } : {}) });
    return this.#apply(key, pod, namespace);
  }

  /**
   * CNI CHECK, read-only: the pod is in the state its labels ask for. `verifyCaptured` inspects the pod's netns
   * (rules present); a captured pod whose rules went missing is reported, not silently repaired.
   */
  async podCheck(req: { namespace: string; name: string }, verifyCaptured: (netnsPath: string) => Promise<boolean>): Promise<{ ok: true; captured: boolean } | { ok: false; code: string; message: string }> {
    const key = `${req.namespace}/${req.name}`;
    const pod = await this.#opts.client.get(pathFor("v1", "pods", req.namespace, req.name));
    const namespace = this.#informers.get("namespaces", req.namespace) ?? (await this.#opts.client.get(pathFor("v1", "namespaces", undefined, req.namespace)));
    const intent = captureIntent(namespace, pod);
    const tracked = this.#pods.get(key);
    if (!intent.capture) return { ok: true, captured: false };
    if (!tracked?.captured || !tracked.netnsPath) return { ok: false, code: "AMBIT_E_CNI_CHECK", message: `pod ${key} should be captured (${intent.reason}) but this agent has not captured it` };
    if (!(await verifyCaptured(tracked.netnsPath))) return { ok: false, code: "AMBIT_E_CNI_CHECK", message: `pod ${key} is captured but its capture rules are missing or partial in ${tracked.netnsPath}` };
    return { ok: true, captured: true };
  }

  /**
   * CNI GC: pods set up through CNI ADD whose attachment the runtime no longer has are released, unless the API
   * still shows the same pod (uid) on this node: a missed or racing GC must never uncapture a live pod.
   */
  async garbageCollect(validAttachments: Array<{ containerID: string }>): Promise<string[]> {
    const valid = new Set(validAttachments.map((a) => a.containerID));
    const released: string[] = [];
    for (const [key, tracked] of [...this.#pods.entries()]) {
      if (!tracked.containerId || valid.has(tracked.containerId)) continue;
      const { namespace, name } = splitKey(key);
      const live = await this.#opts.client.get(pathFor("v1", "pods", namespace, name)).catch(() => undefined);
      if (live && live.metadata.uid === tracked.uid && !live.metadata.deletionTimestamp) continue;
      await this.podDeleted({ namespace: namespace ?? "", name });
      released.push(key);
    }
    if (released.length > 0) this.#log.info({ released }, "CNI GC released stale pods");
    return released;
  }

  /** A pod going away (CNI DEL): release whatever was set up for it. */
  async podDeleted(req: { namespace: string; name: string }): Promise<void> {
    const key = `${req.namespace}/${req.name}`;
    const tracked = this.#pods.get(key);
    if (tracked?.captured && tracked.netnsPath) await this.#opts.driver.release({ uid: tracked.uid, namespace: req.namespace, name: req.name, netnsPath: tracked.netnsPath, ips: tracked.ips, serviceAccount: tracked.serviceAccount });
    this.#pods.delete(key);
  }

  /** Every pod of the node with its state, for the admin API and tests. */
  snapshot(): PodEnrollment[] {
    return [...this.#pods.entries()].map(([key, t]) => {
      const { namespace, name } = splitKey(key);
      return { namespace: namespace ?? "", name, uid: t.uid, captured: t.captured, reason: t.reason, ips: t.ips, ...(t.netnsPath ? { netnsPath: t.netnsPath } : {}) };
    });
  }

  /** The netns of this node's pod at `ip`, if the agent holds it. */
  netnsOf(ip: string): string | undefined {
    for (const t of this.#pods.values()) if (t.netnsPath && t.ips.includes(ip)) return t.netnsPath;
    return undefined;
  }

  /**
   * This node's pod at `ip` as a workload record, from the agent's own watch: what the destination side enforces
   * policy on when the controller's config does not name the pod yet (it started while the controller was down).
   */
  localWorkload(ip: string): Workload | undefined {
    for (const [key, t] of this.#pods) {
      if (!t.ips.includes(ip)) continue;
      const { namespace, name } = splitKey(key);
      const pod = this.#informers.get("pods", name, namespace);
      // The pod's status may not carry its address yet (CNI ADD comes first): the agent knows it from CNI.
      const workload = pod && pod.metadata.uid === t.uid ? workloadFromPod({ ...pod, status: { ...(pod.status ?? {}), podIP: ip } }) : undefined;
      return workload ? { ...workload, captured: t.captured } : undefined;
    }
    return undefined;
  }

  get capturedCount(): number {
    let n = 0;
    for (const t of this.#pods.values()) if (t.captured) n++;
    return n;
  }

  async #reconcile(key: string): Promise<void> {
    await this.#reconcileOnce(key);
    this.#unsynced.delete(key);
  }

  async #reconcileOnce(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.#informers.get("pods", name, namespace);
    const tracked = this.#pods.get(key);
    if (!pod || (tracked && pod.metadata.uid !== tracked.uid)) {
      if (tracked) await this.podDeleted({ namespace: namespace ?? "", name });
      if (!pod) return;
    }
    await this.#apply(key, pod, this.#informers.get("namespaces", namespace ?? ""));
  }

  async #apply(key: string, pod: KubeObject, namespace: KubeObject | undefined): Promise<CaptureIntent> {
    const intent = captureIntent(namespace, pod);
    let tracked = this.#pods.get(key);
    if (!tracked || tracked.uid !== pod.metadata.uid) {
      tracked = { uid: pod.metadata.uid as string, captured: false, reason: "", ips: [], serviceAccount: "default" };
      this.#pods.set(key, tracked);
    }
    tracked.ips = (pod.status?.podIPs ?? []).map((p: { ip: string }) => p.ip);
    if (tracked.ips.length === 0 && pod.status?.podIP) tracked.ips = [pod.status.podIP];
    tracked.reason = intent.reason;
    tracked.serviceAccount = pod.spec?.serviceAccountName ?? "default";
    if (intent.capture !== tracked.captured) {
      tracked.netnsPath ??= await this.#opts.resolveNetns(pod, tracked.ips);
      if (!tracked.netnsPath) {
        // Not networked yet (or gone): CNI ADD or a later pod update brings us back here.
        tracked.reason = `${intent.reason}; waiting for the pod's network namespace`;
        return intent;
      }
      const ref: PodRef = { uid: tracked.uid, namespace: pod.metadata.namespace ?? "", name: pod.metadata.name, netnsPath: tracked.netnsPath, ips: tracked.ips, serviceAccount: tracked.serviceAccount };
      if (intent.capture) await this.#opts.driver.capture(ref);
      else await this.#opts.driver.release(ref);
      tracked.captured = intent.capture;
      this.#log.info({ pod: key, captured: intent.capture, reason: intent.reason }, intent.capture ? "pod captured" : "pod released");
    }
    await this.#annotate(pod, tracked.captured);
    return intent;
  }

  async #annotate(pod: KubeObject, captured: boolean): Promise<void> {
    const value = captured ? "enabled" : "disabled";
    if (pod.metadata.annotations?.[REDIRECTION_ANNOTATION] === value) return;
    try {
      await this.#opts.client.mergePatch(pathFor("v1", "pods", pod.metadata.namespace, pod.metadata.name), { metadata: { annotations: { [REDIRECTION_ANNOTATION]: value } } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
