// The leader's waypoint work: for each ambit-waypoint Gateway, its ServiceAccount, Deployment and Service exist as desired, and its status says whether it can take traffic.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { GATEWAY_API_VERSION, GATEWAY_NAME_LABEL, WAYPOINT_CONTROLLER_NAME, WAYPOINT_GATEWAY_CLASS } from "../../contract/waypoint.ts";
import { type KubeClient, type KubeObject, isNotFound, pathFor } from "../../kube/client.ts";
import { stableStringify } from "../stream/index.ts";
import { isWaypointGateway } from "./binding.ts";
import { MANAGED_BY, MANAGED_BY_LABEL, type WaypointDeploymentSettings, waypointObjects } from "./deployment.ts";
import { type GatewayCondition, carryTransitions, waypointGatewayProblems, waypointGatewayStatus } from "./status.ts";

/** On what the controller made: a hash of what it asked for, so a change of settings (or a hand edit of the hash) is put right. */
export const DESIRED_HASH_ANNOTATION = "ambit.dev/desired-hash";

const PLURALS: Record<string, string> = { ServiceAccount: "serviceaccounts", ConfigMap: "configmaps", Deployment: "deployments", Service: "services" };

export interface WaypointSources {
  gateways(): readonly KubeObject[];
  gatewayClasses(): readonly KubeObject[];
  pods(): readonly KubeObject[];
  services(): readonly KubeObject[];
}

const hashOf = (obj: KubeObject): string =>
  createHash("sha256")
    .update(JSON.stringify({ labels: obj.metadata.labels, owners: obj.metadata.ownerReferences, spec: obj.spec, data: obj.data }))
    .digest("hex")
    .slice(0, 16);

const isReady = (pod: KubeObject): boolean =>
  !pod.metadata.deletionTimestamp &&
  ((pod.status?.conditions ?? []) as Array<{ type: string; status: string }>).some((c) => c.type === "Ready" && c.status === "True");

/**
 * Status as compared with what the server holds: key order aside (kube-apiserver returns a custom resource's fields
 * sorted, as Go's JSON does with maps) and without lastTransitionTime, which carryTransitions takes from it.
 */
const withoutTimes = (status: unknown): string =>
  stableStringify(JSON.parse(JSON.stringify(status, (k, v: unknown) => (k === "lastTransitionTime" ? undefined : v)) ?? "null"));

export class WaypointReconciler {
  readonly #client: KubeClient;
  readonly #sources: WaypointSources;
  readonly #settings: WaypointDeploymentSettings;
  readonly #log: Logger;
  /**
   * Gateways whose objects were last made to match, by uid, with the Gateway's generation and the roots' hash then: pod and Service
   * events (many) only recompute status; the objects are checked again when the Gateway changes or on `resync`.
   */
  readonly #ensured = new Map<string, string>();

  readonly #trustRoots: () => string;

  /** `trustRoots`: the CA's current roots (PEM), copied to each waypoint's namespace; a change updates every waypoint's copy. */
  constructor(client: KubeClient, sources: WaypointSources, settings: WaypointDeploymentSettings, trustRoots: () => string, log: Logger) {
    this.#client = client;
    this.#trustRoots = trustRoots;
    this.#sources = sources;
    this.#settings = settings;
    this.#log = log.child({ part: "waypoints" });
  }

