// Controller replicas electing a leader through a real Lease on the sandbox API server, with faults injected on loopback.
import net from "node:net";
import { performance } from "node:perf_hooks";
import { KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LeaderElector, type LeaderElectorOptions, type LeaseClient, readRecord } from "../../controller/leader/index.ts";
import { KubeClient, KubeRequestError } from "../../kube/client.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const log = pino({ level: "silent" });
const LEASE = "/apis/coordination.k8s.io/v1/namespaces/ambit-system/leases/ambit-controller";
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/ambit-system/leases";
/** Short timings so the file runs in seconds; their ratios are client-go's (lease > deadline > 1.2 × retry). */
const FAST = { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 200 };
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A TCP relay on loopback in front of the API server, so one replica can lose the server while the other keeps
 * it: `blackhole` swallows bytes (requests hang, as behind a dead route), `down` refuses and resets connections.
 */
class TcpProxy {
  readonly port: number;
  #server: net.Server;
  readonly #target: URL;
  readonly #sockets = new Set<net.Socket>();
  #blackhole = false;

  private constructor(server: net.Server, port: number, target: URL) {
    this.#server = server;
    this.port = port;
    this.#target = target;
  }

  static async start(target: string): Promise<TcpProxy> {
    const url = new URL(target);
    const holder: { proxy?: TcpProxy } = {};
    const server = net.createServer((s) => holder.proxy?.relay(s));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    holder.proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, url);
    return holder.proxy;
  }

  relay(client: net.Socket): void {
    const upstream = net.connect(Number(this.#target.port), this.#target.hostname);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.#sockets.add(from);
      from.on("data", (chunk: Buffer) => {
        if (!this.#blackhole) to.write(chunk);
      });
      from.on("error", () => to.destroy());
      from.on("close", () => {
        this.#sockets.delete(from);
        to.destroy();
      });
    }
  }

  blackhole(): void {
    this.#blackhole = true;
  }

  /** Ends the blackhole; connections that lost bytes are reset so clients reconnect cleanly. */
  heal(): void {
    this.#blackhole = false;
    this.#resetAll();
  }

  async down(): Promise<void> {
    this.#resetAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async up(): Promise<void> {
    const server = net.createServer((s) => this.relay(s));
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.#server = server;
  }

  async close(): Promise<void> {
    this.#resetAll();
    if (this.#server.listening) await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #resetAll(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }
}

/** Holds the first `count` requests of `method` until all have arrived (or 2 s pass), then lets them race. */
function racingClient(inner: LeaseClient, method: string, gate: { count: number; waiting: Array<() => void>; conflicts: number }): LeaseClient {
  return {
    request: async <T>(m: string, path: string, body?: unknown): Promise<T> => {
      if (m === method && gate.count > 0) {
        gate.count--;
        const go = new Promise<void>((resolve) => gate.waiting.push(resolve));
        if (gate.count === 0) for (const release of gate.waiting) release();
        await Promise.race([go, delay(2000)]);
      }
      try {
        return await inner.request<T>(m, path, body);
      } catch (err) {
        if (err instanceof KubeRequestError && err.status === 409) gate.conflicts++;
        throw err;
      }
    },
  };
}

interface Replica {
  elector: LeaderElector;
  /** Callback events with monotonic and wall-clock times. */
  events: Array<{ event: "started" | "stopped"; at: number; wall: number }>;
  signals: AbortSignal[];
}

describe("leader election against the sandbox API server", () => {
  let t: TestApiServer;
  let replicas: Replica[];
  let proxies: TcpProxy[];
  let extraClients: KubeClient[];
  let overlap: string[];
  let sampler: NodeJS.Timeout;

  const make = (identity: string, client: LeaseClient = t.client, opts: Partial<LeaderElectorOptions> = {}): Replica => {
    const r: Replica = { elector: undefined as unknown as LeaderElector, events: [], signals: [] };
    r.elector = new LeaderElector({
      client,
      namespace: "ambit-system",
      name: "ambit-controller",
      identity,
      ...FAST,
      log,
      onStartedLeading: (signal) => {
        r.signals.push(signal);
        r.events.push({ event: "started", at: performance.now(), wall: Date.now() });
      },
      onStoppedLeading: () => r.events.push({ event: "stopped", at: performance.now(), wall: Date.now() }),
      ...opts,
    });
    replicas.push(r);
    return r;
  };
  const lease = async () => readRecord(await t.client.get(LEASE));
  const leaders = () => replicas.filter((r) => r.elector.isLeader());
  /** A client for the same API server reached through a fresh proxy. */
  const viaProxy = async (): Promise<{ proxy: TcpProxy; client: KubeClient }> => {
    const proxy = await TcpProxy.start(t.api.url);
    proxies.push(proxy);
    const kc = new KubeConfig();
    kc.loadFromString(t.api.kubeconfig().replace(t.api.url, `https://127.0.0.1:${proxy.port}`));
    const client = new KubeClient(kc);
    extraClients.push(client);
    return { proxy, client };
  };

  beforeEach(async () => {
    replicas = [];
    proxies = [];
    extraClients = [];
    overlap = [];
    t = await startTestApiServer();
    await t.client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "ambit-system" } });
    // The safety property, checked throughout every test: never two replicas that believe they lead.
    sampler = setInterval(() => {
      const now = leaders();
      if (now.length > 1) overlap.push(now.map((r) => r.elector.identity).join("+"));
    }, 5);
  });
  afterEach(async () => {
    clearInterval(sampler);
    await Promise.all(replicas.map((r) => r.elector.stop({ release: false })));
    for (const p of proxies) await p.close();
    for (const c of extraClients) c.close();
    await t.close();
    expect(overlap).toEqual([]);
  });

  it("elects exactly one leader, names it in the Lease and keeps it through renewals", async () => {
    const a = make("a");
    const b = make("b");
    a.elector.start();
    b.elector.start();
    await expect.poll(() => leaders().length, { timeout: 5000 }).toBe(1);
    const leader = leaders()[0]!;
    const follower = leader === a ? b : a;
    // Longer than a lease duration: only renewals can keep the same leader in place. (A poll, not a single look:
    // a renewal slowed past the 600 ms deadline on a loaded machine makes isLeader() false until the next one.)
    await delay(1500);
    await expect.poll(() => leaders().map((r) => r.elector.identity), { timeout: 2000 }).toEqual([leader.elector.identity]);
    const rec = await lease();
    expect(rec).toMatchObject({ holderIdentity: leader.elector.identity, leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(rec.renewTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    expect(Date.parse(rec.renewTime!)).toBeGreaterThan(Date.parse(rec.acquireTime!));
    expect(follower.elector.leader()).toBe(leader.elector.identity);
    expect(follower.events).toEqual([]);
  });

  it("hands over without waiting out the lease when the leader stops and releases it; transitions count holder changes", async () => {
    // A long lease, so a handover well inside it can only come from the release.
    const slow = { leaseDurationMs: 10_000, renewDeadlineMs: 3000, retryPeriodMs: 200 };
    const a = make("a", t.client, slow);
    a.elector.start();
    await expect.poll(() => a.elector.isLeader(), { timeout: 5000 }).toBe(true);
    const b = make("b", t.client, slow);
    b.elector.start();
    await expect.poll(() => b.elector.leader(), { timeout: 5000 }).toBe("a");
    const before = await lease();
    expect(before).toMatchObject({ holderIdentity: "a", leaseTransitions: 0 });

    const stopped = performance.now();
    await a.elector.stop();
    expect(a.events.map((e) => e.event)).toEqual(["started", "stopped"]);
    await expect.poll(() => b.elector.isLeader(), { timeout: 8000 }).toBe(true);
    expect(b.events[0]!.at - stopped).toBeLessThan(slow.leaseDurationMs);
    const after = await lease();
    expect(after).toMatchObject({ holderIdentity: "b", leaseTransitions: 1, leaseDurationSeconds: 10 });
    expect(after.acquireTime).not.toBe(before.acquireTime);

    // Once more: b hands over to a newcomer.
    const c = make("c", t.client, slow);
    c.elector.start();
    await expect.poll(() => c.elector.leader(), { timeout: 5000 }).toBe("b");
    await b.elector.stop();
    await expect.poll(() => c.elector.isLeader(), { timeout: 8000 }).toBe(true);
    expect(await lease()).toMatchObject({ holderIdentity: "c", leaseTransitions: 2 });
  });

  it("waits out the lease before taking over from a leader that vanished without releasing it", async () => {
    const a = make("a");
    a.elector.start();
    await expect.poll(() => a.elector.isLeader(), { timeout: 5000 }).toBe(true);
    const b = make("b");
    b.elector.start();
    await expect.poll(() => b.elector.leader(), { timeout: 5000 }).toBe("a");
    // A live leader's renewals keep the follower out well past one lease duration.
    await delay(1500);
    expect(b.elector.isLeader()).toBe(false);

    // "Crash": stops renewing and leaves the lease naming it.
    await a.elector.stop({ release: false });
    const last = await lease();
    expect(last.holderIdentity).toBe("a");
    await expect.poll(() => b.elector.isLeader(), { timeout: 8000 }).toBe(true);
    // b may only take over a lease duration after the last renewal it could have seen: a lower bound, so load
    // on the machine can only widen it. (Both clocks are this machine's; 50 ms covers wall vs monotonic drift.)
    expect(b.events[0]!.wall - Date.parse(last.renewTime!)).toBeGreaterThanOrEqual(FAST.leaseDurationMs - 50);
    expect(await lease()).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
  });

  it("a leader whose API server stops answering steps down by the renew deadline, before anyone takes over", async () => {
    const { proxy, client } = await viaProxy();
    const a = make("a", client);
    a.elector.start();
    await expect.poll(() => a.elector.isLeader(), { timeout: 5000 }).toBe(true);
    const b = make("b");
    b.elector.start();
    await expect.poll(() => b.elector.leader(), { timeout: 5000 }).toBe("a");

    // Requests from a now hang (KubeClient would wait 30 s); b still reaches the server.
    proxy.blackhole();
    await expect.poll(() => a.events.map((e) => e.event), { timeout: 5000 }).toEqual(["started", "stopped"]);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.signals[0]!.aborted).toBe(true);
    await expect.poll(() => b.elector.isLeader(), { timeout: 5000 }).toBe(true);
    // a gave up leadership before b started leading.
    expect(a.events[1]!.at).toBeLessThan(b.events[0]!.at);
    expect(await lease()).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });

    // Reconnected, a sees the new leader and stays a follower.
    proxy.heal();
    await expect.poll(() => a.elector.leader(), { timeout: 5000 }).toBe("b");
    await delay(FAST.leaseDurationMs);
    expect(a.elector.isLeader()).toBe(false);
  });

  it("a leader whose API server refuses connections steps down, and leads again when it is back and nobody took over", async () => {
    const { proxy, client } = await viaProxy();
    const a = make("a", client);
    a.elector.start();
    await expect.poll(() => a.elector.isLeader(), { timeout: 5000 }).toBe(true);
    await proxy.down();
    await expect.poll(() => a.events.map((e) => e.event), { timeout: 5000 }).toEqual(["started", "stopped"]);
    expect(a.elector.isLeader()).toBe(false);
    await proxy.up();
    await expect.poll(() => a.events.map((e) => e.event), { timeout: 5000 }).toEqual(["started", "stopped", "started"]);
    expect(a.elector.isLeader()).toBe(true);
    // Same holder throughout: not a transition.
    expect(await lease()).toMatchObject({ holderIdentity: "a", leaseTransitions: 0 });
  });

  for (const method of ["PUT", "POST"] as const) {
    it(`racing writers (${method === "PUT" ? "update of a released lease" : "create of an absent lease"}): the 409 loser follows, one leader`, async () => {
      if (method === "PUT") {
        await t.client.create(LEASES, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: "ambit-controller" },
          spec: { holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 3 },
        });
      }
      const gate = { count: 2, waiting: [] as Array<() => void>, conflicts: 0 };
      // The attempt timeout (renewDeadline) must outlast the gate's wait; the long retry period tells the
      // loser's immediate re-read after its 409 apart from its next regular attempt.
      const roomy = { leaseDurationMs: 4000, renewDeadlineMs: 2500, retryPeriodMs: 1000 };
      const a = make("a", racingClient(t.client, method, gate), roomy);
      const b = make("b", racingClient(t.client, method, gate), roomy);
      a.elector.start();
      b.elector.start();
      await expect.poll(() => leaders().length, { timeout: 5000 }).toBe(1);
      expect(gate.conflicts).toBeGreaterThanOrEqual(1);
      const winner = leaders()[0]!;
      const loser = winner === a ? b : a;
      // The loser re-read the Lease right after its 409 (its next attempt is a second away) and knows who won.
      await expect.poll(() => loser.elector.leader(), { timeout: 800 }).toBe(winner.elector.identity);
      await delay(1200);
      expect(leaders()).toEqual([winner]);
      expect(loser.events).toEqual([]);
      expect(await lease()).toMatchObject({ holderIdentity: winner.elector.identity, leaseTransitions: method === "PUT" ? 4 : 0 });
    });
  }
});
