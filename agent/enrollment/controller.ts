// Enrollment: keeps every pod of this node captured or released as its labels say, from CNI events and informers.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, isNotFound, pathFor } from "../../kube/client.ts";
import { SharedInformers, keyOf, podsOnNodePath, splitKey } from "../../kube/informers.ts";
import { WorkQueue } from "../../kube/queue.ts";
import type { Workload } from "../../contract/mesh.ts";
import { workloadFromPod } from "../../contract/pods.ts";
import { type CaptureIntent, REDIRECTION_ANNOTATION, captureIntent } from "../../contract/capture-intent.ts";

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
  /**
   * A captured pod as it really is: its netns gone, or its rules or listeners not all there (removed behind the
   * agent's back, a listener that failed). Without it, captured pods are not verified.
   */
  inspect?(pod: PodRef): Promise<"captured" | "broken" | "gone">;
}

/** What a CNI DEL did: released the pod, or kept it because the API shows it still running (or cannot say). */
export type CniDeleteOutcome = "released" | "not-tracked" | "other-incarnation" | "pod-still-runs" | "api-unavailable";

export interface EnrollmentOptions {
  client: KubeClient;
  nodeName: string;
  driver: CaptureDriver;
  /** Finds the netns of a pod the agent did not hear about from CNI (pods running before the agent started), by its IPs. */
  resolveNetns(pod: KubeObject, ips: string[]): Promise<string | undefined>;
  /** How often every captured pod's rules and listeners are verified (and repaired); also after every CNI event. */
  verifyIntervalMs?: number;
  /** Called with what a verification found, for metrics. */
  onVerified?(result: { repaired: number; gone: number }): void;
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
  #verifyTimer: NodeJS.Timeout | undefined;
  #verifySoon: NodeJS.Timeout | undefined;
  #verifying: Promise<unknown> = Promise.resolve();
  /** The last operation queued on each pod (see #locked). */
  readonly #locks = new Map<string, Promise<void>>();

