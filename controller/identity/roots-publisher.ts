// Publishes the CA's roots as ConfigMap ambit-ca-root in every namespace, so a sidecar can trust the controller before its first connection.
import type { Logger } from "pino";
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY } from "../../contract/sidecar.ts";
import { type KubeClient, type KubeObject, pathFor } from "../../kube/client.ts";

/**
 * As Istio's istio-ca-root-cert: a pod may mount only ConfigMaps of its own namespace, and a sidecar must trust the
 * controller's certificate before it holds any config. Written by the leader; each namespace is written only when its
 * copy differs from the roots (a cache of what was written, checked against the API on the first pass).
 */
export class TrustRootsPublisher {
  readonly #client: Pick<KubeClient, "get" | "create" | "mergePatch">;
  readonly #log: Logger;
  /** namespace → the roots last written there (or found there). */
  readonly #written = new Map<string, string>();

  constructor(client: Pick<KubeClient, "get" | "create" | "mergePatch">, log: Logger) {
    this.#client = client;
    this.#log = log;
  }

  /** Every namespace that is not terminating gets `rootsPem`; failures are logged per namespace and retried on the next call. */
  async publish(namespaces: readonly KubeObject[], rootsPem: string): Promise<void> {
    const live = new Set<string>();
    for (const ns of namespaces) {
      const name = ns.metadata.name;
      live.add(name);
      if (ns.metadata.deletionTimestamp || ns.status?.phase === "Terminating") continue;
      if (this.#written.get(name) === rootsPem) continue;
      try {
        await this.#write(name, rootsPem);
        this.#written.set(name, rootsPem);
      } catch (err) {
        this.#log.warn({ namespace: name, err: String(err) }, `could not publish the trust roots (configmap ${CA_ROOT_CONFIGMAP})`);
      }
    }
    for (const name of this.#written.keys()) if (!live.has(name)) this.#written.delete(name);
  }

  async #write(namespace: string, rootsPem: string): Promise<void> {
    const path = pathFor("v1", "configmaps", namespace, CA_ROOT_CONFIGMAP);
    const existing = await this.#client.get(path).catch(() => undefined);
    const data = { [CA_ROOT_KEY]: rootsPem };
    if ((existing?.data as Record<string, string> | undefined)?.[CA_ROOT_KEY] === rootsPem) return;
    if (existing) await this.#client.mergePatch(path, { data });
    else
      await this.#client.create(pathFor("v1", "configmaps", namespace), {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: CA_ROOT_CONFIGMAP, labels: { "app.kubernetes.io/managed-by": "ambit-controller" } },
        data,
      });
    this.#log.info({ namespace }, `published the trust roots (configmap ${CA_ROOT_CONFIGMAP})`);
  }
}
