// Defaulting and validation per kind, as the real API server applies them on create and update.
import { ApiError, type KubeObject } from "./types.ts";
import { labelSelectorMatches } from "./selectors.ts";

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Kinds whose names must be DNS-1123 labels (63 chars, no dots), as in Kubernetes. */
const LABEL_NAMED = new Set(["Namespace", "Service"]);

export function invalid(kind: string, name: string, field: string, message: string): ApiError {
  return new ApiError(422, "Invalid", `${kind} "${name}" is invalid: ${field}: ${message}`, {
    name,
    kind,
    causes: [{ reason: "FieldValueInvalid", message, field }],
  });
}

export function validateName(kind: string, name: string): void {
  const label = LABEL_NAMED.has(kind);
  const ok = label ? DNS1123_LABEL.test(name) && name.length <= 63 : DNS1123_SUBDOMAIN.test(name) && name.length <= 253;
  if (!ok) {
    throw invalid(
      kind,
      name,
      "metadata.name",
      `Invalid value: "${name}": a lowercase RFC 1123 ${label ? "label" : "subdomain"} must consist of lower case alphanumeric characters${label ? ", '-'" : ", '-' or '.'"}, and must start and end with an alphanumeric character`,
    );
  }
}

function validateLabels(kind: string, obj: KubeObject): void {
  for (const [k, v] of Object.entries(obj.metadata.labels ?? {})) {
    if (typeof v !== "string" || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v) || v.length > 63) {
      throw invalid(
        kind,
        obj.metadata.name ?? "",
        `metadata.labels`,
        `Invalid value: "${String(v)}": a valid label value must be 63 characters or less and consist of alphanumerics, '-', '_' or '.' (label ${k})`,
      );
    }
  }
}

/** Fills the defaults the real server sets; mutates and returns `obj`. */
export function applyDefaults(obj: KubeObject): KubeObject {
  const spec = (obj.spec ??= {});
  switch (obj.kind) {
    case "Namespace":
      obj.metadata.labels = { ...(obj.metadata.labels ?? {}), "kubernetes.io/metadata.name": obj.metadata.name ?? "" };
      obj.status = { phase: obj.status?.phase === "Terminating" ? "Terminating" : "Active" };
      if (Object.keys(spec).length === 0) obj.spec = { finalizers: ["kubernetes"] };
      break;
    case "Pod":
      spec.serviceAccountName ??= spec.serviceAccount ?? "default";
      spec.serviceAccount = spec.serviceAccountName;
      spec.restartPolicy ??= "Always";
      spec.dnsPolicy ??= "ClusterFirst";
      spec.terminationGracePeriodSeconds ??= 30;
      spec.schedulerName ??= "default-scheduler";
      spec.enableServiceLinks ??= true;
      spec.securityContext ??= {};
      for (const c of spec.containers ?? []) {
        c.imagePullPolicy ??= /:latest$|^[^:]*$/.test(c.image ?? "") ? "Always" : "IfNotPresent";
        c.terminationMessagePath ??= "/dev/termination-log";
        c.terminationMessagePolicy ??= "File";
        c.resources ??= {};
        for (const p of c.ports ?? []) p.protocol ??= "TCP";
      }
      obj.status ??= {};
      obj.status.phase ??= "Pending";
      obj.status.qosClass ??= "BestEffort";
      break;
    case "Service":
      spec.type ??= "ClusterIP";
      spec.sessionAffinity ??= "None";
      spec.internalTrafficPolicy ??= "Cluster";
      spec.ipFamilies ??= ["IPv4"];
      spec.ipFamilyPolicy ??= "SingleStack";
      for (const p of spec.ports ?? []) {
        p.protocol ??= "TCP";
        p.targetPort ??= p.port;
      }
      obj.status ??= { loadBalancer: {} };
      break;
    case "Deployment":
      spec.replicas ??= 1;
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      // As SetDefaults_Deployment: an empty strategy ({} from kubectl's generators) is a rolling update of 25%/25%.
      spec.strategy = { ...(spec.strategy ?? {}) };
      spec.strategy.type ||= "RollingUpdate";
      if (spec.strategy.type === "RollingUpdate")
        spec.strategy.rollingUpdate = { maxSurge: "25%", maxUnavailable: "25%", ...(spec.strategy.rollingUpdate ?? {}) };
      obj.status ??= {};
      break;
    case "DaemonSet":
      spec.updateStrategy ??= { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } };
      spec.revisionHistoryLimit ??= 10;
      obj.status ??= { currentNumberScheduled: 0, desiredNumberScheduled: 0, numberMisscheduled: 0, numberReady: 0 };
      break;
    case "Secret":
      obj.type ??= "Opaque";
      if (obj.stringData && typeof obj.stringData === "object") {
        // Like the real server: stringData is write-only and merged into data, base64-encoded.
        const data = (obj.data ??= {}) as Record<string, string>;
        for (const [k, v] of Object.entries(obj.stringData as Record<string, string>)) data[k] = Buffer.from(String(v)).toString("base64");
        delete obj.stringData;
      }
      break;
    default:
      break;
  }
  if (obj.spec && Object.keys(obj.spec).length === 0 && !["Pod", "Service", "Deployment", "DaemonSet", "Namespace"].includes(obj.kind)) delete obj.spec;
  return obj;
}

