// Sidecar injection as `istioctl kube-inject` does it: adds the init and proxy containers to a workload's pod template, on a copy.
import { isIP } from "node:net";
import { DATAPLANE_MODE_LABEL, DATAPLANE_MODE_NONE } from "../contract/capture-intent.ts";
import { INJECT_ERRORS } from "../contract/error-codes.ts";
import { AmbitError, type CodeOf } from "../contract/errors.ts";
import { SIDECAR_CONTAINER, SIDECAR_INIT_CONTAINER, SIDECAR_PORTS, SIDECAR_STATUS_ANNOTATION, SIDECAR_UID } from "../contract/sidecar.ts";
import {
  type CaptureExclusions,
  DEFAULT_CONTAINER_ANNOTATION,
  EXCLUDE_INBOUND_PORTS_ANNOTATION,
  EXCLUDE_OUTBOUND_CIDRS_ANNOTATION,
  INJECT_ANNOTATION,
  PROMETHEUS_ANNOTATIONS,
  SIDECAR_STATUS,
  SIDECAR_VOLUMES,
  type SidecarInjectionSettings,
  initContainer,
  proxyContainer,
  sidecarVolumes,
} from "./template.ts";

export type InjectErrorCode = CodeOf<typeof INJECT_ERRORS>;

export class InjectError extends AmbitError<InjectErrorCode> {
  constructor(code: InjectErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "InjectError";
  }
}

/** What injection did to one workload (one line of `ambit inject`'s report). */
export interface InjectionReport {
  kind: string;
  name: string;
  namespace?: string;
  outcome: "injected" | "already-injected" | "skipped";
  /** Why a workload was skipped. */
  reason?: string;
}

