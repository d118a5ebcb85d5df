// The agent's metrics, readiness and admin endpoints over real HTTP on loopback.
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type AdminServers, startAdminServers } from "../../agent/admin/index.ts";
import { AgentMetrics } from "../../agent/metrics/index.ts";

describe("agent admin servers", () => {
  let servers: AdminServers | undefined;
  afterEach(async () => {
    await servers?.close();
  });

  it("serves metrics, readiness that follows state, and a config dump without keys", async () => {
    const metrics = new AgentMetrics();
    metrics.podsCaptured.set(2);
    let ready: { ready: true } | { ready: false; reason: string } = { ready: false, reason: "no certificate for spiffe://cluster.local/ns/demo/sa/orders yet" };
    const log = pino({ level: "info" }, pino.destination("/dev/null"));
    servers = await startAdminServers(
      {
        metrics,
        readiness: () => ready,
        configDump: () => ({
          workloads: [{ name: "orders" }],
          certificates: [{ identity: "spiffe://cluster.local/ns/demo/sa/orders", expires: "2026-11-23T00:00:00Z" }],
        }),
        tunnels: () => ({ node: "node-1", connections: [{ direction: "outbound", streamsOpen: 1 }] }),
        log,
      },
      { admin: 0, metrics: 0, readiness: 0, host: "127.0.0.1" },
    );
    const base = (port: number) => `http://127.0.0.1:${port}`;
    const m = await fetch(`${base(servers.ports.metrics)}/metrics`);
    expect(m.status).toBe(200);
    expect(await m.text()).toMatch(/^ambit_pods_captured 2$/m);

    const notReady = await fetch(`${base(servers.ports.readiness)}/healthz/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toContain("no certificate for spiffe://cluster.local/ns/demo/sa/orders");
    ready = { ready: true };
    expect((await fetch(`${base(servers.ports.readiness)}/healthz/ready`)).status).toBe(200);

    const dump = await (await fetch(`${base(servers.ports.admin)}/config_dump`)).text();
    expect(JSON.parse(dump).workloads).toEqual([{ name: "orders" }]);
    expect(dump).not.toMatch(/PRIVATE KEY/);
    const tunnels = await (await fetch(`${base(servers.ports.admin)}/tunnels`)).json();
    expect(tunnels).toEqual({ node: "node-1", connections: [{ direction: "outbound", streamsOpen: 1 }] });

    expect((await fetch(`${base(servers.ports.admin)}/logging?level=debug`, { method: "POST" })).status).toBe(200);
    expect(log.level).toBe("debug");
    expect((await fetch(`${base(servers.ports.admin)}/logging?level=loud`, { method: "POST" })).status).toBe(400);
  });

  it("reports memory, and after a full collection the garbage is gone from the heap figures", async () => {
    const log = pino({ level: "silent" });
    servers = await startAdminServers(
      { metrics: new AgentMetrics(), readiness: () => ({ ready: true }), configDump: () => ({}), tunnels: () => ({}), log },
      { admin: 0, metrics: 0, readiness: 0, host: "127.0.0.1" },
    );
    const admin = `http://127.0.0.1:${servers.ports.admin}`;
    const gc = async () => (await (await fetch(`${admin}/memory/gc`, { method: "POST" })).json()) as Record<string, number>;
    const before = await gc();
    expect(before.rssKiB).toBeGreaterThan(before.heapUsedKiB!);
    // ~40 MiB of short-lived objects that nothing references any more.
    let garbage: unknown[] | undefined = Array.from({ length: 400_000 }, (_, i) => ({ i, s: `x${i}`.repeat(8) }));
    const withGarbage = (await (await fetch(`${admin}/memory`)).json()) as Record<string, number>;
    expect(withGarbage.heapUsedKiB! - before.heapUsedKiB!).toBeGreaterThan(20_000);
    expect((garbage as unknown[]).length).toBe(400_000);
    garbage = undefined;
    const after = await gc();
    expect(after.heapUsedKiB! - before.heapUsedKiB!).toBeLessThan(10_000);
    // The heap also shrank back: per-pod and per-connection RSS in bench/ are not inflated by an earlier burst.
    expect(withGarbage.heapTotalKiB! - before.heapTotalKiB!).toBeGreaterThan(20_000);
    expect(after.heapTotalKiB! - before.heapTotalKiB!).toBeLessThan(10_000);
    expect((await fetch(`${admin}/memory/gc`)).status).toBe(404);
  });

  it("gives the C heap's freed pages back, so RSS after a collection is not inflated by an earlier burst", async () => {
    const log = pino({ level: "silent" });
    servers = await startAdminServers(
      { metrics: new AgentMetrics(), readiness: () => ({ ready: true }), configDump: () => ({}), tunnels: () => ({}), log },
      { admin: 0, metrics: 0, readiness: 0, host: "127.0.0.1" },
    );
    const admin = `http://127.0.0.1:${servers.ports.admin}`;
    const gc = async () => (await (await fetch(`${admin}/memory/gc`, { method: "POST" })).json()) as Record<string, number>;
    await gc();
    // ~100 MiB of small native allocations (Buffer contents come from malloc), one in ten kept: the freed ones
    // sit between live ones, where glibc does not return them to the kernel by itself.
    let burst: Buffer[] | undefined = Array.from({ length: 100_000 }, () => Buffer.allocUnsafeSlow(1000).fill(1));
    const kept = burst.filter((_, i) => i % 10 === 0);
    const held = (await (await fetch(`${admin}/memory`)).json()) as Record<string, number>;
    burst = undefined;
    const after = await gc();
    expect(kept).toHaveLength(10_000);
    expect(held.rssKiB! - after.rssKiB!).toBeGreaterThan(50_000);
  });
});
