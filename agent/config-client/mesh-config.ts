// Turns the controller's view of this node into typed records, refusing the whole update if any record is malformed.
import net from "node:net";
import { type PodNetwork, RESOURCE_TYPES, type ServiceSpec, type TrustBundle, type Workload } from "../../contract/mesh.ts";
import type { Resource } from "../../contract/stream.ts";
import { AmbitError } from "../../contract/errors.ts";
import { AGENT_ERRORS } from "../../contract/error-codes.ts";

/** What one config version holds for this node. Policies stay raw here: the policy store validates them. */
export interface MeshConfig {
  workloads: Workload[];
  services: ServiceSpec[];
  authorizations: unknown[];
  peerAuthentications: unknown[];
  trustBundle: TrustBundle;
  /** Empty when the controller sends none (an older controller): then no address counts as a pod newer than the config. */
  network: PodNetwork;
}

export class MeshConfigError extends AmbitError<typeof AGENT_ERRORS.code.configInvalid> {
  constructor(message: string) {
    super(AGENT_ERRORS.code.configInvalid, message);
    this.name = "MeshConfigError";
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === "string";
const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0 && (v as number) < 65536;

/** Absent, or a Gateway's namespace and name: a malformed one must refuse the version, not drop the binding (fail closed). */
const isWaypointRef = (v: unknown): boolean => v === undefined || (isObject(v) && isString(v.namespace) && isString(v.name) && v.name !== "");

function checkWorkload(key: string, v: unknown): Workload {
  const ok =
    isObject(v) &&
    ["uid", "namespace", "name", "workloadName", "serviceAccount", "node", "ip"].every((f) => isString(v[f])) &&
    typeof v.captured === "boolean" &&
    isObject(v.labels) &&
    Object.values(v.labels).every(isString) &&
    isWaypointRef(v.waypoint);
  if (!ok) throw new MeshConfigError(`workload ${key} is malformed`);
  return v as unknown as Workload;
}

function checkService(key: string, v: unknown): ServiceSpec {
  const ok =
    isObject(v) &&
    isString(v.namespace) &&
    isString(v.name) &&
    isString(v.clusterIP) &&
    isWaypointRef(v.waypoint) &&
    Array.isArray(v.ports) &&
    v.ports.every(
      (p) =>
        isObject(p) &&
        isPort(p.port) &&
        (p.appProtocol === undefined || isString(p.appProtocol)) &&
        Array.isArray(p.endpoints) &&
        p.endpoints.every((e) => isObject(e) && isString(e.ip) && isPort(e.port) && typeof e.ready === "boolean"),
    );
  if (!ok) throw new MeshConfigError(`service ${key} is malformed`);
  return v as unknown as ServiceSpec;
}

function checkTrustBundle(v: unknown): TrustBundle {
  if (
    !isObject(v) ||
    !Array.isArray(v.rootsPem) ||
    v.rootsPem.length === 0 ||
    !v.rootsPem.every((p) => isString(p) && p.includes("-----BEGIN CERTIFICATE-----"))
  ) {
    throw new MeshConfigError("the trust bundle must hold at least one PEM certificate");
  }
  return v as unknown as TrustBundle;
}

function checkNetwork(v: unknown): PodNetwork {
  const cidr = (c: unknown) => {
    if (typeof c !== "string") return false;
    const [address, bits, extra] = c.split("/");
    const family = net.isIP(address ?? "");
    return family !== 0 && extra === undefined && /^\d+$/.test(bits ?? "") && Number(bits) <= (family === 6 ? 128 : 32);
  };
  if (!isObject(v) || !Array.isArray(v.podCidrs) || !v.podCidrs.every(cidr)) throw new MeshConfigError("the pod network must list CIDR blocks");
  return v as unknown as PodNetwork;
}

/** Every resource checked; an unknown type is ignored (a newer controller may send more than this agent knows). */
export function meshConfigFromView(view: ReadonlyMap<string, Resource>): MeshConfig {
  const config: Omit<MeshConfig, "trustBundle"> & { trustBundle?: TrustBundle } = {
    workloads: [],
    services: [],
    authorizations: [],
    peerAuthentications: [],
    network: { podCidrs: [] },
  };
  for (const r of view.values()) {
    switch (r.type) {
      case RESOURCE_TYPES.workload:
        config.workloads.push(checkWorkload(r.key, r.value));
        break;
      case RESOURCE_TYPES.service:
        config.services.push(checkService(r.key, r.value));
        break;
      case RESOURCE_TYPES.authorization:
        config.authorizations.push(r.value);
        break;
      case RESOURCE_TYPES.peerAuthentication:
        config.peerAuthentications.push(r.value);
        break;
      case RESOURCE_TYPES.trustBundle:
        config.trustBundle = checkTrustBundle(r.value);
        break;
      case RESOURCE_TYPES.network:
        config.network = checkNetwork(r.value);
        break;
    }
  }
  if (!config.trustBundle) throw new MeshConfigError("the controller sent no trust bundle");
  return config as MeshConfig;
}
