// The chart's optional Grafana dashboard: rendered on request, valid JSON, and querying only metrics Ambit exports.
import fs from "node:fs";
import path from "node:path";
import { Registry, collectDefaultMetrics } from "prom-client";
import { describe, expect, it } from "vitest";
import { TCP_LABELS } from "../../agent/metrics/index.ts";
import { renderChartDir } from "../../helm/chart.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

const CHART = path.join(REPO_ROOT, "daemonset");
const RELEASE = { name: "ambit", namespace: "mesh-system" };
const DASHBOARD_FILE = path.join(CHART, "dashboards", "ambit.json");

type Target = { expr: string; refId: string; datasource?: { uid: string } };
type Panel = { id: number; type: string; title: string; datasource?: { type: string; uid: string }; targets?: Target[] };
type Dashboard = {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; definition?: string }> };
};

/** Every .ts file under a directory. */
const sources = (dir: string): string[] =>
  fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? (e.name === "node_modules" ? [] : sources(path.join(dir, e.name))) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : [],
    );

/**
 * The metric names the agent and the controller register, read from their source: the names given to prom-client's
 * constructors (and to the agent's helper for Istio's TCP counters), the series a histogram adds, and prom-client's
 * default metrics under each prefix passed to collectDefaultMetrics. A renamed metric drops out of this set.
 */
