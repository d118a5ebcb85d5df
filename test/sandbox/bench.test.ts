// `npm run bench -- --quick` end to end, made small (1 s per load, 2 pods for memory): it runs on a sandbox of its own and writes results that match their schema, with numbers for every scenario.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type BenchResults, SCENARIO_NAMES, compareResults, reportTimestamp, validateResults } from "../../bench/report/index.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { ROOT_REQUIRED, isRoot } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

describeTier(isRoot, ROOT_REQUIRED)("npm run bench -- --quick", () => {
  let dir: string;
  let results: BenchResults;
  let stdout: string;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-bench-test-"));
    const run = await execa(process.execPath, [path.join(REPO_ROOT, "bench", "run.ts"), "--quick", "--out", path.join(dir, "results.json")], {
      cwd: REPO_ROOT,
      // bulk-tcp too: one connection that half-closes and waits for the sink's answer, through every scenario's proxies.
      env: { SECONDS: "1", WARMUP_SECONDS: "1", POD_COUNTS: "2", HELD_CONNECTIONS: "50", POLICY_ROUNDS: "2", LOADS: "keepalive-16c,bulk-tcp" },
      reject: false,
      timeout: 420_000,
    });
    stdout = run.stdout;
    if (run.exitCode !== 0) throw new Error(`bench run failed (${run.exitCode}):\n${run.stdout.slice(-4000)}\n${run.stderr.slice(-2000)}`);
    results = JSON.parse(await fs.readFile(path.join(dir, "results.json"), "utf8")) as BenchResults;
  }, 480_000);

  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
    // The report and charts this run wrote beside other runs' in bench/results.
    if (results) {
      const stamp = reportTimestamp(results.startedAt);
      const dirOfResults = path.join(REPO_ROOT, "bench", "results");
      for (const f of await fs.readdir(dirOfResults)) if (f.startsWith(stamp)) await fs.rm(path.join(dirOfResults, f), { force: true });
    }
  });

  it("writes results that match the schema, with a progress line per step", () => {
    expect(validateResults(results)).toEqual({ ok: true });
    expect(results.quick).toBe(true);
    expect(results.errors).toEqual([]);
    expect(stdout).toMatch(/\[\s*\d+ s\] round 3\/3 /);
  });

  it("has latency numbers for every scenario in every round, and the ratios and goals computed within the run", () => {
    for (const scenario of SCENARIO_NAMES) {
      const r = results.results.find((x) => x.scenario === scenario && x.load === "keepalive-16c");
      expect(r, scenario).toBeDefined();
      expect(r!.rounds.map((x) => x.round)).toEqual([1, 2, 3]);
      for (const round of r!.rounds) {
        expect(round.latencyMs!.p50, scenario).toBeGreaterThan(0);
        expect(round.latencyMs!.max).toBeGreaterThanOrEqual(round.latencyMs!.p99);
        expect(round.achievedRate!, scenario).toBeGreaterThan(0);
      }
    }
    // A client that ends its side still gets the answer through every proxy (half-close carried, not cut).
    for (const scenario of SCENARIO_NAMES) {
      const bulk = results.results.find((x) => x.scenario === scenario && x.load === "bulk-tcp");
      expect(
        bulk?.rounds.map((r) => r.bulkMBps ?? 0).every((v) => v > 0),
        `${scenario} bulk-tcp`,
      ).toBe(true);
    }
    expect(
      results.ratios
        .filter((r) => r.load === "keepalive-16c")
        .map((r) => r.scenario)
        .sort(),
    ).toEqual(SCENARIO_NAMES.filter((s) => s !== "direct").sort());
    expect(results.goals.length).toBe(4);
  });

  it("measures each scenario's proxies, memory per node with pods and per connection, and the control plane", () => {
    const proxies = results.resources.proxyCpu.map((p) => `${p.scenario}/${p.proxy}`).sort();
    expect(proxies).toEqual(
      [
        "ambient/agent-client",
        "ambient/agent-server",
        "ambient-same-node/agent-client",
        "ambient-waypoint/agent-client",
        "ambient-waypoint/agent-server",
        "ambient-waypoint/waypoint",
        "sidecar/sidecar-client",
        "sidecar/sidecar-server",
        "nginx-sidecar/nginx-client",
        "nginx-sidecar/nginx-server",
      ].sort(),
    );
    for (const p of results.resources.proxyCpu) expect(p.vcpuPer1000Rps.median, `${p.scenario}/${p.proxy}`).toBeGreaterThan(0);
    for (const p of results.resources.proxyRss) expect(p.rssMiB.median, `${p.scenario}/${p.proxy}`).toBeGreaterThan(1);
    expect(results.resources.meshMemory.map((m) => `${m.scenario}@${m.pods}`).sort()).toEqual(["ambient@2", "nginx-sidecar@2", "sidecar@2"]);
    for (const m of results.resources.meshMemory) expect(m.totalMiB).toBeGreaterThan(0);
    expect(results.resources.perConnection.map((c) => c.scenario).sort()).toEqual(["ambient", "nginx-sidecar", "sidecar"]);
    expect(results.resources.controller!.rssMiB).toBeGreaterThan(0);
    expect(results.controlPlane.certIssuancesPerSec).toBeGreaterThan(0);
    expect(results.controlPlane.policyPropagationMs).toMatchObject({ pods: 1000, nodes: 20 });
  });

  it("writes the Markdown report and the SVG charts beside the results, and compares against an earlier run", async () => {
    const written = await fs.readdir(path.join(REPO_ROOT, "bench", "results"));
    const stamp = reportTimestamp(results.startedAt);
    expect(written).toContain(`${stamp}.md`);
    expect(written).toContain(`${stamp}-keepalive-16c.svg`);
    expect(written).toContain(`${stamp}-memory.svg`);
    const svg = await fs.readFile(path.join(REPO_ROOT, "bench", "results", `${stamp}-keepalive-16c.svg`), "utf8");
    for (const scenario of SCENARIO_NAMES) expect(svg).toContain(scenario);
    // The same run against itself: every row, no change.
    const rows = compareResults(results, results);
    expect(rows.length).toBeGreaterThan(SCENARIO_NAMES.length);
    expect(rows.every((r) => r.changePct === 0 || r.changePct === null)).toBe(true);
  });
});
