// Container environment as Kubernetes builds it: service links, downward API, ConfigMap/Secret refs, $(VAR) expansion.
import path from "node:path";
import type { KubeObject } from "../../kube/client.ts";
import { AmbitError } from "../../contract/errors.ts";
import { SANDBOX_ERRORS } from "../../contract/error-codes.ts";

export interface EnvSources {
  /** Services of the pod's namespace (for service links) and the `kubernetes` service in `default`. */
  services: KubeObject[];
  kubernetesService?: KubeObject;
  configMap(namespace: string, name: string): Promise<KubeObject | undefined>;
  secret(namespace: string, name: string): Promise<KubeObject | undefined>;
}

export class EnvResolutionError extends AmbitError<typeof SANDBOX_ERRORS.code.env> {
  constructor(message: string) {
    super(SANDBOX_ERRORS.code.env, message);
    this.name = "EnvResolutionError";
  }
}

const envName = (service: string) => service.toUpperCase().replace(/-/g, "_");

function serviceLinks(service: KubeObject): Record<string, string> {
  const ip: string | undefined = service.spec?.clusterIP;
  const ports: Array<{ name?: string; port: number; protocol?: string }> = service.spec?.ports ?? [];
  if (!ip || ip === "None" || ports.length === 0) return {};
  const prefix = envName(service.metadata.name);
  const first = ports[0]!;
  const env: Record<string, string> = {
    [`${prefix}_SERVICE_HOST`]: ip,
    [`${prefix}_SERVICE_PORT`]: String(first.port),
    [`${prefix}_PORT`]: `${(first.protocol ?? "TCP").toLowerCase()}://${ip}:${first.port}`,
  };
  for (const p of ports) {
    const proto = (p.protocol ?? "TCP").toLowerCase();
    if (p.name) env[`${prefix}_SERVICE_PORT_${envName(p.name)}`] = String(p.port);
    const base = `${prefix}_PORT_${p.port}_${proto.toUpperCase()}`;
    env[base] = `${proto}://${ip}:${p.port}`;
    env[`${base}_PROTO`] = proto;
    env[`${base}_PORT`] = String(p.port);
    env[`${base}_ADDR`] = ip;
  }
  return env;
}

/** Reads a downward-API field path such as `metadata.labels['app']` or `status.podIP`. */
export function fieldRef(pod: KubeObject, fieldPath: string): string {
  const mapKey = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (mapKey) return pod.metadata[mapKey[1] as "labels" | "annotations"]?.[mapKey[2]!] ?? "";
  switch (fieldPath) {
    case "metadata.name":
      return pod.metadata.name;
    case "metadata.namespace":
      return pod.metadata.namespace ?? "";
    case "metadata.uid":
      return pod.metadata.uid ?? "";
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "default";
    case "status.podIP":
      return pod.status?.podIP ?? "";
    case "status.hostIP":
      return pod.status?.hostIP ?? "";
    case "status.podIPs":
      return (pod.status?.podIPs ?? []).map((p: { ip: string }) => p.ip).join(",");
    default:
      throw new EnvResolutionError(`unsupported fieldRef fieldPath "${fieldPath}"`);
  }
}

/** Kubernetes' $(VAR) expansion: known variables are replaced, $$ escapes, unknown references stay as written. */
export function expandVars(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === "$$") return "$";
    return name !== undefined && name in env ? env[name]! : match;
  });
}

function dataValue(obj: KubeObject | undefined, key: string, kind: "ConfigMap" | "Secret"): string | undefined {
  if (!obj) return undefined;
  const data = obj.data as Record<string, string> | undefined;
  if (kind === "Secret") {
    const v = data?.[key];
    return v === undefined ? (obj.stringData as Record<string, string> | undefined)?.[key] : Buffer.from(v, "base64").toString("utf8");
  }
  return data?.[key];
}

export async function containerEnv(
  pod: KubeObject,
  container: { env?: Array<Record<string, unknown>>; envFrom?: Array<Record<string, unknown>> },
  sources: EnvSources,
): Promise<Record<string, string>> {
  const namespace = pod.metadata.namespace ?? "default";
  const env: Record<string, string> = {
    PATH: `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOSTNAME: pod.metadata.name,
    HOME: "/root",
    LANG: "C.UTF-8",
  };
  if (sources.kubernetesService) {
    const ip = sources.kubernetesService.spec?.clusterIP as string;
    Object.assign(env, {
      KUBERNETES_SERVICE_HOST: ip,
      KUBERNETES_SERVICE_PORT: "443",
      KUBERNETES_SERVICE_PORT_HTTPS: "443",
      KUBERNETES_PORT: `tcp://${ip}:443`,
    });
  }
  if (pod.spec?.enableServiceLinks !== false) for (const svc of sources.services) Object.assign(env, serviceLinks(svc));

  for (const from of container.envFrom ?? []) {
    const prefix = (from.prefix as string | undefined) ?? "";
    const cmRef = from.configMapRef as { name: string; optional?: boolean } | undefined;
    const secretRef = from.secretRef as { name: string; optional?: boolean } | undefined;
    const ref = cmRef ?? secretRef;
    if (!ref) continue;
    const kind = cmRef ? "ConfigMap" : "Secret";
    const obj = cmRef ? await sources.configMap(namespace, ref.name) : await sources.secret(namespace, ref.name);
    if (!obj) {
      if (ref.optional) continue;
      throw new EnvResolutionError(`${kind} "${namespace}/${ref.name}" referenced by envFrom does not exist`);
    }
    const keys = Object.keys((obj.data as object | undefined) ?? {});
    for (const key of keys) env[prefix + key] = dataValue(obj, key, kind) ?? "";
  }

  for (const item of container.env ?? []) {
    const name = item.name as string;
    if (typeof item.value === "string") {
      env[name] = expandVars(item.value, env);
      continue;
    }
    const valueFrom = item.valueFrom as Record<string, { name?: string; key?: string; fieldPath?: string; optional?: boolean }> | undefined;
    if (!valueFrom) {
      env[name] = "";
      continue;
    }
    if (valueFrom.fieldRef?.fieldPath) {
      env[name] = fieldRef(pod, valueFrom.fieldRef.fieldPath);
      continue;
    }
    const ref = valueFrom.configMapKeyRef ?? valueFrom.secretKeyRef;
    if (ref?.name && ref.key) {
      const kind = valueFrom.configMapKeyRef ? "ConfigMap" : "Secret";
      const obj = kind === "ConfigMap" ? await sources.configMap(namespace, ref.name) : await sources.secret(namespace, ref.name);
      const value = dataValue(obj, ref.key, kind);
      if (value === undefined) {
        if (ref.optional) continue;
        throw new EnvResolutionError(`env ${name}: key "${ref.key}" of ${kind} "${namespace}/${ref.name}" not found`);
      }
      env[name] = value;
      continue;
    }
    throw new EnvResolutionError(`env ${name}: unsupported valueFrom (resourceFieldRef is not supported by the sandbox)`);
  }
  return env;
}
