// The bench load generator (bench/tools/load) on loopback: its open-loop property (a 200 ms stall shows in p99 and max, where a closed-loop measurement of the same run hides it), the rate it achieves, connection-per-request load and its errors, gRPC unary, bulk TCP.
import { execFile } from "node:child_process";
import http from "node:http";
import type net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { runBulk, runConnect, runGrpc, runRate, startBulkServer, startGrpcServer, startHttpServer } from "../../bench/tools/load/index.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

const STALL_MS = 200;
const RATE = 1000;
const SECONDS = 3;

/**
 * A 1 KiB HTTP/1.1 server that stalls once, when its `stallAt`-th request arrives: that answer waits STALL_MS (at
 * least, by the clock). With `whole`, the whole server stalls: every request arriving meanwhile is answered only
 * when the stall ends, as in a process pause.
 */
async function stallingServer(stallAt: number, whole: boolean) {
  const body = Buffer.alloc(1024, "a");
  let seen = 0;
  let stallEnd = -Infinity;
  const answerAt = (res: http.ServerResponse, at: number) => {
    const wait = at - performance.now();
    if (wait > 0) setTimeout(() => answerAt(res, at), Math.ceil(wait));
    else res.writeHead(200, { "content-length": body.length }).end(body);
  };
  const server = http.createServer((_req, res) => {
    const now = performance.now();
    if (++seen === stallAt) {
      stallEnd = now + STALL_MS;
      return answerAt(res, stallEnd);
    }
    if (whole && now < stallEnd) return answerAt(res, stallEnd);
    answerAt(res, 0);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("bench load generator", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  /*
   * What a stall must do to an open-loop measurement. The stall begins at some f (when the stalled request arrives,
   * no earlier than it was due) and lasts STALL_MS. Every request due in [f, f + STALL_MS) is answered no earlier
   * than f + STALL_MS: over one connection it cannot be sent before the stalled answer is in; when the whole server
   * stalls it is held there. At RATE per second, the one due k ms after f has latency >= STALL_MS - k from its
   * intended time, so at least STALL_MS - L + 1 requests have latency >= L. Of n = RATE * SECONDS = 3,000
   * requests, p99 (nearest rank) is the 31st largest: p99 >= STALL_MS - 30 = 170 ms, and >= 101 requests take
   * >= 100 ms. Measured from when each request was really written, as a closed-loop generator does, only the
   * requests in flight when the stall began (1 per connection) take long; the ones queued behind are sent after it
   * and are fast. Asserted: the open-loop figures meet their bounds, the closed-loop view of the same run does not.
   */
  const expectStallShown = (r: Awaited<ReturnType<typeof runRate>>) => {
    const { report, latency, uncorrected } = r;
    expect(report).toMatchObject({ scheduled: RATE * SECONDS, requests: RATE * SECONDS, errors: 0 });
    expect(report.maxMs).toBeGreaterThanOrEqual(STALL_MS);
    expect(report.p99Ms).toBeGreaterThanOrEqual(150);
    expect(latency.countAtLeast(100)).toBeGreaterThanOrEqual(101);
    // The same run, measured from each request's actual send: the stall is in max (the answers that waited
    // it out) but not in p99 (fewer than 31 requests >= 100 ms; the stall alone accounts for `connections`).
    expect(report.uncorrectedMaxMs).toBeGreaterThanOrEqual(STALL_MS);
    expect(uncorrected.countAtLeast(100)).toBeLessThan(31);
    expect(report.uncorrectedP99Ms).toBeLessThan(100);
  };

  it("shows a 200 ms stall of one answer in p99 and max over 1 connection; measuring from the actual send would hide it", async () => {
    const server = await stallingServer(RATE, false);
    cleanups.push(server.close);
    const r = await runRate({ host: "127.0.0.1", port: server.port, rate: RATE, seconds: SECONDS, connections: 1 });
    expectStallShown(r);
  });

  it("shows a 200 ms stall of the whole server in p99 and max over 4 connections (pool dispatch: queued requests wait for any connection)", async () => {
    const server = await stallingServer(RATE, true);
    cleanups.push(server.close);
    const r = await runRate({ host: "127.0.0.1", port: server.port, rate: RATE, seconds: SECONDS, connections: 4 });
    expect(r.report.dispatch).toBe("pool");
    expectStallShown(r);
  });

  it("over 4 pinned connections, one stalled answer delays that connection's quarter of the schedule: p99 >= 60 ms", async () => {
    // Pinned: the stalled connection's requests are due every 4 ms; the j-th after the stalled one waits >= 200 - 4j
    // ms, so >= 36 requests (j = 0..35) take >= 60 ms: the 31st largest of 3,000, p99, is >= 60 ms. The other
    // three connections carry on, so this needs no whole-server stall.
    const server = await stallingServer(RATE, false);
    cleanups.push(server.close);
    const { report, latency, uncorrected } = await runRate({
      host: "127.0.0.1",
      port: server.port,
      rate: RATE,
      seconds: SECONDS,
      connections: 4,
      dispatch: "pinned",
    });
    expect(report).toMatchObject({ dispatch: "pinned", scheduled: RATE * SECONDS, requests: RATE * SECONDS, errors: 0 });
    expect(report.maxMs).toBeGreaterThanOrEqual(STALL_MS);
    expect(report.p99Ms).toBeGreaterThanOrEqual(60);
    expect(latency.countAtLeast(60)).toBeGreaterThanOrEqual(36);
    expect(uncorrected.countAtLeast(60)).toBeLessThan(31);
  });

  it("achieves the target rate against a fast server, every request answered", async () => {
    const server = await startHttpServer();
    cleanups.push(server.close);
    const { report } = await runRate({ host: "127.0.0.1", port: server.port, rate: RATE, seconds: SECONDS, connections: 4 });
    expect(report).toMatchObject({ targetRate: RATE, scheduled: RATE * SECONDS, requests: RATE * SECONDS, errors: 0, unfinished: 0, connectErrors: {} });
    expect(Math.abs(report.achievedRate - RATE) / RATE).toBeLessThan(0.05);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.p50Ms).toBeLessThanOrEqual(report.p90Ms);
    expect(report.p99Ms).toBeLessThanOrEqual(report.p999Ms);
    expect(report.p999Ms).toBeLessThanOrEqual(report.maxMs);
  });

  it("connect mode opens a connection per request on schedule, and counts every request as an error when the port is closed", async () => {
    const server = await startHttpServer();
    cleanups.push(server.close);
    const ok = await runConnect({ host: "127.0.0.1", port: server.port, rate: 200, seconds: 1 });
    expect(ok.report).toMatchObject({ mode: "connect", loop: "open", scheduled: 200, requests: 200, connectionsMade: 200, errors: 0 });

    // A port nothing listens on (bound, then closed), through the CLI: its JSON line as the bench runner reads it.
    const closed = await startHttpServer();
    await closed.close();
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(REPO_ROOT, "bench", "tools", "http-load.ts"), "--mode", "connect", "--rate", "200", "--seconds", "1", "--target", `127.0.0.1:${closed.port}`],
      { timeout: 15_000 },
    );
    const refused = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(refused).toMatchObject({ mode: "connect", loop: "open", scheduled: 200, requests: 0, errors: 200, errorKinds: { ECONNREFUSED: 200 } });
  });

  it("gRPC unary at a fixed rate: every call gets grpc-status 0 and a latency", async () => {
    const server = await startGrpcServer();
    cleanups.push(server.close);
    const { report, latency } = await runGrpc({ host: "127.0.0.1", port: server.port, rate: 500, seconds: 1, connections: 2 });
    expect(report).toMatchObject({ mode: "grpc", scheduled: 500, requests: 500, errors: 0, grpcStatuses: { "0": 500 }, responseMessageBytes: 1024 });
    expect(latency.count).toBe(500);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.maxMs).toBeGreaterThanOrEqual(report.p99Ms);
  });

  it("bulk TCP moves every byte both ways and reports MB/s", async () => {
    const server = await startBulkServer();
    cleanups.push(server.close);
    const bytes = 64 * 1024 * 1024;
    for (const direction of ["send", "receive"] as const) {
      const report = await runBulk({ host: "127.0.0.1", port: server.port, direction, bytes });
      expect(report).toMatchObject({ mode: "bulk", direction, bytes });
      expect(report.mbPerSecond).toBeGreaterThan(0);
      expect(report.mbPerSecond).toBeCloseTo(bytes / report.durationS / 1e6, -1);
    }
  });
});
