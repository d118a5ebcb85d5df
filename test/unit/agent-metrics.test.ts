// Agent metrics keep Istio's names and labels, so Istio dashboards and alerts work unchanged.
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { AgentMetrics } from "../../agent/metrics/index.ts";
import { describeTier } from "../support/tiers.ts";

describe("AgentMetrics", () => {
  it("exposes Istio's TCP counters with every Istio label, unknown ones filled as Istio does", async () => {
    const m = new AgentMetrics();
    const labels = {
      reporter: "destination",
      source_workload: "orders",
      source_workload_namespace: "demo",
      source_principal: "spiffe://cluster.local/ns/demo/sa/orders",
      destination_workload: "payments",
      destination_workload_namespace: "demo",
      destination_principal: "spiffe://cluster.local/ns/demo/sa/payments",
      connection_security_policy: "mutual_tls",
    };
    m.connectionOpened(labels);
    m.connectionClosed(labels, { sent: 120, received: 80 });
    const text = await m.text();
    const line = text.split("\n").find((l) => l.startsWith("istio_tcp_sent_bytes_total{"));
    expect(line).toContain('reporter="destination"');
    expect(line).toContain('source_principal="spiffe://cluster.local/ns/demo/sa/orders"');
    expect(line).toContain('connection_security_policy="mutual_tls"');
    expect(line).toContain('source_app="unknown"');
    expect(line).toContain('response_flags="-"');
    expect(line).toMatch(/ 120$/);
    expect(text).toMatch(/^istio_tcp_received_bytes_total\{.*\} 80$/m);
    expect(text).toMatch(/^istio_tcp_connections_opened_total\{.*\} 1$/m);
    expect(text).toMatch(/^istio_tcp_connections_closed_total\{.*\} 1$/m);
    expect(text).toContain("# TYPE ambit_pods_captured gauge");
  });

  it("adds what happened between scrapes exactly once, per label set", async () => {
    // The data path counts into plain numbers and the counters take the difference at scrape time.
    const m = new AgentMetrics();
    const orders = { reporter: "source", source_workload: "orders" };
    const client = { reporter: "source", source_workload: "client" };
    const value = (text: string, metric: string, workload: string) =>
      Number(new RegExp(`^${metric}\\{[^}]*source_workload="${workload}"[^}]*\\} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
    m.connectionOpened(orders);
    m.connectionClosed(orders, { sent: 10, received: 1 });
    let text = await m.text();
    expect([value(text, "istio_tcp_connections_opened_total", "orders"), value(text, "istio_tcp_sent_bytes_total", "orders")]).toEqual([1, 10]);
    expect(text).not.toContain('source_workload="client"');
    text = await m.text();
    expect(value(text, "istio_tcp_connections_opened_total", "orders")).toBe(1);
    m.connectionOpened(orders);
    m.connectionOpened(client);
    m.connectionClosed(orders, { sent: 5, received: 0 });
    text = await m.text();
    expect([
      value(text, "istio_tcp_connections_opened_total", "orders"),
      value(text, "istio_tcp_connections_closed_total", "orders"),
      value(text, "istio_tcp_sent_bytes_total", "orders"),
    ]).toEqual([2, 2, 15]);
    expect(value(text, "istio_tcp_connections_opened_total", "client")).toBe(1);
    // Not closed yet: no closed series for it.
    expect(text).not.toMatch(/^istio_tcp_connections_closed_total\{[^}]*source_workload="client"/m);
  });
});

/** promtool from PATH, or the copy scripts/setup.sh extracts from Debian's prometheus package. */
const promtool = [path.join(REPO_ROOT, ".tools", "promtool"), ...(process.env.PATH ?? "").split(":").map((d) => path.join(d, "promtool"))].find((p) =>
  fs.existsSync(p),
);

describeTier(promtool !== undefined, "promtool not found: run scripts/setup.sh")("promtool", () => {
  it("accepts the agent's metrics exposition", async () => {
    const m = new AgentMetrics();
    m.connectionOpened({ reporter: "source", source_workload: "client" });
    m.connectionClosed({ reporter: "source", source_workload: "client", response_flags: "DENIED" }, { sent: 1, received: 2 });
    m.podsCaptured.set(3);
    m.certificateExpiry.set({ identity: "spiffe://cluster.local/ns/demo/sa/orders" }, 1_800_000_000);
    const r = await execa(promtool!, ["check", "metrics"], { input: await m.text(), reject: false });
    expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
  });
});
