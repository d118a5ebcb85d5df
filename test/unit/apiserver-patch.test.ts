// PATCH handling of the sandbox API server: media types, JSON Patch, merge patch and kubectl's strategic merge patches.
import { describe, expect, it } from "vitest";
import { apiErrorOf } from "../support/api-errors.ts";
import { applyPatch, isBuiltinKind, patchTypeFromContentType } from "../../sandbox/apiserver/patch.ts";
import type { PatchType } from "../../sandbox/apiserver/patch.ts";
import { ApiError, statusBody } from "../../sandbox/apiserver/types.ts";
import type { KubeObject } from "../../sandbox/apiserver/types.ts";

const JSON_PATCH: PatchType = "application/json-patch+json";
const MERGE: PatchType = "application/merge-patch+json";
const STRATEGIC: PatchType = "application/strategic-merge-patch+json";

const pod = (): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "orders-1", namespace: "demo", labels: { app: "orders", tier: "backend" }, finalizers: ["a.example.com/x", "b.example.com/y"] },
  spec: {
    containers: [
      {
        name: "app",
        image: "orders:1",
        env: [
          { name: "LEVEL", value: "info" },
          { name: "MODE", value: "slow" },
        ],
        ports: [{ name: "http", containerPort: 8080 }],
      },
      { name: "sidecar", image: "proxy:1" },
    ],
    tolerations: [{ key: "a", operator: "Exists" }],
    securityContext: { runAsUser: 1000 },
  },
  status: {
    conditions: [
      { type: "Ready", status: "False" },
      { type: "PodScheduled", status: "True" },
    ],
  },
});

const hasDirective = (value: unknown) => JSON.stringify(value).includes('"$');
const containers = (obj: KubeObject) => obj.spec.containers as Array<Record<string, unknown>>;

describe("ApiError and statusBody", () => {
  it("carries HTTP status, reason, a stable code and renders a metav1.Status", () => {
    const err = new ApiError(404, "NotFound", 'pods "x" not found', { name: "x", kind: "pods" });
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe("AMBIT_E_API_NOT_FOUND");
    expect(new ApiError(415, "UnsupportedMediaType", "m").code).toBe("AMBIT_E_API_UNSUPPORTED_MEDIA_TYPE");
    expect(statusBody(err)).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'pods "x" not found',
      reason: "NotFound",
      details: { name: "x", kind: "pods" },
      code: 404,
    });
    expect(statusBody(new ApiError(409, "Conflict", "c"))).not.toHaveProperty("details");
  });
});

describe("patchTypeFromContentType", () => {
  it("accepts the three patch media types, ignoring parameters and case", () => {
    expect(patchTypeFromContentType("application/merge-patch+json; charset=utf-8")).toBe(MERGE);
    expect(patchTypeFromContentType("Application/JSON-Patch+JSON")).toBe(JSON_PATCH);
    expect(patchTypeFromContentType("application/strategic-merge-patch+json")).toBe(STRATEGIC);
  });

  it("refuses server-side apply with a pointer to client-side kubectl apply", () => {
    const err = apiErrorOf(() => patchTypeFromContentType("application/apply-patch+yaml"));
    expect(err.httpStatus).toBe(415);
    expect(err.reason).toBe("UnsupportedMediaType");
    expect(err.message).toContain("server-side apply is not supported by the sandbox");
    expect(err.message).toContain("kubectl apply");
  });

  it("refuses anything else with 415", () => {
    for (const type of [undefined, "", "application/json", "text/plain"]) {
      const err = apiErrorOf(() => patchTypeFromContentType(type));
      expect(err.httpStatus).toBe(415);
      expect(err.code).toBe("AMBIT_E_API_UNSUPPORTED_MEDIA_TYPE");
    }
  });
});

