// EndpointSlice controller: one slice per selector-based Service listing its pods' IPs, readiness and ports.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, pathFor, isNotFound } from "../../kube/client.ts";
import { type SharedInformers, keyOf, splitKey } from "../../kube/informers.ts";
import { QueueController } from "../../kube/controller.ts";
import { isPodReady, isPodTerminal } from "./pods.ts";

export const MANAGED_BY = "endpointslice-controller.sandbox.ambit.dev";

interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

/** Resolves a Service targetPort (number or container port name) against a pod's containers. */
function resolveTargetPort(targetPort: number | string | undefined, port: number, pod: KubeObject): number | undefined {
  if (targetPort === undefined) return port;
  if (typeof targetPort === "number") return targetPort;
  if (/^\d+$/.test(targetPort)) return Number(targetPort);
  for (const c of pod.spec?.containers ?? []) {
    const match = (c.ports as ContainerPort[] | undefined)?.find((p) => p.name === targetPort);
    if (match) return match.containerPort;
  }
  return undefined;
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** Builds the desired EndpointSlice for a Service from the pods it selects (pure, for tests). */
export function desiredSlice(service: KubeObject, pods: KubeObject[]): KubeObject {
  const name = service.metadata.name;
  const selected = pods.filter((p) => selects(service.spec?.selector, p.metadata.labels) && p.status?.podIP && !isPodTerminal(p));
  const servicePorts: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string }> = service.spec?.ports ?? [];
  const sample = selected[0];
  const ports = servicePorts.map((sp) => ({
    name: sp.name ?? "",
    protocol: sp.protocol ?? "TCP",
    port: sample ? resolveTargetPort(sp.targetPort, sp.port, sample) : typeof sp.targetPort === "number" ? sp.targetPort : sp.port,
  }));
  const endpoints = selected
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((p) => {
      const terminating = !!p.metadata.deletionTimestamp;
      const ready = isPodReady(p) && !terminating;
      return {
        addresses: [p.status.podIP as string],
        conditions: { ready, serving: isPodReady(p), terminating },
        nodeName: p.spec?.nodeName,
        targetRef: { kind: "Pod", namespace: p.metadata.namespace, name: p.metadata.name, uid: p.metadata.uid },
      };
    });
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: `${name}-${(service.metadata.uid ?? "00000").slice(0, 5)}`,
      namespace: service.metadata.namespace,
      labels: { "kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": MANAGED_BY },
      ownerReferences: [{ apiVersion: "v1", kind: "Service", name, uid: service.metadata.uid as string, controller: true }],
    },
    addressType: "IPv4",
    endpoints,
    ports,
  };
}

export class EndpointSliceController extends QueueController {
  constructor(client: KubeClient, informers: SharedInformers, log: Logger) {
    super(client, informers, log, "endpointslice-controller", "service");
    informers.on("services", (event, svc) => {
      if (event !== "delete") this.queue.add(keyOf(svc));
    });
    informers.on("pods", (_event, pod) => {
      for (const svc of informers.list("services", pod.metadata.namespace)) {
        if (selects(svc.spec?.selector, pod.metadata.labels)) this.queue.add(keyOf(svc));
      }
    });
    informers.on("endpointslices", (event, slice) => {
      const svc = slice.metadata.labels?.["kubernetes.io/service-name"];
      if (svc && slice.metadata.labels?.["endpointslice.kubernetes.io/managed-by"] === MANAGED_BY && event !== "add") {
        this.queue.add(`${slice.metadata.namespace}/${svc}`);
      }
    });
  }

  protected async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const service = this.informers.get("services", name, namespace);
    if (!service || !namespace || service.metadata.deletionTimestamp) return;
    if (!service.spec?.selector || Object.keys(service.spec.selector).length === 0) return;
    const desired = desiredSlice(service, this.informers.list("pods", namespace));
    const existing = this.informers.get("endpointslices", desired.metadata.name, namespace);
    if (!existing) {
      try {
        await this.client.create(pathFor("discovery.k8s.io/v1", "endpointslices", namespace), desired);
      } catch (err) {
        // Created by an earlier pass not yet seen by the informer: the update event will requeue.
        if (!(err instanceof Error && "status" in err && err.status === 409)) throw err;
      }
      return;
    }
    if (JSON.stringify([existing.endpoints, existing.ports]) === JSON.stringify([desired.endpoints, desired.ports])) return;
    try {
      await this.client.mergePatch(pathFor("discovery.k8s.io/v1", "endpointslices", namespace, desired.metadata.name), {
        endpoints: desired.endpoints,
        ports: desired.ports,
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
