// Applies plain YAML manifests through the API, the way `kubectl apply` does for the objects the demo uses.
import fs from "node:fs/promises";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";

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

/** Creates each object, or merge-patches it when it already exists. */
export async function applyObjects(kc: KubeConfig, objects: KubernetesObject[]): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const obj of objects) {
    const header = { apiVersion: obj.apiVersion!, kind: obj.kind!, metadata: { name: obj.metadata!.name!, namespace: obj.metadata?.namespace ?? "" } };
    let exists = true;
    try {
      await api.read(header as never);
    } catch {
      exists = false;
    }
    if (exists) await api.patch(obj, undefined, undefined, "ambit-dev", undefined, "application/merge-patch+json" as never);
    else await api.create(obj, undefined, undefined, "ambit-dev");
  }
}
