// Enrollment against a real API server: label changes capture and release running pods; CNI ADD decides at once.
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CaptureDriver, EnrollmentController, type PodRef } from "../../agent/enrollment/index.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

/** Records what enrollment asked for; stands in for iptables and listeners, which have their own tests. */
class RecordingDriver implements CaptureDriver {
  readonly calls: string[] = [];
  inspect?: (pod: PodRef) => Promise<"captured" | "broken" | "gone">;
  readonly captured = new Set<string>();
  /** The addresses each pod was captured with: the source address of everything it sends. */
  readonly ips = new Map<string, string[]>();
  async capture(pod: PodRef) {
    this.calls.push(`capture ${pod.namespace}/${pod.name} ${pod.netnsPath}`);
    this.ips.set(`${pod.namespace}/${pod.name}`, pod.ips);
    this.captured.add(`${pod.namespace}/${pod.name}`);
  }
  async release(pod: PodRef) {
    this.calls.push(`release ${pod.namespace}/${pod.name}`);
    this.captured.delete(`${pod.namespace}/${pod.name}`);
  }
}

describe("EnrollmentController", () => {
  let t: TestApiServer;
  let driver: RecordingDriver;
  let controller: EnrollmentController;

  const createPod = async (namespace: string, name: string, node: string, labels: Record<string, string> = {}) => {
    await t.client.create(`/api/v1/namespaces/${namespace}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels },
      spec: { nodeName: node, containers: [{ name: "c", image: "i" }] },
    });
    await t.client.mergePatch(`/api/v1/namespaces/${namespace}/pods/${name}/status`, { status: { phase: "Running", podIP: `10.244.1.${name.length}` } });
  };
  const label = (namespace: string, value: string | null) =>
    t.client.mergePatch(`/api/v1/namespaces/${namespace}`, { metadata: { labels: { "ambit.dev/dataplane-mode": value } } });
  const annotation = async (namespace: string, name: string) =>
    (await t.client.get(`/api/v1/namespaces/${namespace}/pods/${name}`)).metadata.annotations?.["ambit.dev/redirection"];

  beforeEach(async () => {
    t = await startTestApiServer();
    driver = new RecordingDriver();
    await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } });
    controller = new EnrollmentController({
      client: t.client,
      nodeName: "node-1",
      driver,
      resolveNetns: async (pod) => `/run/netns/test-${pod.metadata.name}`,
      log: pino({ level: "silent" }),
    });
  });
  afterEach(async () => {
    await controller.stop();
    await t.close();
  });

  it("captures running pods when the namespace is labelled and releases them when the label goes", async () => {
    await createPod("demo", "orders", "node-1");
    await createPod("demo", "elsewhere", "node-2");
    await controller.start();
    await expect.poll(() => annotation("demo", "orders")).toBe("disabled");
    expect(driver.calls).toEqual([]);

    await label("demo", "ambient");
    await expect.poll(() => [...driver.captured]).toEqual(["demo/orders"]);
    await expect.poll(() => annotation("demo", "orders")).toBe("enabled");
    expect(driver.calls).toEqual(["capture demo/orders /run/netns/test-orders"]);
    // Pods of other nodes belong to their own agents.
    expect(await annotation("demo", "elsewhere")).toBeUndefined();

    await label("demo", null);
    await expect.poll(() => [...driver.captured]).toEqual([]);
    await expect.poll(() => annotation("demo", "orders")).toBe("disabled");
  });

  it("respects the pod opt-out label, also when added later", async () => {
    await label("demo", "ambient");
    await createPod("demo", "a", "node-1");
    await createPod("demo", "b", "node-1", { "ambit.dev/dataplane-mode": "none" });
    await controller.start();
    await expect.poll(() => [...driver.captured].sort()).toEqual(["demo/a"]);
    await t.client.mergePatch("/api/v1/namespaces/demo/pods/a", { metadata: { labels: { "ambit.dev/dataplane-mode": "none" } } });
    await expect.poll(() => [...driver.captured]).toEqual([]);
    expect(controller.snapshot().find((p) => p.name === "a")?.reason).toContain("opted out");
  });

  it("decides at CNI ADD time, before any watch event; CNI DEL releases only a pod the API confirms gone", async () => {
    await label("demo", "ambient");
    await controller.start();
    await t.client.create("/api/v1/namespaces/demo/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "fresh" },
      spec: { nodeName: "node-1", containers: [{ name: "c", image: "i" }] },
    });
    const pod = await t.client.get("/api/v1/namespaces/demo/pods/fresh");
    const uid = pod.metadata.uid as string;
    const intent = await controller.podAdded({
      namespace: "demo",
      name: "fresh",
      uid,
      netnsPath: "/run/netns/from-cni",
      ips: ["10.244.1.7"],
      containerId: "ctr-1",
    });
    expect(intent.capture).toBe(true);
    expect(driver.calls).toContain("capture demo/fresh /run/netns/from-cni");
    // The pod's status has no address yet at CNI ADD: the one CNI gave is what it is captured with.
    expect(pod.status?.podIP).toBeUndefined();
    expect(driver.ips.get("demo/fresh")).toEqual(["10.244.1.7"]);
    const del = (over: { uid?: string; containerId?: string } = {}) =>
      controller.cniDeleted({ namespace: "demo", name: "fresh", uid, containerId: "ctr-1", ...over });

    // The pod still runs: a DEL (misfired, stale, or sent by anyone who reaches the socket) releases nothing.
    expect(await del()).toBe("pod-still-runs");
    expect(await del({ uid: "someone-else" })).toBe("other-incarnation");
    expect(await del({ containerId: "ctr-old" })).toBe("other-incarnation");
    expect(driver.captured.has("demo/fresh")).toBe(true);
    expect(driver.calls.filter((c) => c.startsWith("release"))).toEqual([]);

    // Being deleted (or gone): released.
    await t.client.delete("/api/v1/namespaces/demo/pods/fresh", { gracePeriodSeconds: 30 });
    expect(await del()).toBe("released");
    expect(driver.calls.at(-1)).toBe("release demo/fresh");
    expect(await del()).toBe("not-tracked");
  });

  it("keeps a pod captured when the API cannot confirm a CNI DEL", async () => {
    await label("demo", "ambient");
    await controller.start();
    await t.client.create("/api/v1/namespaces/demo/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p" },
      spec: { nodeName: "node-1", containers: [{ name: "c", image: "i" }] },
    });
    const uid = (await t.client.get("/api/v1/namespaces/demo/pods/p")).metadata.uid as string;
    await controller.podAdded({ namespace: "demo", name: "p", uid, netnsPath: "/run/netns/p", ips: ["10.244.1.8"] });
    await controller.stop();
    await t.api.close();
    expect(await controller.cniDeleted({ namespace: "demo", name: "p", uid, containerId: "" })).toBe("api-unavailable");
    expect(driver.captured.has("demo/p")).toBe(true);
  });

  it("a failed CNI ADD leaves nothing behind: the pod's watch events do not capture it with that attempt's address; the ADD that succeeds does", async () => {
    await label("demo", "ambient");
    const driver = new RecordingDriver();
    const capture = driver.capture.bind(driver);
    let caDown = true;
    driver.capture = async (pod) => {
      if (caDown) throw new Error("cannot reach the CA");
      return capture(pod);
    };
    // As the agent's: a pod's netns is found by its addresses, and one without any is not found.
    const retrying = new EnrollmentController({
      client: t.client,
      nodeName: "node-1",
      driver,
      resolveNetns: async (_pod, ips) => (ips.length > 0 ? `/run/netns/by-address-${ips[0]}` : undefined),
      log: pino({ level: "silent" }),
    });
    await retrying.start();
    try {
      await t.client.create("/api/v1/namespaces/demo/pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "retried" },
        spec: { nodeName: "node-1", containers: [{ name: "c", image: "i" }] },
      });
      const uid = (await t.client.get("/api/v1/namespaces/demo/pods/retried")).metadata.uid as string;
      const add = (attempt: number, ip: string) =>
        retrying.podAdded({ namespace: "demo", name: "retried", uid, netnsPath: `/run/netns/attempt-${attempt}`, ips: [ip], containerId: `ctr-${attempt}` });
      await expect(add(1, "10.244.1.5")).rejects.toThrow("cannot reach the CA");
      caDown = false;
      // A watch event for the pod once the CA is back: it waits for the pod's network instead of capturing attempt 1's.
      await t.client.mergePatch("/api/v1/namespaces/demo/pods/retried", { metadata: { labels: { touched: "yes" } } });
      await expect
        .poll(() => retrying.snapshot().find((p) => p.name === "retried")?.reason ?? "", { timeout: 5_000 })
        .toContain("waiting for the pod's network namespace");
      expect(driver.calls).toEqual([]);
      await add(2, "10.244.1.6");
      expect(driver.calls).toEqual(["capture demo/retried /run/netns/attempt-2"]);
      expect(driver.ips.get("demo/retried")).toEqual(["10.244.1.6"]);
    } finally {
      await retrying.stop();
    }
  });

  it("verifies captured pods: repairs missing rules or listeners, forgets pods whose netns is gone", async () => {
    const states = new Map<string, "captured" | "broken" | "gone">();
    driver.inspect = async (pod: PodRef) => states.get(pod.name) ?? "captured";
    await label("demo", "ambient");
    await createPod("demo", "ok", "node-1");
    await createPod("demo", "tampered", "node-1");
    await createPod("demo", "vanished", "node-1");
    await controller.start();
    await expect.poll(() => [...driver.captured].sort()).toEqual(["demo/ok", "demo/tampered", "demo/vanished"]);
    driver.calls.length = 0;
    states.set("tampered", "broken");
    states.set("vanished", "gone");
    expect(await controller.verifyCaptured()).toEqual({ repaired: ["demo/tampered"], gone: ["demo/vanished"] });
    expect(driver.calls.filter((c) => !c.startsWith("capture demo/vanished")).sort()).toEqual([
      "capture demo/tampered /run/netns/test-tampered",
      "release demo/vanished",
    ]);
    states.clear();
    expect(await controller.verifyCaptured()).toMatchObject({ repaired: [] });
  });

  it("CNI GC releases only pods whose attachment is gone and whose pod the API no longer shows", async () => {
    await label("demo", "ambient");
    await controller.start();
    // "stale" is bound to a node this agent's informer does not watch, so only GC can notice it is gone.
    const add = async (name: string, node = "node-1") => {
      await t.client.create("/api/v1/namespaces/demo/pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name },
        spec: { nodeName: node, containers: [{ name: "c", image: "i" }] },
      });
      const pod = await t.client.get(`/api/v1/namespaces/demo/pods/${name}`);
      await controller.podAdded({
        namespace: "demo",
        name,
        uid: pod.metadata.uid as string,
        netnsPath: `/run/netns/${name}`,
        ips: ["10.244.1.9"],
        containerId: `ctr-${name}`,
      });
    };
    await add("kept");
    await add("stale", "node-9");
    await add("live");
    // "stale" vanished without a CNI DEL reaching the agent; "live" is missing from the list but still exists.
    await t.client.delete("/api/v1/namespaces/demo/pods/stale", { gracePeriodSeconds: 0 });
    const released = await controller.garbageCollect([{ containerID: "ctr-kept" }]);
    expect(released).toEqual(["demo/stale"]);
    expect(driver.captured.has("demo/stale")).toBe(false);
    expect(driver.captured.has("demo/kept")).toBe(true);
    expect(driver.captured.has("demo/live")).toBe(true);
  });
});
