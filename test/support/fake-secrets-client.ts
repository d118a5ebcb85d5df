// A stand-in KubeClient for CA unit tests: Secrets in a map, answering 404 and 409 as the API server does.
import { type KubeClient, type KubeObject, KubeRequestError } from "../../kube/client.ts";

/** Secrets (get, create, merge patch) in memory; `extra` adds or replaces methods (a TokenReview, say). */
export function fakeSecretsClient(extra: Record<string, unknown> = {}): KubeClient {
  const objects = new Map<string, KubeObject>();
  const fake = {
    get: async (path: string) => {
      const o = objects.get(path);
      if (!o) throw new KubeRequestError(404, "NotFound", `${path} not found`);
      return structuredClone(o);
    },
    create: async (path: string, body: KubeObject) => {
      const key = `${path}/${body.metadata.name}`;
      if (objects.has(key)) throw new KubeRequestError(409, "AlreadyExists", `${key} exists`);
      objects.set(key, structuredClone(body));
      return structuredClone(body);
    },
    mergePatch: async (path: string, patch: { data: Record<string, string> }) => {
      const o = objects.get(path);
      if (!o) throw new KubeRequestError(404, "NotFound", `${path} not found`);
      o.data = { ...(o.data as object), ...patch.data };
      return structuredClone(o);
    },
    ...extra,
  };
  return fake as unknown as KubeClient;
}
