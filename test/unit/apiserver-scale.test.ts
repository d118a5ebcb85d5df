// The scale subresource's pure parts: the selector string kubectl and autoscalers read, and what a Scale write changes.
import { describe, expect, it } from "vitest";
import { scaled, selectorString, toScale } from "../../sandbox/apiserver/scale.ts";
import type { ApiError, KubeObject } from "../../sandbox/apiserver/types.ts";

const deployment: KubeObject = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "web", namespace: "shop", uid: "u1", resourceVersion: "7", creationTimestamp: "2026-01-01T00:00:00Z" },
  spec: { replicas: 3, selector: { matchLabels: { app: "web" } } },
  status: { replicas: 2 },
};

describe("selectorString", () => {
  it("writes requirements sorted by key, as labels.Selector.String()", () => {
    expect(
      selectorString({
        matchLabels: { tier: "front", app: "web" },
        matchExpressions: [
          { key: "zone", operator: "NotIn", values: ["b", "a"] },
          { key: "env", operator: "In", values: ["prod", "dev"] },
          { key: "canary", operator: "DoesNotExist" },
          { key: "team", operator: "Exists" },
        ],
      }),
    ).toBe("app=web,!canary,env in (dev,prod),team,tier=front,zone notin (a,b)");
    expect(selectorString(undefined)).toBe("");
    expect(selectorString({})).toBe("");
  });
});

describe("toScale and scaled", () => {
  it("shows spec.replicas as desired and status.replicas as observed, with the selector as a string", () => {
    expect(toScale(deployment)).toEqual({
      kind: "Scale",
      apiVersion: "autoscaling/v1",
      metadata: { name: "web", namespace: "shop", uid: "u1", resourceVersion: "7", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: { replicas: 3 },
      status: { replicas: 2, selector: "app=web" },
    });
    // Go omits a zero spec.replicas and always writes status.replicas.
    expect(toScale({ ...deployment, spec: { replicas: 0 }, status: {} })).toMatchObject({ spec: {}, status: { replicas: 0 } });
  });

  it("changes only spec.replicas, refuses negatives, stale resourceVersions and other kinds", () => {
    const next = scaled(
      deployment,
      { apiVersion: "autoscaling/v1", kind: "Scale", metadata: { name: "web", resourceVersion: "7" }, spec: { replicas: 5 } },
      "deployments",
      "apps",
    );
    expect(next.spec).toEqual({ replicas: 5, selector: { matchLabels: { app: "web" } } });
    expect(deployment.spec.replicas).toBe(3);
    expect(scaled(deployment, { spec: {} }, "deployments", "apps").spec.replicas).toBe(0);
    const err = (body: unknown) => {
      try {
        scaled(deployment, body, "deployments", "apps");
      } catch (e) {
        return e as ApiError;
      }
      throw new Error("accepted");
    };
    expect(err({ spec: { replicas: -1 } }).message).toBe(
      'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0',
    );
    expect(err({ spec: { replicas: "3" } }).httpStatus).toBe(422);
    expect(err({ metadata: { resourceVersion: "6" }, spec: { replicas: 1 } }).httpStatus).toBe(409);
    expect(err({ metadata: { name: "other" }, spec: { replicas: 1 } }).httpStatus).toBe(400);
    expect(err({ kind: "Deployment", spec: { replicas: 1 } }).httpStatus).toBe(400);
    expect(err([1]).httpStatus).toBe(400);
  });
});