export interface InjectionResult<T> {
  /** A deep copy of the input, with the sidecar added wherever it was injected. */
  object: T;
  /** One entry per workload met (objects of other kinds have none), in the input's order. */
  report: InjectionReport[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Where each kind keeps its pod template, and the API groups that define it so (core is ""). */
const WORKLOADS: Record<string, { groups: readonly string[]; template: readonly string[] }> = {
  Pod: { groups: [""], template: [] },
  ReplicationController: { groups: [""], template: ["spec", "template"] },
  Deployment: { groups: ["apps", "extensions"], template: ["spec", "template"] },
  StatefulSet: { groups: ["apps"], template: ["spec", "template"] },
  DaemonSet: { groups: ["apps", "extensions"], template: ["spec", "template"] },
  ReplicaSet: { groups: ["apps", "extensions"], template: ["spec", "template"] },
  Job: { groups: ["batch"], template: ["spec", "template"] },
  CronJob: { groups: ["batch"], template: ["spec", "jobTemplate", "spec", "template"] },
};

/** The ports the sidecar takes inside the pod; an application container may not declare them. */
const RESERVED_PORTS = new Set<number>(Object.values(SIDECAR_PORTS));

/**
 * Injects the sidecar into every workload of `obj` (a Pod, a workload with a pod template, or a `List` of them);
 * objects of other kinds come back as they were. Never changes `obj`. Throws an InjectError when a template cannot
 * be injected (a name or port the sidecar needs is taken, a malformed annotation or object): all or nothing.
 */
export function injectSidecar<T>(obj: T, settings: SidecarInjectionSettings): InjectionResult<T> {
  if (!isObject(obj)) throw new InjectError(INJECT_ERRORS.code.input, `not a Kubernetes object: ${describeValue(obj)}`);
  const copy = structuredClone(obj);
  const report: InjectionReport[] = [];
  injectInto(copy, settings, report);
  return { object: copy as T, report };
}

/** What the sandbox's API server calls on pod creation: the same rules for one bare Pod (its kind is not checked). */
export function injectPod<T>(pod: T, settings: SidecarInjectionSettings): { object: T; report: InjectionReport } {
  if (!isObject(pod)) throw new InjectError(INJECT_ERRORS.code.input, `not a Pod: ${describeValue(pod)}`);
  const copy = structuredClone(pod) as Json;
  return { object: copy as T, report: injectTemplate(copy, settings, identify(copy, "Pod"), "") };
}

function injectInto(o: Json, settings: SidecarInjectionSettings, report: InjectionReport[]): void {
  if (o.kind === "List") {
    if (!Array.isArray(o.items)) throw new InjectError(INJECT_ERRORS.code.input, "a List without an items list");
    o.items.forEach((item: unknown, i) => {
      if (!isObject(item)) throw new InjectError(INJECT_ERRORS.code.input, `List item ${i} is not a Kubernetes object: ${describeValue(item)}`);
      injectInto(item, settings, report);
    });
    return;
  }
  const workload = typeof o.kind === "string" ? WORKLOADS[o.kind] : undefined;
  if (!workload || !workload.groups.includes(groupOf(o.apiVersion))) return;
  const id = identify(o, o.kind as string);
  let template: unknown = o;
  for (const key of workload.template) template = isObject(template) ? template[key] : undefined;
  if (!isObject(template)) throw new InjectError(INJECT_ERRORS.code.input, `${ref(id)} has no pod template at ${workload.template.join(".")}`);
  report.push(injectTemplate(template, settings, id, workload.template.map((k) => `${k}.`).join("")));
}

/** The API group of an apiVersion ("apps/v1" -> "apps", "v1" -> ""); an object without one is taken as it comes. */
function groupOf(apiVersion: unknown): string {
  if (typeof apiVersion !== "string") return "";
  return apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "";
}

type Identity = Pick<InjectionReport, "kind" | "name" | "namespace">;

function identify(o: Json, kind: string): Identity {
  const meta = isObject(o.metadata) ? o.metadata : {};
  const name = typeof meta.name === "string" ? meta.name : typeof meta.generateName === "string" ? meta.generateName : "";
  return { kind, name, ...(typeof meta.namespace === "string" ? { namespace: meta.namespace } : {}) };
}

/** `deployment/web`, as kubectl names objects. */
const ref = (id: Identity) => `${id.kind.toLowerCase()}/${id.name || "<unnamed>"}`;

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "string" ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : typeof v;
}

/** A map field (labels, annotations) at `path`: absent or null is empty, anything else but a map is an error. */
function mapField(parent: Json, key: string, path: string, id: Identity): Json {
  const v = parent[key];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new InjectError(INJECT_ERRORS.code.input, `${ref(id)}: ${path}${key} is ${describeValue(v)}, not a map`);
  return v;
}

/** A list field (containers, volumes) at `path`: absent or null is empty; its entries must be objects. */
function listField(parent: Json, key: string, path: string, id: Identity): Json[] {
  const v = parent[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every(isObject)) throw new InjectError(INJECT_ERRORS.code.input, `${ref(id)}: ${path}${key} is not a list of objects`);
  return v;
}

/**
 * Adds the sidecar to one pod template (or Pod), in place, unless the rules say to leave it. `at` is where the
 * template is in its object ("spec.template.", "" for a Pod), for messages.
 */
function injectTemplate(template: Json, s: SidecarInjectionSettings, id: Identity, at: string): InjectionReport {
  const metadata = mapField(template, "metadata", at, id);
  const annotations = mapField(metadata, "annotations", `${at}metadata.`, id);
  const labels = mapField(metadata, "labels", `${at}metadata.`, id);
  if (!isObject(template.spec)) throw new InjectError(INJECT_ERRORS.code.input, `${ref(id)}: ${at}spec is missing`);
  const spec = template.spec;
  const containers = listField(spec, "containers", `${at}spec.`, id);
  if (containers.length === 0) throw new InjectError(INJECT_ERRORS.code.input, `${ref(id)}: ${at}spec.containers is empty`);
  const initContainers = listField(spec, "initContainers", `${at}spec.`, id);
  const volumes = listField(spec, "volumes", `${at}spec.`, id);

  if (annotations[SIDECAR_STATUS_ANNOTATION] !== undefined || containers.some((c) => c.name === SIDECAR_CONTAINER))
    return { ...id, outcome: "already-injected" };
  if (String(annotations[INJECT_ANNOTATION]).toLowerCase() === "false") return { ...id, outcome: "skipped", reason: `${INJECT_ANNOTATION}=false` };
  // The pod shares the node's network namespace: capture rules there would capture the node's traffic.
  if (spec.hostNetwork === true) return { ...id, outcome: "skipped", reason: "hostNetwork" };

  const taken = [
    ...[...initContainers, ...containers].filter((c) => c.name === SIDECAR_CONTAINER || c.name === SIDECAR_INIT_CONTAINER).map((c) => `container ${c.name}`),
    ...volumes.filter((v) => v.name === SIDECAR_VOLUMES.caToken || v.name === SIDECAR_VOLUMES.caRoot).map((v) => `volume ${v.name}`),
  ];
  if (taken.length)
    throw new InjectError(
      INJECT_ERRORS.code.conflict,
      `${ref(id)}: ${taken.join(", ")} already in ${at}spec without ${SIDECAR_STATUS_ANNOTATION}: injection adds ${taken.length > 1 ? "these names" : "that name"}`,
    );
  const ports = [...initContainers, ...containers].flatMap((c) =>
    listField(c, "ports", `${at}spec container ${String(c.name)}: `, id)
      .filter((p) => RESERVED_PORTS.has(Number(p.containerPort)))
      .map((p) => `${String(c.name)} port ${String(p.containerPort)}`),
  );
  if (ports.length)
    throw new InjectError(
      INJECT_ERRORS.code.portConflict,
      `${ref(id)}: ${ports.join(", ")}: the sidecar uses ${[...RESERVED_PORTS].sort((a, b) => a - b).join(", ")} inside the pod`,
    );
  const exclusions = captureExclusions(annotations, id);

  // Capture is in place before any other container, init containers included, runs: none starts outside the mesh.
  // A new initContainers goes just before containers, where a reader of the manifest expects it.
  if (spec.initContainers === undefined) reorder(spec, "initContainers", "containers");
  spec.initContainers = [initContainer(s, exclusions), ...initContainers];
  // First, so the kubelet starts the proxy before the application's containers.
  spec.containers = [proxyContainer(s), ...containers];
  spec.volumes = [...volumes, ...sidecarVolumes()];
  // The kubelet makes projected tokens readable by the pod's fsGroup only: the proxy (uid 1337) reads its CA token so,
  // as Istio's injection sets it. A pod that chose an fsGroup keeps it (the proxy then needs that group).
  const podSecurity = (spec.securityContext ?? {}) as Record<string, unknown>;
  if (podSecurity.fsGroup === undefined) spec.securityContext = { ...podSecurity, fsGroup: SIDECAR_UID };
  annotations[SIDECAR_STATUS_ANNOTATION] = JSON.stringify(SIDECAR_STATUS);
  // A pod that says how it is scraped keeps its own annotations, all three.
  if (!Object.keys(PROMETHEUS_ANNOTATIONS).some((k) => annotations[k] !== undefined)) Object.assign(annotations, PROMETHEUS_ANNOTATIONS);
  if (annotations[DEFAULT_CONTAINER_ANNOTATION] === undefined && typeof containers[0]!.name === "string")
    annotations[DEFAULT_CONTAINER_ANNOTATION] = containers[0]!.name;
  // The sidecar carries the pod's traffic: a node agent must not capture it as well.
  labels[DATAPLANE_MODE_LABEL] = DATAPLANE_MODE_NONE;
  metadata.annotations = annotations;
  metadata.labels = labels;
  template.metadata = metadata;
  return { ...id, outcome: "injected" };
}

/** Puts a (new) key `key` of `o` just before `before`, keeping the order of the others. */
function reorder(o: Json, key: string, before: string): void {
  const entries = Object.entries(o);
  for (const [k] of entries) delete o[k];
  for (const [k, v] of entries) {
    if (k === before) o[key] = undefined;
    o[k] = v;
  }
}

/** The exclusion annotations, checked and normalised (trimmed, duplicates dropped) for the init container. */
function captureExclusions(annotations: Json, id: Identity): CaptureExclusions {
  const items = (key: string) =>
    annotations[key] === undefined || annotations[key] === null
      ? []
      : [
          ...new Set(
            String(annotations[key])
              .split(",")
              .map((x) => x.trim())
              .filter(Boolean),
          ),
        ];
  const bad = (key: string, item: string, what: string) =>
    new InjectError(INJECT_ERRORS.code.input, `${ref(id)}: annotation ${key}=${JSON.stringify(String(annotations[key]))}: "${item}" is not ${what}`);
  const ports = items(EXCLUDE_INBOUND_PORTS_ANNOTATION);
  for (const p of ports) {
    if (!/^[0-9]+$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw bad(EXCLUDE_INBOUND_PORTS_ANNOTATION, p, "a port (1-65535)");
  }
  const cidrs = items(EXCLUDE_OUTBOUND_CIDRS_ANNOTATION);
  for (const c of cidrs) {
    const [address = "", prefix, extra] = c.split("/");
    const family = isIP(address);
    const max = family === 6 ? 128 : 32;
    if (!family || prefix === undefined || extra !== undefined || !/^[0-9]+$/.test(prefix) || Number(prefix) > max)
      throw bad(EXCLUDE_OUTBOUND_CIDRS_ANNOTATION, c, "a CIDR (e.g. 10.0.0.0/8 or fd00::/8)");
  }
  return {
    ...(ports.length ? { inboundPorts: ports.map(Number).join(",") } : {}),
    ...(cidrs.length ? { outboundCidrs: cidrs.join(",") } : {}),
  };
}
