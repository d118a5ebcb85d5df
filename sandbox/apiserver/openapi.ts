// Minimal OpenAPI documents: just enough for kubectl to use server-side field validation and built-in patch logic.
import { createHash } from "node:crypto";
import type { ResourceType } from "./resources.ts";
import { apiVersionOf } from "./resources.ts";

/**
 * kubectl (1.24+) reads /openapi/v3 to learn whether the server validates fields itself: it looks for a
 * PATCH operation tagged with the kind's x-kubernetes-group-version-kind that accepts `fieldValidation`.
 * Saying yes makes kubectl skip client-side schema validation (the sandbox has no schemas) and send
 * `fieldValidation=Strict`, which the sandbox accepts. Without component schemas kubectl computes apply
 * patches from its compiled-in types, as it does for any server without OpenAPI.
 */
const gvPath = (r: Pick<ResourceType, "group" | "version">) => (r.group ? `apis/${r.group}/${r.version}` : `api/${r.version}`);

export function openApiV3Root(resources: ResourceType[]): object {
  const byGv = new Map<string, ResourceType[]>();
  for (const r of resources) byGv.set(gvPath(r), [...(byGv.get(gvPath(r)) ?? []), r]);
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const [gv, members] of byGv) {
    const hash = createHash("sha256").update(JSON.stringify(members)).digest("hex").slice(0, 32).toUpperCase();
    paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${hash}` };
  }
  return { paths };
}

export function openApiV3GroupVersion(resources: ResourceType[], gv: string): object | undefined {
  const members = resources.filter((r) => gvPath(r) === gv);
  if (members.length === 0) return undefined;
  const paths: Record<string, object> = {};
  for (const r of members) {
    const base = `/${gvPath(r)}${r.namespaced ? "/namespaces/{namespace}" : ""}/${r.plural}/{name}`;
    paths[base] = {
      patch: {
        operationId: `patch${r.kind}`,
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": { group: r.group, version: r.version, kind: r.kind },
        parameters: [
          { name: "dryRun", in: "query", schema: { type: "string" } },
          { name: "fieldManager", in: "query", schema: { type: "string" } },
          { name: "fieldValidation", in: "query", schema: { type: "string" } },
        ],
        responses: { "200": { description: "OK" } },
      },
    };
  }
  return { openapi: "3.0.0", info: { title: "Kubernetes", version: apiVersionOf(members[0]!) }, paths, components: { schemas: {} } };
}
