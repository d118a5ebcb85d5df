// Leader-election rules on a fake clock: expiry by local observation (clock skew), renew deadline, release, settings.
import pino from "pino";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeRequestError, type KubeObject } from "../../kube/client.ts";
import { LeaderElectionError, LeaderElector, type LeaderElectorOptions, microTime, readRecord } from "../../controller/leader/index.ts";

const log = pino({ level: "silent" });
const PATH = "/apis/coordination.k8s.io/v1/namespaces/ambit-system/leases/ambit-controller";
const COLLECTION = "/apis/coordination.k8s.io/v1/namespaces/ambit-system/leases";

/** One Lease behind the LeaseClient interface, with resourceVersion checks and switchable faults. */
class FakeLeaseApi {
  lease: KubeObject | undefined;
  rv = 0;
  mode: "ok" | "fail" | "hang" = "ok";
  readonly calls: string[] = [];

  request = <T>(method: string, path: string, body?: unknown): Promise<T> => {
    this.calls.push(`${method} ${path}`);
    if (this.mode === "hang") return new Promise<T>(() => {});
    if (this.mode === "fail") return Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:6443"));
    try {
      return Promise.resolve(this.#handle(method, path, body) as T);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  };

  /** Writes a record as another replica (or a person) would, bumping the resourceVersion. */
  write(spec: Record<string, unknown>): void {
    this.lease = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "ambit-controller", namespace: "ambit-system", resourceVersion: String(++this.rv) },
      spec,
    };
  }

  #handle(method: string, path: string, body: unknown): unknown {
    const obj = structuredClone(body) as KubeObject;
    if (method === "POST" && path === COLLECTION) {
      if (this.lease) throw new KubeRequestError(409, "AlreadyExists", "leases already exists");
      this.lease = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
      return structuredClone(this.lease);
    }
    if (path !== PATH) throw new KubeRequestError(404, "NotFound", "not found");
    if (!this.lease) throw new KubeRequestError(404, "NotFound", "leases not found");
    if (method === "GET") return structuredClone(this.lease);
    if (method === "PUT") {
      if (obj.metadata.resourceVersion !== this.lease.metadata.resourceVersion) throw new KubeRequestError(409, "Conflict", "the object has been modified");
      this.lease = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
      return structuredClone(this.lease);
    }
    throw new KubeRequestError(405, "MethodNotAllowed", method);
  }
}

