// Two controller replicas electing a leader through a real Lease on the sandbox API server.
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LeaderElector } from "../../controller/election/index.ts";
import type { KubeClient } from "../../kube/client.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const log = pino({ level: "silent" });
const LEASE = "/apis/coordination.k8s.io/v1/namespaces/ambit-system/leases/ambit-controller";

describe("leader election", () => {
  let t: TestApiServer;
  const electors: LeaderElector[] = [];
  const make = (identity: string, client: KubeClient = t.client, events: string[] = []) => {
    const e = new LeaderElector({
      client,
      namespace: "ambit-system",
      name: "ambit-controller",
      identity,
      leaseDurationMs: 2000,
      renewDeadlineMs: 1500,
      retryPeriodMs: 200,
      log,
      onStartedLeading: () => events.push("started"),
      onStoppedLeading: () => events.push("stopped"),
    });
    electors.push(e);
    return e;
  };
  const holder = async () => (await t.client.get(LEASE)).spec?.holderIdentity as string;

  beforeEach(async () => {
    t = await startTestApiServer();
    await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "ambit-system" } });
  });
  afterEach(async () => {
    for (const e of electors.splice(0)) await e.stop();
    await t.close();
  });

  it("elects exactly one leader, named in the Lease", async () => {
    const a = make("a");
    const b = make("b");
    a.start();
    b.start();
    await expect.poll(() => [a.isLeader(), b.isLeader()].filter(Boolean).length, { timeout: 5000 }).toBe(1);
    // Stays single through several renewals.
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 200));
      expect([a.isLeader(), b.isLeader()].filter(Boolean).length).toBe(1);
    }
    expect(await holder()).toBe(a.isLeader() ? "a" : "b");
  });

  it("hands over at once when the leader stops and releases the lease", async () => {
    const a = make("a");
    a.start();
    await expect.poll(() => a.isLeader(), { timeout: 5000 }).toBe(true);
    const b = make("b");
    b.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(b.isLeader()).toBe(false);
    await a.stop();
    await expect.poll(() => b.isLeader(), { timeout: 5000 }).toBe(true);
    const lease = await t.client.get(LEASE);
    expect(lease.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
  });

  it("waits for the lease to expire when the leader vanishes without releasing it", async () => {
    const a = make("a");
    a.start();
    await expect.poll(() => a.isLeader(), { timeout: 5000 }).toBe(true);
    // "Crash": it stops renewing and leaves the lease held.
    await a.stop({ release: false });
    const stopped = Date.now();
    const b = make("b");
    b.start();
    await new Promise((r) => setTimeout(r, 800));
    expect(b.isLeader()).toBe(false);
    await expect.poll(() => b.isLeader(), { timeout: 8000 }).toBe(true);
    expect(Date.now() - stopped).toBeGreaterThanOrEqual(2000);
  });

  it("a leader that cannot reach the API server steps down after the renew deadline", async () => {
    const events: string[] = [];
    const a = make("a", t.client, events);
    a.start();
    await expect.poll(() => a.isLeader(), { timeout: 5000 }).toBe(true);
    await t.close();
    await expect.poll(() => a.isLeader(), { timeout: 8000 }).toBe(false);
    expect(events).toEqual(["started", "stopped"]);
    t = await startTestApiServer();
  });
});

