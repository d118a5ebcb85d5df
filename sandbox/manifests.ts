// Applies plain YAML manifests through the API, the way `kubectl apply` does for the objects the demo uses.
import fs from "node:fs/promises";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { KubeClient, isNotFound, pathFor } from "../kube/client.ts";

export async function readManifestDir(dir: string): Promise<KubernetesObject[]> {
  const files = (await fs.readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  const objects: KubernetesObject[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await fs.readFile(path.join(dir, file), "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as KubernetesObject | null;
      if (obj && obj.kind) objects.push(obj);
    }
  }
  return objects;
}

/**
 * Creates each object, or merge-patches it when it already exists. The bodies go as they were written: client-node's
 * object API re-serialises kinds it has a model for and drops the keys the model spells differently (a CRD's
 * `x-kubernetes-preserve-unknown-fields` was lost, so the API server pruned every Gateway's spec).
 */
export async function applyObjects(kc: KubeConfig, objects: KubernetesObject[]): Promise<void> {
  const client = new KubeClient(kc);
  const plurals = new Map<string, Map<string, { name: string; namespaced: boolean }>>();
  const resourceOf = async (apiVersion: string, kind: string) => {
    let byKind = plurals.get(apiVersion);
    if (!byKind) {
      const list = await client.request<{ resources: Array<{ name: string; kind: string; namespaced: boolean }> }>(
        "GET",
        apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`,
      );
      byKind = new Map(list.resources.filter((r) => !r.name.includes("/")).map((r) => [r.kind, r]));
      plurals.set(apiVersion, byKind);
    }
    const resource = byKind.get(kind);
    if (!resource) throw new Error(`the API server serves no ${kind} in ${apiVersion}`);
    return resource;
  };
  try {
    for (const obj of objects) {
      const apiVersion = obj.apiVersion!;
      // A CRD just created needs a moment before its kind is served: discovery is read again for the next object.
      const resource = await resourceOf(apiVersion, obj.kind!).catch(async () => {
        plurals.delete(apiVersion);
        return resourceOf(apiVersion, obj.kind!);
      });
      const namespace = resource.namespaced ? (obj.metadata?.namespace ?? "default") : undefined;
      const name = obj.metadata!.name!;
      try {
        await client.request("PATCH", pathFor(apiVersion, resource.name, namespace, name), obj, "application/merge-patch+json");
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await client.request("POST", pathFor(apiVersion, resource.name, namespace), obj);
      }
    }
  } finally {
    client.close();
  }
}