async function registeredMetrics(): Promise<Set<string>> {
  const names = new Set<string>();
  const prefixes = new Set<string>();
  for (const file of [...sources(path.join(REPO_ROOT, "agent")), ...sources(path.join(REPO_ROOT, "controller"))]) {
    const text = fs.readFileSync(file, "utf8");
    if (!text.includes('from "prom-client"')) continue;
    for (const m of text.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"/g)) {
      names.add(m[2]!);
      if (m[1] === "Histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(m[2]! + s);
      if (m[1] === "Summary") for (const s of ["_sum", "_count"]) names.add(m[2]! + s);
    }
    // The agent's Istio counters go through one helper, tcp(name, help, count).
    for (const m of text.matchAll(/\btcp\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"/g)) names.add(m[1]!);
    for (const m of text.matchAll(/collectDefaultMetrics\(\{[^}]*prefix:\s*"([^"]+)"/g)) prefixes.add(m[1]!);
    // The agent's process metrics go through agent/metrics' collectProcessMetrics(registry, prefix).
    for (const m of text.matchAll(/collectProcessMetrics\([^,()]+,\s*"([^"]+)"\)/g)) prefixes.add(m[1]!);
  }
  for (const prefix of prefixes) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix });
    for (const m of await registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(m.name + s);
    }
    registry.clear();
  }
  return names;
}

const PROMQL_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"]);

/** The metric names a PromQL expression selects: identifiers that are not functions, keywords, labels or strings. */
function metricsOf(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const out: string[] = [];
  // Not preceded by a digit or a dot: the unit of a duration (offset 5m) or of a number is no name.
  for (const m of bare.matchAll(/(?<![a-zA-Z0-9_:.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    if (
      PROMQL_KEYWORDS.has(m[0]) ||
      bare
        .slice(m.index + m[0].length)
        .trimStart()
        .startsWith("(")
    )
      continue;
    out.push(m[0]);
  }
  return out;
}

/** The labels an expression names in its selectors and its by (...) clauses. */
const labelsOf = (expr: string): string[] => [
  ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) =>
    m[1]!
      .split(",")
      .map((s) => s.trim().split(/[=!~]/)[0]!)
      .filter(Boolean),
  ),
  ...[...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  ),
];

/** Every PromQL query of the dashboard: the panels' targets and the query variables (label_values' metric). */
function queries(d: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  for (const p of d.panels) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  for (const v of d.templating.list.filter((x) => x.type === "query")) {
    const q = typeof v.query === "string" ? v.query : (v.query as { query: string }).query;
    const lv = /^label_values\(\s*([^,]+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(q);
    out.push({ where: `variable ${v.name}`, expr: lv ? `sum by (${lv[2]}) (${lv[1]})` : q });
  }
  return out;
}

describe("the Grafana dashboard (dashboards.enabled)", () => {
  it("is not rendered by default", async () => {
    const { objects } = await renderChartDir(CHART, { release: RELEASE });
    expect(objects.filter((o) => o.kind === "ConfigMap")).toEqual([]);
  });

  it('enabled: a ConfigMap in the release namespace for Grafana\'s sidecar (grafana_dashboard: "1") holding dashboards/ambit.json as it is', async () => {
    const { objects } = await renderChartDir(CHART, { release: RELEASE, values: { dashboards: { enabled: true } } });
    const cm = objects.find((o) => o.kind === "ConfigMap") as unknown as {
      metadata: { name: string; namespace: string; labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(cm.metadata).toMatchObject({
      name: "ambit-dashboards",
      namespace: "mesh-system",
      labels: { grafana_dashboard: "1", "app.kubernetes.io/part-of": "ambit" },
    });
    expect(Object.keys(cm.data)).toEqual(["ambit.json"]);
    expect(cm.data["ambit.json"]).toBe(fs.readFileSync(DASHBOARD_FILE, "utf8").replace(/\n$/, ""));
    const dashboard = JSON.parse(cm.data["ambit.json"]!) as Dashboard;
    expect(dashboard).toMatchObject({ uid: "ambit-mesh", title: "Ambit mesh" });
  });

  it("is a dashboard Grafana loads: unique panel ids, every query on the datasource variable, every target with a query", () => {
    const d = JSON.parse(fs.readFileSync(DASHBOARD_FILE, "utf8")) as Dashboard;
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(d.templating.list.find((v) => v.name === "datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const p of d.panels.filter((x) => x.type !== "row")) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.expr.trim(), `${p.title} ${t.refId}`).not.toBe("");
    }
  });

  it("queries only metrics the agent or the controller registers, and Istio's metrics only by Istio's labels", async () => {
    const registered = await registeredMetrics();
    // The extraction works: it finds Istio's counters, a controller metric and prom-client's default metrics.
    expect([...registered]).toEqual(
      expect.arrayContaining([
        "istio_tcp_connections_opened_total",
        "istio_tcp_sent_bytes_total",
        "ambit_config_connected_agents",
        "ambit_agent_process_cpu_seconds_total",
        "ambit_controller_process_resident_memory_bytes",
      ]),
    );
    const d = JSON.parse(fs.readFileSync(DASHBOARD_FILE, "utf8")) as Dashboard;
    const used = new Set<string>();
    for (const { where, expr } of queries(d)) {
      const metrics = metricsOf(expr);
      expect(metrics.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const m of metrics) {
        expect(registered.has(m), `${where} queries ${m}, which neither the agent nor the controller registers`).toBe(true);
        used.add(m);
      }
      if (metrics.every((m) => m.startsWith("istio_")))
        for (const l of labelsOf(expr)) expect([...TCP_LABELS, "instance", "job"], `${where}: label ${l}`).toContain(l);
    }
    // What the dashboard is for: traffic, denials, the agents' and controllers' resources, the config stream.
    expect([...used]).toEqual(
      expect.arrayContaining([
        "istio_tcp_connections_opened_total",
        "istio_tcp_connections_closed_total",
        "istio_tcp_sent_bytes_total",
        "istio_tcp_received_bytes_total",
        "ambit_connections_refused_total",
        "ambit_agent_process_cpu_seconds_total",
        "ambit_agent_process_resident_memory_bytes",
        "ambit_controller_process_cpu_seconds_total",
        "ambit_controller_process_resident_memory_bytes",
        "ambit_config_connected",
        "ambit_config_stale_seconds",
      ]),
    );
  });

  it("reads PromQL as it must: functions, keywords, labels, strings and ranges are not metrics", () => {
    expect(
      metricsOf(
        'sum by (source_workload, le) (rate(istio_tcp_sent_bytes_total{reporter="destination", x=~"a|b"}[$__rate_interval])) / on (instance) group_left foo_total',
      ),
    ).toEqual(["istio_tcp_sent_bytes_total", "foo_total"]);
    expect(metricsOf("histogram_quantile(0.99, sum by (le) (rate(ambit_ca_signing_seconds_bucket[5m]))) and bool time() - up offset 5m")).toEqual([
      "ambit_ca_signing_seconds_bucket",
      "up",
    ]);
    expect(labelsOf('sum by (a, b) (m{c="x", d!~"y"})')).toEqual(["c", "d", "a", "b"]);
  });
});