  constructor(opts: EnrollmentOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: "enrollment" });
    this.#informers = new SharedInformers(
      opts.client,
      ["pods", "namespaces"],
      (resource, err) => this.#log.warn({ resource, err: String(err) }, "watch failed; restarting"),
      {
        pods: podsOnNodePath(opts.nodeName),
      },
    );
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
    this.#verifyTimer = setInterval(() => this.scheduleVerify(0), this.#opts.verifyIntervalMs ?? 30_000);
    this.#verifyTimer.unref();
  }

  /** True once every pod that existed at start-up has been captured or released as its labels say. */
  get synced(): boolean {
    return this.#started && this.#unsynced.size === 0;
  }

  async stop(): Promise<void> {
    clearInterval(this.#verifyTimer);
    clearTimeout(this.#verifySoon);
    await this.#verifying;
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
    this.#pods.set(key, {
      uid: req.uid,
      netnsPath: req.netnsPath,
      captured: false,
      reason: "",
      ips: req.ips,
      serviceAccount: "default",
      ...(req.containerId ? { containerId: req.containerId } : {}),
    });
    try {
      return await this.#apply(key, pod, namespace);
    } catch (err) {
      // A failed ADD's network is torn down by the runtime, and its retry may get another address: the pod's
      // watch events must not capture it with this attempt's address and netns (they did, once the CA was back,
      // and the pod's connections left from an address it no longer had).
      const tracked = this.#pods.get(key);
      if (tracked?.uid === req.uid && !tracked.captured) {
        tracked.ips = [];
        delete tracked.netnsPath;
      }
      throw err;
    }
  }

  /**
   * CNI CHECK, read-only: the pod is in the state its labels ask for. `verifyCaptured` inspects the pod's netns
   * (rules present); a captured pod whose rules went missing is reported, not silently repaired.
   */
  async podCheck(
    req: { namespace: string; name: string },
    verifyCaptured: (netnsPath: string) => Promise<boolean>,
  ): Promise<{ ok: true; captured: boolean } | { ok: false; code: string; message: string }> {
    const key = `${req.namespace}/${req.name}`;
    const pod = await this.#opts.client.get(pathFor("v1", "pods", req.namespace, req.name));
    const namespace = this.#informers.get("namespaces", req.namespace) ?? (await this.#opts.client.get(pathFor("v1", "namespaces", undefined, req.namespace)));
    const intent = captureIntent(namespace, pod);
    const tracked = this.#pods.get(key);
    if (!intent.capture) return { ok: true, captured: false };
    if (!tracked?.captured || !tracked.netnsPath)
      return { ok: false, code: "AMBIT_E_CNI_CHECK", message: `pod ${key} should be captured (${intent.reason}) but this agent has not captured it` };
    if (!(await verifyCaptured(tracked.netnsPath)))
      return { ok: false, code: "AMBIT_E_CNI_CHECK", message: `pod ${key} is captured but its capture rules are missing or partial in ${tracked.netnsPath}` };
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

  /**
   * CNI DEL. Released only when it is for the incarnation this agent tracks (uid, container) and the API confirms
   * the pod is gone, being deleted or finished: a DEL for a pod that still runs (a misfiring runtime, a stale
   * sandbox, anything that can reach the socket) would otherwise leave it uncaptured, its traffic in plaintext and
   * STRICT bypassed. When the API cannot say, nothing is released; the informer's view releases it later.
   */
  async cniDeleted(req: { namespace: string; name: string; uid: string; containerId: string }): Promise<CniDeleteOutcome> {
    const key = `${req.namespace}/${req.name}`;
    const tracked = this.#pods.get(key);
    if (!tracked) return "not-tracked";
    if ((req.uid && req.uid !== tracked.uid) || (req.containerId && tracked.containerId && req.containerId !== tracked.containerId)) {
      this.#log.info({ pod: key, uid: req.uid, containerId: req.containerId }, "CNI DEL for another incarnation of the pod ignored");
      return "other-incarnation";
    }
    let live: KubeObject | undefined;
    try {
      live = await this.#opts.client.get(pathFor("v1", "pods", req.namespace, req.name));
    } catch (err) {
      if (!isNotFound(err)) {
        this.#log.warn({ pod: key, err: String(err) }, "CNI DEL: the API cannot confirm the pod is gone; keeping it captured");
        return "api-unavailable";
      }
    }
    const phase = live?.status?.phase as string | undefined;
    if (live && live.metadata.uid === tracked.uid && !live.metadata.deletionTimestamp && phase !== "Succeeded" && phase !== "Failed") {
      this.#log.warn({ pod: key }, "CNI DEL for a pod the API shows running: not released");
      return "pod-still-runs";
    }
    await this.podDeleted({ namespace: req.namespace, name: req.name });
    return "released";
  }

  /**
   * Verifies every captured pod (soon, coalesced): a pod whose netns is gone is forgotten, one whose rules or
   * listeners are missing is captured again. Runs periodically and after every CNI event.
   */
  scheduleVerify(delayMs = 1_000): void {
    if (this.#verifySoon || !this.#started) return;
    this.#verifySoon = setTimeout(() => {
      this.#verifySoon = undefined;
      this.#verifying = this.verifyCaptured().catch((err: unknown) => this.#log.warn({ err: String(err) }, "verifying captured pods failed"));
    }, delayMs);
    this.#verifySoon.unref();
  }

  async verifyCaptured(): Promise<{ repaired: string[]; gone: string[] }> {
    const repaired: string[] = [];
    const gone: string[] = [];
    const inspect = this.#opts.driver.inspect?.bind(this.#opts.driver);
    if (!inspect) return { repaired, gone };
    for (const key of [...this.#pods.keys()]) {
      // Under the pod's lock, as reconciliation: a pod released while it was being inspected must not be captured
      // again by its own repair.
      await this.#locked(key, async () => {
        const t = this.#pods.get(key);
        if (!t?.captured || !t.netnsPath) return;
        const { namespace, name } = splitKey(key);
        const ref: PodRef = { uid: t.uid, namespace: namespace ?? "", name, netnsPath: t.netnsPath, ips: t.ips, serviceAccount: t.serviceAccount };
        const state = await inspect(ref);
        if (this.#pods.get(key) !== t || !t.captured || t.netnsPath !== ref.netnsPath) return;
        if (state === "gone") {
          await this.#opts.driver.release(ref);
          t.captured = false;
          delete t.netnsPath;
          gone.push(key);
          this.#queue.add(key);
        } else if (state === "broken") {
          await this.#opts.driver.capture(ref);
          repaired.push(key);
        }
      });
    }
    if (repaired.length) this.#log.warn({ repaired }, "capture of pods repaired: rules or listeners had gone missing");
    if (gone.length) this.#log.info({ gone }, "captured pods whose network namespace is gone were forgotten");
    this.#opts.onVerified?.({ repaired: repaired.length, gone: gone.length });
    return { repaired, gone };
  }

  /** A pod going away (informer, CNI GC, a confirmed CNI DEL): release whatever was set up for it. */
  async podDeleted(req: { namespace: string; name: string }): Promise<void> {
    const key = `${req.namespace}/${req.name}`;
    const tracked = this.#pods.get(key);
    if (tracked?.captured && tracked.netnsPath)
      await this.#opts.driver.release({
        uid: tracked.uid,
        namespace: req.namespace,
        name: req.name,
        netnsPath: tracked.netnsPath,
        ips: tracked.ips,
        serviceAccount: tracked.serviceAccount,
      });
    this.#pods.delete(key);
  }

  /** Every pod of the node with its state, for the admin API and tests. */
  snapshot(): PodEnrollment[] {
    return [...this.#pods.entries()].map(([key, t]) => {
      const { namespace, name } = splitKey(key);
      return {
        namespace: namespace ?? "",
        name,
        uid: t.uid,
        captured: t.captured,
        reason: t.reason,
        ips: t.ips,
        ...(t.netnsPath ? { netnsPath: t.netnsPath } : {}),
      };
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
    await this.#locked(key, () => this.#reconcileOnce(key));
    this.#unsynced.delete(key);
  }

  /** Runs `fn` after every earlier operation on the same pod: reconciliation and verification never interleave. */
  #locked(key: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.#locks.set(key, settled);
    void settled.then(() => {
      if (this.#locks.get(key) === settled) this.#locks.delete(key);
    });
    return next;
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
    // At CNI ADD the pod's status has no address yet (the kubelet reports it after the network is set up): the
    // addresses CNI gave are kept until the status names its own. A pod captured with none could not be told apart
    // from others as a source, and every HBONE connection it opened failed (no netns known for its address).
    const statusIps = (pod.status?.podIPs ?? []).map((p: { ip: string }) => p.ip);
    if (statusIps.length === 0 && pod.status?.podIP) statusIps.push(pod.status.podIP as string);
    if (statusIps.length > 0) tracked.ips = statusIps;
    tracked.reason = intent.reason;
    tracked.serviceAccount = pod.spec?.serviceAccountName ?? "default";
    if (intent.capture !== tracked.captured) {
      tracked.netnsPath ??= await this.#opts.resolveNetns(pod, tracked.ips);
      if (!tracked.netnsPath) {
        // Not networked yet (or gone): CNI ADD or a later pod update brings us back here.
        tracked.reason = `${intent.reason}; waiting for the pod's network namespace`;
        return intent;
      }
      const ref: PodRef = {
        uid: tracked.uid,
        namespace: pod.metadata.namespace ?? "",
        name: pod.metadata.name,
        netnsPath: tracked.netnsPath,
        ips: tracked.ips,
        serviceAccount: tracked.serviceAccount,
      };
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
      await this.#opts.client.mergePatch(pathFor("v1", "pods", pod.metadata.namespace, pod.metadata.name), {
        metadata: { annotations: { [REDIRECTION_ANNOTATION]: value } },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