  /**
   * One pass over every waypoint Gateway and the GatewayClass; errors are logged per Gateway and counted, never
   * thrown (a status write that lost a race with another writer, 409, is the common one: the caller passes again).
   * `resync` also checks the objects of Gateways that did not change (someone may have deleted or edited them).
   */
  async reconcile(opts: { resync?: boolean } = {}): Promise<{ failures: number }> {
    let failures = 0;
    if (opts.resync) this.#ensured.clear();
    const live = new Set(this.#sources.gateways().map((g) => g.metadata.uid));
    for (const uid of this.#ensured.keys()) if (!live.has(uid)) this.#ensured.delete(uid);
    try {
      await this.#acceptClass();
    } catch (err) {
      failures++;
      this.#log.warn({ gatewayClass: WAYPOINT_GATEWAY_CLASS, err: String(err) }, "could not create or accept the waypoint GatewayClass; retrying");
    }
    for (const gw of this.#sources.gateways()) {
      if (!isWaypointGateway(gw) || gw.metadata.deletionTimestamp) continue;
      try {
        await this.#reconcileGateway(gw);
      } catch (err) {
        failures++;
        this.#log.warn({ gateway: `${gw.metadata.namespace}/${gw.metadata.name}`, err: String(err) }, "could not reconcile waypoint; retrying");
      }
    }
    return { failures };
  }

  /** Creates the ambit-waypoint GatewayClass when it is missing (as istiod does for its classes) and marks it Accepted. */
  async #acceptClass(): Promise<void> {
    const cls = this.#sources.gatewayClasses().find((c) => c.metadata.name === WAYPOINT_GATEWAY_CLASS);
    if (!cls) {
      await this.#client.request("POST", pathFor(GATEWAY_API_VERSION, "gatewayclasses"), {
        apiVersion: GATEWAY_API_VERSION,
        kind: "GatewayClass",
        metadata: { name: WAYPOINT_GATEWAY_CLASS, labels: { [MANAGED_BY_LABEL]: MANAGED_BY } },
        spec: { controllerName: WAYPOINT_CONTROLLER_NAME, description: "Ambit waypoints: L7 routing, resilience and policy for the mesh" },
      });
      this.#log.info({ gatewayClass: WAYPOINT_GATEWAY_CLASS }, "created the waypoint GatewayClass");
      return;
    }
    // A class of that name for another controller is not ours to mark.
    if (cls.spec?.controllerName !== WAYPOINT_CONTROLLER_NAME) return;
    const previous = cls.status?.conditions as GatewayCondition[] | undefined;
    const conditions = carryTransitions(
      [
        {
          type: "Accepted",
          status: "True",
          reason: "Accepted",
          message: "handled by the Ambit controller",
          observedGeneration: cls.metadata.generation as number,
        },
      ],
      previous,
      new Date().toISOString(),
    );
    if (withoutTimes(previous) === withoutTimes(conditions)) return;
    await this.#writeStatus(pathFor(GATEWAY_API_VERSION, "gatewayclasses", undefined, WAYPOINT_GATEWAY_CLASS), cls, { conditions });
  }

  async #reconcileGateway(gw: KubeObject): Promise<void> {
    const ns = gw.metadata.namespace!;
    const name = gw.metadata.name;
    const accepted = waypointGatewayProblems(gw).length === 0;
    let blocked: string | undefined;
    const uid = gw.metadata.uid ?? `${ns}/${name}`;
    const roots = this.#trustRoots();
    const ensuredAs = `${String(gw.metadata.generation)}/${createHash("sha256").update(roots).digest("hex").slice(0, 16)}`;
    if (accepted && this.#ensured.get(uid) !== ensuredAs) {
      for (const desired of waypointObjects(gw, this.#settings, roots)) {
        blocked ??= await this.#ensure(desired);
      }
      // Blocked stays unremembered: the next pass looks again, so removing the foreign object is noticed.
      if (!blocked) this.#ensured.set(uid, ensuredAs);
    }
    const svc = this.#sources.services().find((s) => s.metadata.namespace === ns && s.metadata.name === name);
    const address = svc?.spec?.clusterIP && svc.spec.clusterIP !== "None" ? (svc.spec.clusterIP as string) : undefined;
    const readyPods = this.#sources.pods().filter((p) => p.metadata.namespace === ns && p.metadata.labels?.[GATEWAY_NAME_LABEL] === name && isReady(p)).length;
    const status = waypointGatewayStatus(gw, { address, readyPods });
    if (blocked) {
      const programmed = (status.conditions as GatewayCondition[]).find((c) => c.type === "Programmed")!;
      Object.assign(programmed, { status: "False", reason: "Invalid", message: blocked });
    }
    const now = new Date().toISOString();
    status.conditions = carryTransitions(status.conditions as GatewayCondition[], gw.status?.conditions as GatewayCondition[] | undefined, now);
    for (const [i, l] of (status.listeners as Array<{ conditions: GatewayCondition[] }>).entries()) {
      const before = (gw.status?.listeners as Array<{ conditions?: GatewayCondition[] }> | undefined)?.[i]?.conditions;
      l.conditions = carryTransitions(l.conditions, before, now);
    }
    if (withoutTimes(gw.status ?? {}) === withoutTimes(status)) return;
    await this.#writeStatus(pathFor(GATEWAY_API_VERSION, "gateways", ns, name), gw, status);
  }

  /** Creates or updates one object; returns why it cannot (an object of that name the controller did not make). */
  async #ensure(desired: KubeObject): Promise<string | undefined> {
    const ns = desired.metadata.namespace!;
    const path = pathFor(desired.apiVersion, PLURALS[desired.kind]!, ns, desired.metadata.name);
    const hash = hashOf(desired);
    const body: KubeObject = {
      ...desired,
      metadata: { ...desired.metadata, annotations: { ...desired.metadata.annotations, [DESIRED_HASH_ANNOTATION]: hash } },
    };
    let existing: KubeObject | undefined;
    try {
      existing = await this.#client.request<KubeObject>("GET", path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!existing) {
      await this.#client.request("POST", pathFor(desired.apiVersion, PLURALS[desired.kind]!, ns), body);
      this.#log.info({ kind: desired.kind, object: `${ns}/${desired.metadata.name}` }, "created for waypoint");
      return undefined;
    }
    if (existing.metadata.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY)
      return `a ${desired.kind} ${ns}/${desired.metadata.name} exists that the Ambit controller did not create; delete or rename it`;
    if (existing.metadata.annotations?.[DESIRED_HASH_ANNOTATION] === hash) return undefined;
    // A merge patch replaces the lists it names (containers, ports) and keeps what the API server filled in (clusterIP).
    await this.#client.request("PATCH", path, { metadata: body.metadata, spec: body.spec, data: body.data }, "application/merge-patch+json");
    this.#log.info({ kind: desired.kind, object: `${ns}/${desired.metadata.name}` }, "updated for waypoint");
    return undefined;
  }

  async #writeStatus(path: string, obj: KubeObject, status: Record<string, unknown>): Promise<void> {
    await this.#client.request("PUT", `${path}/status`, { ...obj, status });
  }
}