describe("leader election rules", () => {
  let api: FakeLeaseApi;
  let electors: LeaderElector[];
  const make = (overrides: Partial<LeaderElectorOptions> = {}) => {
    const e = new LeaderElector({
      client: api,
      identity: "me",
      leaseDurationMs: 1000,
      renewDeadlineMs: 600,
      retryPeriodMs: 200,
      log,
      now: () => Date.now(),
      ...overrides,
    });
    electors.push(e);
    return e;
  };

  beforeEach(() => {
    vi.useFakeTimers({ now: Date.UTC(2025, 0, 1) });
    api = new FakeLeaseApi();
    electors = [];
  });
  afterEach(async () => {
    api.mode = "ok";
    await Promise.all(electors.map((e) => e.stop({ release: false })));
    vi.useRealTimers();
  });

  it("writes MicroTime with six fractional digits", () => {
    expect(microTime(Date.UTC(2006, 0, 2, 15, 4, 5, 7))).toBe("2006-01-02T15:04:05.007000Z");
  });

  it("rejects settings that could let two replicas lead at once", () => {
    const bad: Array<Partial<LeaderElectorOptions>> = [
      { leaseDurationMs: 600, renewDeadlineMs: 600 },
      { renewDeadlineMs: 240, retryPeriodMs: 200 },
      { leaseDurationMs: 900, renewDeadlineMs: 500, retryPeriodMs: 100 },
      { identity: "" },
      { retryPeriodMs: -1 },
    ];
    for (const opts of bad) {
      let caught: unknown;
      try {
        make(opts);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(LeaderElectionError);
      expect((caught as LeaderElectionError).code).toBe("AMBIT_E_LEADER_CONFIG");
    }
  });

  it("creates an absent lease, renews it keeping acquireTime, and reports through the gauge and callbacks", async () => {
    const registry = new Registry();
    const seen: string[] = [];
    const e = make({ registry, onNewLeader: (id) => seen.push(id) });
    e.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(e.isLeader()).toBe(true);
    const first = readRecord(api.lease);
    expect(first).toMatchObject({ holderIdentity: "me", leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(first.renewTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    await vi.advanceTimersByTimeAsync(1000);
    const later = readRecord(api.lease);
    expect(later.acquireTime).toBe(first.acquireTime);
    expect(later.renewTime).not.toBe(first.renewTime);
    expect(later.leaseTransitions).toBe(0);
    // The leader renews on top of what it last wrote, without a read each time.
    expect(api.calls.filter((c) => c.startsWith("GET")).length).toBe(1);
    expect((await registry.getSingleMetric("ambit_controller_leader")!.get()).values[0]!.value).toBe(1);
    expect(seen).toEqual(["me"]);
    expect(e.status()).toMatchObject({ identity: "me", leader: "me", isLeader: true, lease: "ambit-system/ambit-controller" });
  });

  it("judges expiry from when it saw the record change, not from the holder's renewTime (clock skew)", async () => {
    // The holder's clock is an hour behind: by renewTime its lease expired long ago, yet it is being renewed.
    const skewed = (ms: number) => microTime(ms - 3600_000);
    const holderRecord = (renewMs: number) => ({
      holderIdentity: "other",
      leaseDurationSeconds: 1,
      acquireTime: skewed(0),
      renewTime: skewed(renewMs),
      leaseTransitions: 4,
    });
    api.write(holderRecord(Date.now()));
    const leaders: string[] = [];
    const e = make({ onNewLeader: (id) => leaders.push(id) });
    e.start();
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(250);
      api.write(holderRecord(Date.now()));
    }
    expect(e.isLeader()).toBe(false);
    expect(e.leader()).toBe("other");
    // The holder stops renewing: the takeover comes a lease duration after the last change was observed.
    const lastChange = Date.now();
    await vi.advanceTimersByTimeAsync(900);
    expect(e.isLeader()).toBe(false);
    await vi.advanceTimersByTimeAsync(600);
    expect(e.isLeader()).toBe(true);
    const rec = readRecord(api.lease);
    expect(rec).toMatchObject({ holderIdentity: "me", leaseTransitions: 5 });
    expect(Date.parse(rec.acquireTime!)).toBeGreaterThanOrEqual(lastChange + 1000);
    expect(leaders).toEqual(["other", "me"]);
  });

  it("does not wait out a lease whose holder's clock runs ahead either", async () => {
    api.write({ holderIdentity: "other", leaseDurationSeconds: 1, renewTime: microTime(Date.now() + 3600_000), leaseTransitions: 0 });
    const e = make();
    e.start();
    await vi.advanceTimersByTimeAsync(1500);
    expect(e.isLeader()).toBe(true);
  });

  it("takes a released lease (empty holder) at once", async () => {
    api.write({ holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(Date.now()), leaseTransitions: 2 });
    const e = make();
    e.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(e.isLeader()).toBe(true);
    expect(readRecord(api.lease)).toMatchObject({ holderIdentity: "me", leaseTransitions: 3 });
  });

  it("steps down by the renew deadline when the API server stops answering, then campaigns again", async () => {
    const events: string[] = [];
    let signal: AbortSignal | undefined;
    const e = make({
      onStartedLeading: (s) => {
        signal = s;
        events.push("started");
      },
      onStoppedLeading: () => events.push("stopped"),
    });
    e.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(e.isLeader()).toBe(true);
    const lastGood = Date.now();
    api.mode = "hang";
    await vi.advanceTimersByTimeAsync(550);
    expect(events).toEqual(["started"]);
    await vi.advanceTimersByTimeAsync(100);
    // Requests never answered: the per-attempt timeout, not the HTTP client's 30 s, ended leadership.
    expect(e.isLeader()).toBe(false);
    expect(events).toEqual(["started", "stopped"]);
    expect(signal?.aborted).toBe(true);
    expect(Date.now() - lastGood).toBeLessThan(1000);
    // The lease still names us and nobody took it: once the server answers again we lead again.
    api.mode = "ok";
    await vi.advanceTimersByTimeAsync(1500);
    expect(e.isLeader()).toBe(true);
    expect(events).toEqual(["started", "stopped", "started"]);
    expect(readRecord(api.lease).leaseTransitions).toBe(0);
  });

  it("steps down when failing requests outlast the deadline", async () => {
    const events: string[] = [];
    const e = make({ onStoppedLeading: () => events.push("stopped") });
    e.start();
    await vi.advanceTimersByTimeAsync(0);
    api.mode = "fail";
    await vi.advanceTimersByTimeAsync(700);
    expect(e.isLeader()).toBe(false);
    expect(events).toEqual(["stopped"]);
  });

  it("steps down at once when it finds the lease taken by someone else", async () => {
    const events: string[] = [];
    const e = make({ onStoppedLeading: () => events.push("stopped") });
    e.start();
    await vi.advanceTimersByTimeAsync(0);
    api.write({ ...api.lease!.spec, holderIdentity: "intruder" });
    await vi.advanceTimersByTimeAsync(250);
    expect(e.isLeader()).toBe(false);
    expect(e.leader()).toBe("intruder");
    expect(events).toEqual(["stopped"]);
  });

  it("releases on stop unless told not to", async () => {
    const e = make();
    e.start();
    await vi.advanceTimersByTimeAsync(500);
    await e.stop();
    expect(readRecord(api.lease)).toMatchObject({ holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(e.isLeader()).toBe(false);

    const f = make({ identity: "crashy" });
    f.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(readRecord(api.lease)).toMatchObject({ holderIdentity: "crashy", leaseTransitions: 1 });
    await f.stop({ release: false });
    expect(readRecord(api.lease).holderIdentity).toBe("crashy");
  });

  it("keeps leading when a callback throws", async () => {
    const e = make({
      onStartedLeading: () => {
        throw new Error("boom");
      },
      onNewLeader: () => Promise.reject(new Error("async boom")) as unknown as void,
    });
    e.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(e.isLeader()).toBe(true);
  });
});