describe("applyPatch: JSON merge patch", () => {
  it("adds and removes labels like kubectl label, without touching the target", () => {
    const target = pod();
    const before = structuredClone(target);
    const added = applyPatch(target, { metadata: { labels: { version: "v2" } } }, MERGE, "Pod");
    expect(added.metadata.labels).toEqual({ app: "orders", tier: "backend", version: "v2" });
    const removed = applyPatch(target, '{"metadata":{"labels":{"tier":null}}}', MERGE, "Pod");
    expect(removed.metadata.labels).toEqual({ app: "orders" });
    expect(target).toEqual(before);
  });

  it("replaces arrays whole and returns an object sharing nothing with the target", () => {
    const target = pod();
    const patched = applyPatch(target, { spec: { containers: [{ name: "only", image: "x" }] } }, MERGE, "Pod");
    expect(patched.spec.containers).toEqual([{ name: "only", image: "x" }]);
    patched.spec.tolerations[0].key = "changed";
    patched.metadata.labels!.app = "changed";
    expect(target.spec.tolerations[0].key).toBe("a");
    expect(target.metadata.labels!.app).toBe("orders");
  });

  it("works for custom resources and drops nulls in new subtrees", () => {
    const widget: KubeObject = { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" }, spec: { size: 1 } };
    const patched = applyPatch(widget, { spec: { size: 2, extra: { a: null, b: 1 } } }, MERGE, "Widget");
    expect(patched.spec).toEqual({ size: 2, extra: { b: 1 } });
  });

  it("rejects unparsable and non-object bodies with 400", () => {
    expect(apiErrorOf(() => applyPatch(pod(), "{not json", MERGE, "Pod")).httpStatus).toBe(400);
    expect(apiErrorOf(() => applyPatch(pod(), [1, 2], MERGE, "Pod")).reason).toBe("BadRequest");
    expect(apiErrorOf(() => applyPatch(pod(), new TextEncoder().encode("nope"), MERGE, "Pod")).httpStatus).toBe(400);
  });

  it("accepts the raw body as bytes", () => {
    const patched = applyPatch(pod(), new TextEncoder().encode('{"metadata":{"annotations":{"a":"b"}}}'), MERGE, "Pod");
    expect(patched.metadata.annotations).toEqual({ a: "b" });
  });

  it("refuses a patch that strips kind or metadata", () => {
    const err = apiErrorOf(() => applyPatch(pod(), { kind: null }, MERGE, "Pod"));
    expect(err.httpStatus).toBe(422);
    expect(err.reason).toBe("Invalid");
  });
});

describe("applyPatch: JSON Patch (RFC 6902)", () => {
  it("applies add, replace, remove, move, copy and test in order", () => {
    const target = pod();
    const patched = applyPatch(
      target,
      [
        { op: "test", path: "/metadata/labels/app", value: "orders" },
        { op: "add", path: "/metadata/annotations", value: {} },
        { op: "add", path: "/metadata/annotations/example.com~1a~0b", value: "1" },
        { op: "replace", path: "/spec/containers/0/image", value: "orders:2" },
        { op: "remove", path: "/metadata/labels/tier" },
        { op: "add", path: "/spec/containers/-", value: { name: "third", image: "t" } },
        { op: "add", path: "/spec/containers/0/env/0", value: { name: "FIRST", value: "1" } },
        { op: "copy", from: "/metadata/labels/app", path: "/metadata/labels/copied" },
        { op: "move", from: "/spec/securityContext", path: "/spec/podSecurityContext" },
      ],
      JSON_PATCH,
      "Pod",
    );
    expect(patched.metadata.annotations).toEqual({ "example.com/a~b": "1" });
    expect(patched.metadata.labels).toEqual({ app: "orders", copied: "orders" });
    expect(containers(patched).map((c) => c.name)).toEqual(["app", "sidecar", "third"]);
    expect(containers(patched)[0]!.image).toBe("orders:2");
    expect((containers(patched)[0]!.env as Array<{ name: string }>).map((e) => e.name)).toEqual(["FIRST", "LEVEL", "MODE"]);
    expect(patched.spec.securityContext).toBeUndefined();
    expect(patched.spec.podSecurityContext).toEqual({ runAsUser: 1000 });
    expect(target.spec.containers[0].image).toBe("orders:1");
  });

  it("fails a test operation with 422 and applies nothing", () => {
    const target = pod();
    const err = apiErrorOf(() =>
      applyPatch(
        target,
        [
          { op: "replace", path: "/metadata/labels/app", value: "other" },
          { op: "test", path: "/metadata/labels/tier", value: "frontend" },
        ],
        JSON_PATCH,
        "Pod",
      ),
    );
    expect(err.httpStatus).toBe(422);
    expect(err.reason).toBe("Invalid");
    expect(err.message).toContain("/metadata/labels/tier");
    expect(target.metadata.labels!.app).toBe("orders");
  });

  it("compares test values structurally, ignoring key order", () => {
    const patched = applyPatch(pod(), [{ op: "test", path: "/spec/securityContext", value: { runAsUser: 1000 } }], JSON_PATCH, "Pod");
    expect(patched.spec.securityContext).toEqual({ runAsUser: 1000 });
  });

  it("reports missing paths and bad indices with 422", () => {
    for (const operation of [
      { op: "remove", path: "/metadata/annotations/nope" },
      { op: "replace", path: "/spec/nothing", value: 1 },
      { op: "add", path: "/spec/containers/7", value: {} },
      { op: "add", path: "/spec/missing/deeper", value: 1 },
      { op: "remove", path: "/spec/containers/01" },
      { op: "move", from: "/spec", path: "/spec/inner" },
      { op: "remove", path: "" },
    ]) {
      expect(apiErrorOf(() => applyPatch(pod(), [operation], JSON_PATCH, "Pod")).httpStatus, JSON.stringify(operation)).toBe(422);
    }
  });

  it("rejects malformed patches with 400", () => {
    for (const body of [
      { op: "add" },
      [{ op: "frobnicate", path: "/a" }],
      [{ op: "add", path: "metadata/name", value: "x" }],
      [{ op: "add", path: "/a" }],
      [{ op: "copy", path: "/a" }],
      [{ op: "add", path: "/a~2", value: 1 }],
      ["add"],
    ]) {
      expect(apiErrorOf(() => applyPatch(pod(), body, JSON_PATCH, "Pod")).httpStatus, JSON.stringify(body)).toBe(400);
    }
  });

  it("keeps a __proto__ key as data", () => {
    const cm: KubeObject = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" }, data: {} };
    const patched = applyPatch(cm, '[{"op":"add","path":"/data/__proto__","value":"x"}]', JSON_PATCH, "ConfigMap");
    expect(Object.getOwnPropertyDescriptor(patched.data, "__proto__")?.value).toBe("x");
    expect(Object.getPrototypeOf(patched.data)).toBe(Object.prototype);
  });
});

describe("applyPatch: strategic merge patch", () => {
  it("adds and removes labels as kubectl label/annotate send them", () => {
    const labelled = applyPatch(pod(), { metadata: { labels: { a: "b" } } }, STRATEGIC, "Pod");
    expect(labelled.metadata.labels).toEqual({ app: "orders", tier: "backend", a: "b" });
    const unlabelled = applyPatch(labelled, { metadata: { labels: { a: null } } }, STRATEGIC, "Pod");
    expect(unlabelled.metadata.labels).toEqual({ app: "orders", tier: "backend" });
  });

  it("applies a kubectl apply patch: env change inside one container, order directives, nothing else touched", () => {
    const target = pod();
    const patch = {
      spec: {
        "$setElementOrder/containers": [{ name: "app" }, { name: "sidecar" }],
        containers: [{ name: "app", "$setElementOrder/env": [{ name: "LEVEL" }, { name: "MODE" }], env: [{ name: "MODE", value: "fast" }] }],
      },
    };
    const patched = applyPatch(target, patch, STRATEGIC, "Pod");
    expect(containers(patched).map((c) => c.name)).toEqual(["app", "sidecar"]);
    expect(containers(patched)[0]).toEqual({
      name: "app",
      image: "orders:1",
      env: [
        { name: "LEVEL", value: "info" },
        { name: "MODE", value: "fast" },
      ],
      ports: [{ name: "http", containerPort: 8080 }],
    });
    expect(containers(patched)[1]).toEqual({ name: "sidecar", image: "proxy:1" });
    expect(hasDirective(patched)).toBe(false);
  });

  it("deletes a container with $patch: delete", () => {
    const patched = applyPatch(pod(), { spec: { containers: [{ name: "sidecar", $patch: "delete" }] } }, STRATEGIC, "Pod");
    expect(containers(patched).map((c) => c.name)).toEqual(["app"]);
    expect(hasDirective(patched)).toBe(false);
  });

  it("places a new list item before the live-only items, as Kubernetes does, unless an order is given", () => {
    const added = applyPatch(pod(), { spec: { containers: [{ name: "new", image: "n" }] } }, STRATEGIC, "Pod");
    expect(containers(added).map((c) => c.name)).toEqual(["new", "app", "sidecar"]);
    const ordered = applyPatch(
      pod(),
      { spec: { "$setElementOrder/containers": [{ name: "app" }, { name: "sidecar" }, { name: "new" }], containers: [{ name: "new", image: "n" }] } },
      STRATEGIC,
      "Pod",
    );
    expect(containers(ordered).map((c) => c.name)).toEqual(["app", "sidecar", "new"]);
  });

  it("reorders a list named only in $setElementOrder and keeps unnamed live items in place", () => {
    const reordered = applyPatch(pod(), { spec: { "$setElementOrder/containers": [{ name: "sidecar" }, { name: "app" }] } }, STRATEGIC, "Pod");
    expect(containers(reordered).map((c) => c.name)).toEqual(["sidecar", "app"]);
    const three = applyPatch(pod(), { spec: { containers: [{ name: "z", image: "z" }] } }, STRATEGIC, "Pod");
    const kept = applyPatch(three, { spec: { "$setElementOrder/containers": [{ name: "z" }, { name: "sidecar" }] } }, STRATEGIC, "Pod");
    expect(containers(kept).map((c) => c.name)).toEqual(["z", "app", "sidecar"]);
  });

  it("rejects a $setElementOrder list that contradicts the patch list", () => {
    const err = apiErrorOf(() =>
      applyPatch(pod(), { spec: { "$setElementOrder/containers": [{ name: "app" }], containers: [{ name: "sidecar", image: "p:2" }] } }, STRATEGIC, "Pod"),
    );
    expect(err.httpStatus).toBe(400);
  });

  it("replaces a whole list with a $patch: replace element", () => {
    const patched = applyPatch(pod(), { spec: { containers: [{ name: "solo", image: "s" }, { $patch: "replace" }] } }, STRATEGIC, "Pod");
    expect(patched.spec.containers).toEqual([{ name: "solo", image: "s" }]);
  });

  it("replaces or deletes a map with $patch", () => {
    const replaced = applyPatch(pod(), { metadata: { labels: { $patch: "replace", only: "1" } } }, STRATEGIC, "Pod");
    expect(replaced.metadata.labels).toEqual({ only: "1" });
    const deleted = applyPatch(pod(), { spec: { securityContext: { $patch: "delete" } } }, STRATEGIC, "Pod");
    expect(deleted.spec).not.toHaveProperty("securityContext");
  });

  it("keeps only $retainKeys fields before merging", () => {
    const deployment: KubeObject = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "d" },
      spec: { strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1 } } },
    };
    const patched = applyPatch(deployment, { spec: { strategy: { $retainKeys: ["type"], type: "Recreate" } } }, STRATEGIC, "Deployment");
    expect(patched.spec.strategy).toEqual({ type: "Recreate" });
    const err = apiErrorOf(() => applyPatch(deployment, { spec: { strategy: { $retainKeys: ["type"], rollingUpdate: {} } } }, STRATEGIC, "Deployment"));
    expect(err.httpStatus).toBe(400);
  });

  it("merges finalizers as a set and deletes from them with $deleteFromPrimitiveList", () => {
    const merged = applyPatch(pod(), { metadata: { finalizers: ["b.example.com/y", "c.example.com/z"] } }, STRATEGIC, "Pod");
    expect([...merged.metadata.finalizers!].sort()).toEqual(["a.example.com/x", "b.example.com/y", "c.example.com/z"]);
    const deleted = applyPatch(pod(), { metadata: { "$deleteFromPrimitiveList/finalizers": ["a.example.com/x"] } }, STRATEGIC, "Pod");
    expect(deleted.metadata.finalizers).toEqual(["b.example.com/y"]);
    expect(hasDirective(deleted)).toBe(false);
  });

  it("replaces lists without a merge key (tolerations) and merges conditions by type", () => {
    const patched = applyPatch(
      pod(),
      { spec: { tolerations: [{ key: "b", operator: "Exists" }] }, status: { conditions: [{ type: "Ready", status: "True" }] } },
      STRATEGIC,
      "Pod",
    );
    expect(patched.spec.tolerations).toEqual([{ key: "b", operator: "Exists" }]);
    expect(patched.status.conditions).toEqual([
      { type: "Ready", status: "True" },
      { type: "PodScheduled", status: "True" },
    ]);
  });

  it("merges container ports by containerPort and Service ports by port", () => {
    const patchedPod = applyPatch(pod(), { spec: { containers: [{ name: "app", ports: [{ containerPort: 8080, protocol: "TCP" }] }] } }, STRATEGIC, "Pod");
    expect(containers(patchedPod)[0]!.ports).toEqual([{ name: "http", containerPort: 8080, protocol: "TCP" }]);

    const service: KubeObject = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "orders" },
      spec: {
        selector: { app: "orders" },
        ports: [
          { name: "http", port: 80, targetPort: 8080 },
          { name: "admin", port: 9000 },
        ],
      },
    };
    const patchedService = applyPatch(service, { spec: { ports: [{ port: 80, targetPort: 9090 }] } }, STRATEGIC, "Service");
    expect(patchedService.spec.ports).toEqual([
      { name: "http", port: 80, targetPort: 9090 },
      { name: "admin", port: 9000 },
    ]);
  });

  it("merges owner references by uid and volumes by name", () => {
    const owned = pod();
    owned.metadata.ownerReferences = [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "u1" }];
    const patched = applyPatch(
      owned,
      {
        metadata: { ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "u1", controller: true }] },
        spec: { volumes: [{ name: "data", emptyDir: {} }] },
      },
      STRATEGIC,
      "Pod",
    );
    expect(patched.metadata.ownerReferences).toEqual([{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "u1", controller: true }]);
    expect(patched.spec.volumes).toEqual([{ name: "data", emptyDir: {} }]);
  });

  it("never leaves directives or nulls in subtrees the target did not have", () => {
    const patched = applyPatch(
      pod(),
      {
        metadata: { annotations: { gone: null, kept: "1" } },
        spec: {
          "$setElementOrder/initContainers": [{ name: "init" }],
          initContainers: [{ name: "init", image: "i", "$setElementOrder/env": [{ name: "A" }], env: [{ name: "A", value: "1" }] }],
        },
      },
      STRATEGIC,
      "Pod",
    );
    expect(patched.metadata.annotations).toEqual({ kept: "1" });
    expect(patched.spec.initContainers).toEqual([{ name: "init", image: "i", env: [{ name: "A", value: "1" }] }]);
    expect(hasDirective(patched)).toBe(false);
  });

  it("works through a Deployment's pod template", () => {
    const deployment: KubeObject = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "orders" },
      spec: {
        template: {
          spec: {
            containers: [
              { name: "app", image: "orders:1" },
              { name: "log", image: "log:1" },
            ],
          },
        },
      },
    };
    const patched = applyPatch(deployment, { spec: { template: { spec: { containers: [{ name: "app", image: "orders:2" }] } } } }, STRATEGIC, "Deployment");
    expect(patched.spec.template.spec.containers).toEqual([
      { name: "app", image: "orders:2" },
      { name: "log", image: "log:1" },
    ]);
  });

  it("rejects list items without their merge key and unknown directives with 400", () => {
    expect(apiErrorOf(() => applyPatch(pod(), { spec: { containers: [{ image: "x" }] } }, STRATEGIC, "Pod")).httpStatus).toBe(400);
    expect(apiErrorOf(() => applyPatch(pod(), { spec: { securityContext: { $patch: "explode" } } }, STRATEGIC, "Pod")).httpStatus).toBe(400);
    expect(apiErrorOf(() => applyPatch(pod(), { spec: { containers: [{ name: "app", $patch: "merge" }] } }, STRATEGIC, "Pod")).httpStatus).toBe(400);
    expect(apiErrorOf(() => applyPatch(pod(), [], STRATEGIC, "Pod")).httpStatus).toBe(400);
  });

  it("refuses strategic merge patch for custom resources with 415", () => {
    const widget: KubeObject = { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } };
    const err = apiErrorOf(() => applyPatch(widget, { spec: { a: 1 } }, STRATEGIC, "Widget"));
    expect(err.httpStatus).toBe(415);
    expect(err.message).toBe("strategic merge patch is not supported for custom resources, use merge patch");
  });
});

describe("isBuiltinKind", () => {
  it("knows the compiled-in kinds only", () => {
    for (const kind of ["Pod", "Service", "Deployment", "EndpointSlice", "CustomResourceDefinition", "TokenReview", "PersistentVolumeClaim"]) {
      expect(isBuiltinKind(kind), kind).toBe(true);
    }
    expect(isBuiltinKind("Widget")).toBe(false);
    expect(isBuiltinKind("pod")).toBe(false);
  });
});
