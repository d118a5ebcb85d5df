// Capture intent: namespace enrollment, pod opt-out, and pods the mesh must never capture.
import { describe, expect, it } from "vitest";
import { captureIntent } from "../../agent/enrollment/index.ts";
import type { KubeObject } from "../../kube/client.ts";

const ns = (labels: Record<string, string> = {}): KubeObject => ({ apiVersion: "v1", kind: "Namespace", metadata: { name: "demo", labels } });
const pod = (extra: { labels?: Record<string, string>; hostNetwork?: boolean; deleting?: boolean; phase?: string } = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "p", namespace: "demo", labels: extra.labels ?? {}, ...(extra.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}) },
  spec: { hostNetwork: extra.hostNetwork ?? false },
  status: { phase: extra.phase ?? "Running" },
});
const enrolled = ns({ "ambit.dev/dataplane-mode": "ambient" });

describe("captureIntent", () => {
  it("captures pods of an enrolled namespace", () => {
    expect(captureIntent(enrolled, pod())).toEqual({ capture: true, reason: "namespace demo has ambit.dev/dataplane-mode=ambient" });
  });
  it("tells how to enroll a namespace that is not", () => {
    const intent = captureIntent(ns(), pod());
    expect(intent.capture).toBe(false);
    expect(intent.reason).toContain("label it ambit.dev/dataplane-mode=ambient");
  });
  it("respects the pod opt-out label", () => {
    expect(captureIntent(enrolled, pod({ labels: { "ambit.dev/dataplane-mode": "none" } })).capture).toBe(false);
  });
  it("never captures host-network, terminating or finished pods", () => {
    expect(captureIntent(enrolled, pod({ hostNetwork: true })).capture).toBe(false);
    expect(captureIntent(enrolled, pod({ deleting: true })).capture).toBe(false);
    expect(captureIntent(enrolled, pod({ phase: "Succeeded" })).capture).toBe(false);
  });
  it("does not capture while the namespace is unknown", () => {
    expect(captureIntent(undefined, pod()).capture).toBe(false);
  });
});
