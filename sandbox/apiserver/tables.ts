// Server-side printing: the meta.k8s.io/v1 Table kubectl asks for, with the real API server's columns per kind.
import type { KubeObject } from "./types.ts";

export interface TableColumn {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export interface Table {
  kind: "Table";
  apiVersion: "meta.k8s.io/v1";
  metadata: { resourceVersion?: string; continue?: string };
  columnDefinitions: TableColumn[];
  rows: Array<{ cells: unknown[]; object?: unknown }>;
}

export type IncludeObject = "None" | "Metadata" | "Object";

/** A CRD's additionalPrinterColumns entry. */
export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

export interface TableOptions {
  includeObject: IncludeObject;
  resourceVersion?: string;
  printerColumns?: PrinterColumn[];
  now?: Date;
}

interface Printer {
  columns: TableColumn[];
  cells: (obj: KubeObject, now: Date) => unknown[];
}

// ---- durations ----

/** Kubernetes' duration.HumanDuration: precise when recent, coarser as the duration grows. */
function formatDuration(milliseconds: number): string {
  const seconds = Math.trunc(milliseconds / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.trunc(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.trunc(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

/** Age of a timestamp the way kubectl shows it ("5s", "3m12s", "2h30m", "45d"); "<unknown>" without one. */
export function humanDuration(fromIso: string | undefined, now: Date): string {
  const from = fromIso ? Date.parse(fromIso) : Number.NaN;
  return Number.isNaN(from) ? "<unknown>" : formatDuration(now.getTime() - from);
}

// ---- column definitions ----

const NAME_DESCRIPTION =
  "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of a name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION =
  "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

const column = (name: string, description: string, extra: Partial<TableColumn> = {}): TableColumn => ({
  name,
  type: "string",
  format: "",
  description,
  priority: 0,
  ...extra,
});
const wide = (name: string, description: string): TableColumn => column(name, description, { priority: 1 });
const NAME = column("Name", NAME_DESCRIPTION, { format: "name" });
const AGE = column("Age", AGE_DESCRIPTION);
const CONTAINERS = wide("Containers", "Names of each container in the template.");
const IMAGES = wide("Images", "Images referenced by each container in the template.");

// ---- helpers over loosely typed objects ----

interface ContainerState {
  waiting?: { reason?: string };
  running?: object;
  terminated?: { reason?: string; exitCode?: number; signal?: number; finishedAt?: string };
}
interface ContainerStatus {
  name?: string;
  ready?: boolean;
  started?: boolean;
  restartCount?: number;
  state?: ContainerState;
  lastState?: ContainerState;
}
interface Condition {
  type?: string;
  status?: string;
  reason?: string;
}
interface Container {
  name?: string;
  image?: string;
  restartPolicy?: string;
}

const list = <T>(value: unknown): T[] => (Array.isArray(value) ? (value as T[]) : []);
const textOf = (value: unknown): string => (typeof value === "string" ? value : "");
const countOf = (value: unknown): number => (typeof value === "number" && Number.isFinite(value) ? Math.trunc(value) : 0);
const orNone = (value: string) => (value === "" ? "<none>" : value);
const keyCount = (...maps: unknown[]) => new Set(maps.flatMap((map) => (map !== null && typeof map === "object" ? Object.keys(map) : []))).size;

/** labels.FormatLabels: sorted key=value pairs, "<none>" when empty. */
function formatLabels(labels: unknown): string {
  if (labels === null || typeof labels !== "object") return "<none>";
  const pairs = Object.entries(labels as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return pairs.length === 0 ? "<none>" : pairs.map(([key, value]) => `${key}=${String(value)}`).join(",");
}

/** metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key, set values sorted. */
function formatLabelSelector(selector: unknown): string {
  if (selector === null || typeof selector !== "object") return "";
  const { matchLabels, matchExpressions } = selector as { matchLabels?: Record<string, string>; matchExpressions?: unknown };
  const requirements: Array<[string, string]> = Object.entries(matchLabels ?? {}).map(([key, value]) => [key, `${key}=${value}`]);
  for (const expression of list<{ key?: string; operator?: string; values?: string[] }>(matchExpressions)) {
    const key = textOf(expression.key);
    const values = [...(expression.values ?? [])].sort().join(",");
    const rendered: Record<string, string> = { In: `${key} in (${values})`, NotIn: `${key} notin (${values})`, Exists: key, DoesNotExist: `!${key}` };
    const text = expression.operator === undefined ? undefined : rendered[expression.operator];
    if (text === undefined) return "<invalid>";
    requirements.push([key, text]);
  }
  return requirements
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, text]) => text)
    .join(",");
}

function containerCells(containers: Container[]): [string, string] {
  return [containers.map((c) => textOf(c.name)).join(","), containers.map((c) => textOf(c.image)).join(",")];
}

/** Three items, then "+ N more...", as the real printer abbreviates endpoint and port lists. */
function listWithMore(items: string[]): string {
  if (items.length > 3) return `${items.slice(0, 3).join(",")} + ${items.length - 3} more...`;
  return items.length === 0 ? "<unset>" : items.join(",");
}

// ---- per-kind printers ----

function podStatusAndReadiness(pod: KubeObject, now: Date): { ready: string; reason: string; restarts: string } {
  const spec = pod.spec ?? {};
  const status = pod.status ?? {};
  const containers = list<Container>(spec.containers);
  const initContainers = list<Container>(spec.initContainers);
  const isSidecar = (name: string | undefined) => initContainers.some((c) => c.name === name && c.restartPolicy === "Always");
  const conditions = list<Condition>(status.conditions);
  const total = containers.length + initContainers.filter((c) => c.restartPolicy === "Always").length;
  let readyCount = 0;
  let restarts = 0;
  let sidecarRestarts = 0;
  let lastRestart = 0;
  let lastSidecarRestart = 0;
  const finishedAt = (state: ContainerState | undefined) => Date.parse(textOf(state?.terminated?.finishedAt)) || 0;

  let reason = textOf(status.reason) || textOf(status.phase);
  if (conditions.some((c) => c.type === "PodScheduled" && c.reason === "SchedulingGated")) reason = "SchedulingGated";

  let initializing = false;
  const initStatuses = list<ContainerStatus>(status.initContainerStatuses);
  for (const [index, container] of initStatuses.entries()) {
    restarts += countOf(container.restartCount);
    lastRestart = Math.max(lastRestart, finishedAt(container.lastState));
    const sidecar = isSidecar(container.name);
    if (sidecar) {
      sidecarRestarts += countOf(container.restartCount);
      lastSidecarRestart = Math.max(lastSidecarRestart, finishedAt(container.lastState));
    }
    const terminated = container.state?.terminated;
    const waitingReason = textOf(container.state?.waiting?.reason);
    if (terminated && countOf(terminated.exitCode) === 0) continue;
    if (sidecar && container.started === true) {
      if (container.ready === true) readyCount++;
      continue;
    }
    if (terminated) {
      if (textOf(terminated.reason) !== "") reason = `Init:${terminated.reason}`;
      else if (countOf(terminated.signal) !== 0) reason = `Init:Signal:${countOf(terminated.signal)}`;
      else reason = `Init:ExitCode:${countOf(terminated.exitCode)}`;
    } else if (waitingReason !== "" && waitingReason !== "PodInitializing") {
      reason = `Init:${waitingReason}`;
    } else {
      reason = `Init:${index}/${initContainers.length}`;
    }
    initializing = true;
    break;
  }

  if (!initializing || conditions.some((c) => c.type === "Initialized" && c.status === "True")) {
    restarts = sidecarRestarts;
    lastRestart = lastSidecarRestart;
    let hasRunning = false;
    const statuses = list<ContainerStatus>(status.containerStatuses);
    for (const container of [...statuses].reverse()) {
      restarts += countOf(container.restartCount);
      lastRestart = Math.max(lastRestart, finishedAt(container.lastState));
      const terminated = container.state?.terminated;
      if (textOf(container.state?.waiting?.reason) !== "") reason = textOf(container.state?.waiting?.reason);
      else if (terminated && textOf(terminated.reason) !== "") reason = textOf(terminated.reason);
      else if (terminated) reason = countOf(terminated.signal) !== 0 ? `Signal:${countOf(terminated.signal)}` : `ExitCode:${countOf(terminated.exitCode)}`;
      else if (container.ready === true && container.state?.running !== undefined) {
        hasRunning = true;
        readyCount++;
      }
    }
    if (reason === "Completed" && hasRunning) reason = conditions.some((c) => c.type === "Ready" && c.status === "True") ? "Running" : "NotReady";
  }

  const phase = textOf(status.phase);
  if (pod.metadata.deletionTimestamp !== undefined && status.reason === "NodeLost") reason = "Unknown";
  else if (pod.metadata.deletionTimestamp !== undefined && phase !== "Succeeded" && phase !== "Failed") reason = "Terminating";

  const since = restarts !== 0 && lastRestart !== 0 ? ` (${humanDuration(new Date(lastRestart).toISOString(), now)} ago)` : "";
  return { ready: `${readyCount}/${total}`, reason, restarts: `${restarts}${since}` };
}

const POD: Printer = {
  columns: [
    NAME,
    column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "The aggregate status of the containers in this pod."),
    column("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "NodeName indicates in which node this pod is scheduled."),
    wide(
      "Nominated Node",
      "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
    ),
    wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
  ],
  cells: (pod, now) => {
    const { ready, reason, restarts } = podStatusAndReadiness(pod, now);
    const status = pod.status ?? {};
    const podIP = textOf(list<{ ip?: string }>(status.podIPs)[0]?.ip) || textOf(status.podIP);
    const gates = list<{ conditionType?: string }>(pod.spec?.readinessGates);
    const conditions = list<Condition>(status.conditions);
    const trueGates = gates.filter((gate) => conditions.find((c) => c.type === gate.conditionType)?.status === "True").length;
    return [
      pod.metadata.name,
      ready,
      reason,
      restarts,
      humanDuration(pod.metadata.creationTimestamp, now),
      orNone(podIP),
      orNone(textOf(pod.spec?.nodeName)),
      orNone(textOf(status.nominatedNodeName)),
      gates.length === 0 ? "<none>" : `${trueGates}/${gates.length}`,
    ];
  },
};

function nodeRoles(labels: Record<string, string> | undefined): string {
  const roles = new Set<string>();
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (key.startsWith("node-role.kubernetes.io/") && key.length > "node-role.kubernetes.io/".length) roles.add(key.slice("node-role.kubernetes.io/".length));
    else if (key === "kubernetes.io/role" && value !== "") roles.add(value);
  }
  return roles.size === 0 ? "<none>" : [...roles].sort().join(",");
}

const NODE: Printer = {
  columns: [
    NAME,
    column("Status", "The status of the node"),
    column("Roles", "The roles of the node"),
    AGE,
    column("Version", "Kubelet Version reported by the node."),
    wide("Internal-IP", "List of addresses reachable to the node."),
    wide("External-IP", "List of addresses reachable to the node."),
    wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
  ],
  cells: (node, now) => {
    const status = node.status ?? {};
    const ready = list<Condition>(status.conditions).find((c) => c.type === "Ready");
    const states = [ready === undefined ? "Unknown" : ready.status === "True" ? "Ready" : "NotReady"];
    if (node.spec?.unschedulable === true) states.push("SchedulingDisabled");
    const addresses = list<{ type?: string; address?: string }>(status.addresses);
    const address = (type: string) => orNone(textOf(addresses.find((a) => a.type === type)?.address));
    const info = status.nodeInfo ?? {};
    const orUnknown = (value: unknown) => textOf(value) || "<unknown>";
    return [
      node.metadata.name,
      states.join(","),
      nodeRoles(node.metadata.labels),
      humanDuration(node.metadata.creationTimestamp, now),
      textOf(info.kubeletVersion),
      address("InternalIP"),
      address("ExternalIP"),
      orUnknown(info.osImage),
      orUnknown(info.kernelVersion),
      orUnknown(info.containerRuntimeVersion),
    ];
  },
};

const NAMESPACE: Printer = {
  columns: [NAME, column("Status", "The status of the namespace"), AGE],
  cells: (ns, now) => [ns.metadata.name, textOf(ns.status?.phase), humanDuration(ns.metadata.creationTimestamp, now)],
};

function serviceExternalIP(spec: Record<string, unknown>, status: Record<string, unknown>): string {
  const externalIPs = list<string>(spec.externalIPs);
  switch (textOf(spec.type) || "ClusterIP") {
    case "ClusterIP":
    case "NodePort":
      return externalIPs.length > 0 ? externalIPs.join(",") : "<none>";
    case "LoadBalancer": {
      const ingress = list<{ ip?: string; hostname?: string }>((status.loadBalancer as { ingress?: unknown } | undefined)?.ingress);
      const balancers = [...new Set(ingress.map((i) => textOf(i.ip) || textOf(i.hostname)).filter((a) => a !== ""))].sort();
      const all = [...balancers, ...externalIPs];
      return all.length > 0 ? all.join(",") : "<pending>";
    }
    case "ExternalName":
      return textOf(spec.externalName);
    default:
      return "<unknown>";
  }
}

const SERVICE: Printer = {
  columns: [
    NAME,
    column("Type", "type determines how the Service is exposed. Defaults to ClusterIP."),
    column("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    column("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    column("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
  ],
  cells: (svc, now) => {
    const spec = svc.spec ?? {};
    const clusterIP = textOf(list<string>(spec.clusterIPs)[0]) || textOf(spec.clusterIP);
    const ports = list<{ port?: number; nodePort?: number; protocol?: string }>(spec.ports).map((p) => {
      const protocol = textOf(p.protocol) || "TCP";
      return countOf(p.nodePort) > 0 ? `${countOf(p.port)}:${countOf(p.nodePort)}/${protocol}` : `${countOf(p.port)}/${protocol}`;
    });
    return [
      svc.metadata.name,
      textOf(spec.type) || "ClusterIP",
      orNone(clusterIP),
      serviceExternalIP(spec, svc.status ?? {}),
      ports.length === 0 ? "<none>" : ports.join(","),
      humanDuration(svc.metadata.creationTimestamp, now),
      formatLabels(spec.selector),
    ];
  },
};

const DEPLOYMENT: Printer = {
  columns: [
    NAME,
    column("Ready", "Number of the pod with ready state"),
    column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    column("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
  ],
  cells: (deployment, now) => {
    const spec = deployment.spec ?? {};
    const status = deployment.status ?? {};
    const desired = typeof spec.replicas === "number" ? countOf(spec.replicas) : 1;
    const [names, images] = containerCells(list<Container>(spec.template?.spec?.containers));
    return [
      deployment.metadata.name,
      `${countOf(status.readyReplicas)}/${desired}`,
      countOf(status.updatedReplicas),
      countOf(status.availableReplicas),
      humanDuration(deployment.metadata.creationTimestamp, now),
      names,
      images,
      formatLabelSelector(spec.selector),
    ];
  },
};

const ENDPOINT_SLICE: Printer = {
  columns: [
    NAME,
    column("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
    column("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    column("Endpoints", "endpoints is a list of unique endpoints in this slice."),
    AGE,
  ],
  cells: (slice, now) => {
    const ports = list<{ port?: number; name?: string }>(slice.ports).map((p) => (typeof p.port === "number" ? String(p.port) : textOf(p.name) || "*"));
    const addresses = list<{ addresses?: string[] }>(slice.endpoints).flatMap((e) => list<string>(e.addresses));
    return [slice.metadata.name, textOf(slice.addressType), listWithMore(ports), listWithMore(addresses), humanDuration(slice.metadata.creationTimestamp, now)];
  },
};

const SERVICE_ACCOUNT: Printer = {
  columns: [
    NAME,
    column("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
  ],
  cells: (sa, now) => [sa.metadata.name, list(sa.secrets).length, humanDuration(sa.metadata.creationTimestamp, now)],
};

const SECRET: Printer = {
  columns: [NAME, column("Type", "Used to facilitate programmatic handling of secret data."), column("Data", "Data contains the secret data."), AGE],
  cells: (secret, now) => [
    secret.metadata.name,
    textOf(secret.type) || "Opaque",
    keyCount(secret.data, secret.stringData),
    humanDuration(secret.metadata.creationTimestamp, now),
  ],
};

const CONFIG_MAP: Printer = {
  columns: [NAME, column("Data", "Data contains the configuration data."), AGE],
  cells: (cm, now) => [cm.metadata.name, keyCount(cm.data) + keyCount(cm.binaryData), humanDuration(cm.metadata.creationTimestamp, now)],
};

const LEASE: Printer = {
  columns: [NAME, column("Holder", "holderIdentity contains the identity of the holder of a current lease."), AGE],
  cells: (lease, now) => [lease.metadata.name, textOf(lease.spec?.holderIdentity), humanDuration(lease.metadata.creationTimestamp, now)],
};

/** kubectl's event printer: when last and first seen, what about (kind/name), from whom, how often. */
const EVENT: Printer = {
  columns: [
    column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    column("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    column("Object", "The object that this event is about."),
    wide(
      "Subobject",
      'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: "spec.containers{name}" (where "name" refers to the name of the container that triggered the event) or if no container name is specified "spec.containers[2]" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.',
    ),
    wide("Source", "The component reporting this event. Should be a short machine understandable string."),
    column("Message", "A human-readable description of the status of this operation."),
    wide("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "The number of times this event has occurred."),
    column("Name", NAME_DESCRIPTION, { priority: 1, format: "name" }),
  ],
  cells: (event, now) => {
    const involved = (event.involvedObject ?? {}) as { kind?: string; name?: string; fieldPath?: string };
    const source = (event.source ?? {}) as { component?: string; host?: string };
    const series = event.series as { count?: number; lastObservedTime?: string } | undefined;
    const first = textOf(event.firstTimestamp) ? humanDuration(textOf(event.firstTimestamp), now) : humanDuration(textOf(event.eventTime) || undefined, now);
    let last = textOf(event.lastTimestamp) ? humanDuration(textOf(event.lastTimestamp), now) : first;
    let count = typeof event.count === "number" ? event.count : 0;
    if (series) {
      last = humanDuration(series.lastObservedTime, now);
      count = series.count ?? 0;
    } else if (count === 0) {
      // Singleton events of the events.k8s.io API carry no count.
      count = 1;
    }
    const kind = (involved.kind ?? "").toLowerCase();
    const component = textOf(source.component) || textOf(event.reportingComponent);
    const instance = textOf(source.host) || textOf(event.reportingInstance);
    return [
      last,
      textOf(event.type),
      textOf(event.reason),
      involved.name ? `${kind}/${involved.name}` : kind,
      textOf(involved.fieldPath),
      instance ? `${component}, ${instance}` : component,
      textOf(event.message).trim(),
      first,
      count,
      event.metadata.name,
    ];
  },
};

/** The real server's generic table for CRDs: creation time in RFC 3339, UTC, without fractions (Go's time.RFC3339). */
const CUSTOM_RESOURCE_DEFINITION: Printer = {
  columns: [NAME, column("Created At", AGE_DESCRIPTION, { type: "date" })],
  cells: (crd) => {
    const created = Date.parse(textOf(crd.metadata.creationTimestamp));
    return [crd.metadata.name, Number.isNaN(created) ? null : new Date(created).toISOString().replace(/\.\d{3}Z$/, "Z")];
  },
};

const DEFAULT_AGE = column("Age", AGE_DESCRIPTION, { type: "date" });

const GENERIC: Printer = {
  columns: [NAME, DEFAULT_AGE],
  cells: (obj, now) => [obj.metadata.name, humanDuration(obj.metadata.creationTimestamp, now)],
};

const PRINTERS: Record<string, Printer> = {
  Pod: POD,
  Node: NODE,
  Namespace: NAMESPACE,
  Service: SERVICE,
  Deployment: DEPLOYMENT,
  EndpointSlice: ENDPOINT_SLICE,
  ServiceAccount: SERVICE_ACCOUNT,
  Secret: SECRET,
  ConfigMap: CONFIG_MAP,
  Lease: LEASE,
  Event: EVENT,
  CustomResourceDefinition: CUSTOM_RESOURCE_DEFINITION,
};

// ---- CRD additionalPrinterColumns ----

type Step = (value: unknown) => unknown[];

function child(key: string): Step {
  return (value) =>
    value !== null && typeof value === "object" && !Array.isArray(value) && Object.hasOwn(value, key) ? [(value as Record<string, unknown>)[key]] : [];
}

function parseLiteral(text: string): unknown {
  const quoted = /^(['"])(.*)\1$/.exec(text);
  if (quoted) return quoted[2];
  if (text === "true" || text === "false") return text === "true";
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return undefined;
}

function filter(expression: string): Step | undefined {
  const match = /^@((?:\.[A-Za-z0-9_-]+)+)\s*(?:(==|!=)\s*(.+?))?\s*$/.exec(expression);
  if (!match) return undefined;
  const steps = match[1]!.slice(1).split(".").map(child);
  const expected = match[3] === undefined ? undefined : parseLiteral(match[3]);
  if (match[2] !== undefined && expected === undefined) return undefined;
  return (value) =>
    list<unknown>(value).filter((item) => {
      const found = steps.reduce<unknown[]>((current, step) => current.flatMap(step), [item]);
      if (match[2] === undefined) return found.length > 0;
      const equal = found.length > 0 && found[0] === expected;
      return match[2] === "==" ? equal : !equal;
    });
}

/** Compiles the simple JSONPath subset CRDs use: .a.b, ['a.b'], [0], [*], [?(@.type=="Ready")]; undefined if unsupported. */
function compileJsonPath(jsonPath: string): Step[] | undefined {
  const path = jsonPath.trim().replace(/^\{(.*)\}$/, "$1");
  if (path === "") return undefined;
  const steps: Step[] = [];
  let rest = path;
  while (rest !== "") {
    let match: RegExpExecArray | null;
    if ((match = /^\.([A-Za-z0-9_\-$]+)/.exec(rest))) steps.push(child(match[1]!));
    else if ((match = /^\[(['"])(.*?)\1\]/.exec(rest))) steps.push(child(match[2]!));
    else if ((match = /^\[(\d+)\]/.exec(rest))) {
      const index = Number(match[1]);
      steps.push((value) => (Array.isArray(value) && index < value.length ? [value[index]] : []));
    } else if ((match = /^\[\*\]/.exec(rest))) steps.push((value) => list<unknown>(value));
    else if ((match = /^\[\?\((.*?)\)\]/.exec(rest))) {
      const step = filter(match[1]!);
      if (step === undefined) return undefined;
      steps.push(step);
    } else return undefined;
    rest = rest.slice(match[0].length);
  }
  return steps;
}

/** Cell value for a CRD column type, as the CRD table convertor renders it; null prints as "<none>". */
function cellFor(type: string, value: unknown, now: Date): unknown {
  if (value === undefined || value === null) return null;
  switch (type) {
    case "string":
      return typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value);
    case "integer":
      return typeof value === "number" ? Math.trunc(value) : null;
    case "number":
      return typeof value === "number" ? value : null;
    case "boolean":
      return typeof value === "boolean" ? value : null;
    case "date":
      if (typeof value !== "string") return null;
      return Number.isNaN(Date.parse(value)) ? "<invalid>" : humanDuration(value, now);
    default:
      return null;
  }
}

function customPrinter(printerColumns: PrinterColumn[]): Printer {
  const compiled = printerColumns.map((c) => compileJsonPath(c.jsonPath));
  const columns = printerColumns.map((c) =>
    column(c.name, c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath}`, {
      type: c.type,
      format: c.format ?? "",
      priority: c.priority ?? 0,
    }),
  );
  const addAge = !printerColumns.some((c) => c.type === "date");
  return {
    columns: [NAME, ...columns, ...(addAge ? [DEFAULT_AGE] : [])],
    cells: (obj, now) => {
      const cells = printerColumns.map((c, i) => {
        const steps = compiled[i];
        const found = steps === undefined ? [] : steps.reduce<unknown[]>((current, step) => current.flatMap(step), [obj]);
        return cellFor(c.type, found[0], now);
      });
      return [obj.metadata.name, ...cells, ...(addAge ? [humanDuration(obj.metadata.creationTimestamp, now)] : [])];
    },
  };
}

/** Renders `objects` of `kind` as the Table kubectl requests with Accept: application/json;as=Table;v=v1;g=meta.k8s.io. */
export function toTable(kind: string, objects: KubeObject[], opts: TableOptions): Table {
  const now = opts.now ?? new Date();
  const printer = opts.printerColumns && opts.printerColumns.length > 0 ? customPrinter(opts.printerColumns) : (PRINTERS[kind] ?? GENERIC);
  const rows = objects.map((obj) => {
    const cells = printer.cells(obj, now);
    if (opts.includeObject === "None") return { cells };
    if (opts.includeObject === "Object") return { cells, object: obj };
    return { cells, object: { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: obj.metadata } };
  });
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: opts.resourceVersion === undefined ? {} : { resourceVersion: opts.resourceVersion },
    columnDefinitions: printer.columns.map((c) => ({ ...c })),
    rows,
  };
}