/** Validation beyond names: what the real server would refuse with 422. */
export function validate(obj: KubeObject): void {
  const name = obj.metadata.name ?? "";
  validateName(obj.kind, name);
  validateLabels(obj.kind, obj);
  switch (obj.kind) {
    case "Pod": {
      const containers = obj.spec?.containers;
      if (!Array.isArray(containers) || containers.length === 0) throw invalid("Pod", name, "spec.containers", "Required value");
      for (const [i, c] of containers.entries()) {
        if (!c?.name) throw invalid("Pod", name, `spec.containers[${i}].name`, "Required value");
        if (!c.image) throw invalid("Pod", name, `spec.containers[${i}].image`, "Required value");
      }
      break;
    }
    case "Service":
      for (const [i, p] of (obj.spec?.ports ?? []).entries()) {
        if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
          throw invalid("Service", name, `spec.ports[${i}].port`, `Invalid value: ${p.port}: must be between 1 and 65535, inclusive`);
      }
      break;
    case "Deployment":
    case "DaemonSet": {
      const selector = obj.spec?.selector;
      if (!selector) throw invalid(obj.kind, name, "spec.selector", "Required value");
      if (!labelSelectorMatches(selector, obj.spec?.template?.metadata?.labels)) {
        throw invalid(obj.kind, name, "spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`");
      }
      if (!Array.isArray(obj.spec?.template?.spec?.containers) || obj.spec.template.spec.containers.length === 0) {
        throw invalid(obj.kind, name, "spec.template.spec.containers", "Required value");
      }
      break;
    }
    case "CustomResourceDefinition": {
      const spec = obj.spec ?? {};
      const expected = `${spec.names?.plural}.${spec.group}`;
      if (!spec.group || !spec.names?.plural || !spec.names?.kind) throw invalid(obj.kind, name, "spec", "group, names.plural and names.kind are required");
      if (name !== expected) throw invalid(obj.kind, name, "metadata.name", `Invalid value: "${name}": must be spec.names.plural+"."+spec.group`);
      if (!Array.isArray(spec.versions) || spec.versions.length === 0) throw invalid(obj.kind, name, "spec.versions", "Required value");
      break;
    }
    default:
      break;
  }
}

/** Allocates Service ClusterIPs from a /16 or smaller IPv4 range; the first address is the `kubernetes` service. */
export class ClusterIpAllocator {
  readonly #base: number;
  readonly #size: number;
  readonly #used = new Set<number>();

  constructor(cidr: string) {
    const [ip, bitsText] = cidr.split("/");
    const bits = Number(bitsText);
    this.#base = ipToInt(ip ?? "") & (bits === 0 ? 0 : ~0 << (32 - bits));
    this.#size = 2 ** (32 - bits);
  }

  get first(): string {
    return intToIp(this.#base + 1);
  }

  allocate(requested?: string): string {
    if (requested) {
      const n = ipToInt(requested);
      if (n <= this.#base || n >= this.#base + this.#size - 1)
        throw new Error(`${requested} is not in the valid range; the range of valid IPs is ${intToIp(this.#base)}/${32 - Math.log2(this.#size)}`);
      if (this.#used.has(n)) throw new Error(`provided IP ${requested} is already allocated`);
      this.#used.add(n);
      return requested;
    }
    // Start above .10 so well-known addresses (DNS conventionally .10) stay free for explicit requests.
    for (let i = 11; i < this.#size - 1; i++) {
      if (!this.#used.has(this.#base + i)) {
        this.#used.add(this.#base + i);
        return intToIp(this.#base + i);
      }
    }
    throw new Error("range is full");
  }

  release(ip: string | undefined): void {
    if (ip && ip !== "None") this.#used.delete(ipToInt(ip));
  }
}

const ipToInt = (ip: string): number => ip.split(".").reduce((acc, octet) => (acc << 8) + Number(octet), 0) >>> 0;
const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
