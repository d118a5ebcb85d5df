// `ambit workloads|services|policies|certs|tunnels` on recorded agent answers: golden tables, JSON and YAML that round-trip.
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { runCerts, runPolicies, runServices, runWorkloads } from "../../cli/config.ts";
import type { CommonArgs } from "../../cli/context.ts";
import { formatTable } from "../../cli/output.ts";
import { runTunnels } from "../../cli/tunnels.ts";
import { fakeKube, fixture, fixtureEnv } from "../support/cli-fixtures.ts";

const args = (more: Partial<CommonArgs> & Record<string, unknown> = {}) => ({ output: "table" as const, ...more });
const commands = { workloads: runWorkloads, services: runServices, policies: runPolicies, certs: runCerts, tunnels: runTunnels };

describe("operator commands on recorded agent answers", () => {
  for (const [name, run] of Object.entries(commands)) {
    for (const output of ["table", "wide"] as const) {
      it(`${name} -o ${output} matches its golden table`, async () => {
        const env = fixtureEnv();
        await run(env, args({ output }));
        await expect(env.out.join("")).toMatchFileSnapshot(`golden/cli/${name}${output === "wide" ? "-wide" : ""}.txt`);
      });
    }

    it(`${name} -o json and -o yaml carry the same document, which parses back unchanged`, async () => {
      const json = fixtureEnv();
      await run(json, args({ output: "json" }));
      const yaml = fixtureEnv();
      await run(yaml, args({ output: "yaml" }));
      const doc = JSON.parse(json.out.join(""));
      expect(doc.apiVersion).toBe("ambit.dev/cli/v1");
      expect(YAML.parse(yaml.out.join(""))).toEqual(doc);
      expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
      // Documents go to stdout alone: nothing for a script to strip.
      expect(json.err).toEqual([]);
    });
  }

  it("names the config version and staleness of the agent it asked, on stderr", async () => {
    const env = fixtureEnv();
    await runWorkloads(env, args({ node: "node-2" }));
    expect(env.err.join("")).toMatch(/^agent on node-2: config version \d+, connected to the controller, last update /);
    const stale = fixtureEnv({ now: Date.now() });
    const dump = fixture<{ controller: object }>("config_dump-node-1.json");
    stale.agents.get = async <T>() =>
      ({ ...dump, controller: { connected: false, disconnectedSince: new Date(Date.now() - 300_000).toISOString(), version: 7, failures: 3 } }) as T;
    await runWorkloads(stale, args({ output: "json" }));
    expect(JSON.parse(stale.out.join("")).source).toMatchObject({ version: 7, connected: false, staleSeconds: 300 });
  });

  it("filters by namespace", async () => {
    const env = fixtureEnv();
    await runWorkloads(env, args({ output: "json", namespace: "legacy" }));
    const items = JSON.parse(env.out.join("")).items as Array<{ namespace: string; protocol: string }>;
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((w) => w.namespace === "legacy" && w.protocol === "TCP")).toBe(true);
  });

  it("tunnels --node lists the orders -> payments tunnel to the other node with its bytes", async () => {
    const env = fixtureEnv();
    await runTunnels(env, { output: "json", node: "node-1" });
    const doc = JSON.parse(env.out.join(""));
    expect(doc.nodes).toEqual(["node-1"]);
    expect(doc.items).toContainEqual(
      expect.objectContaining({
        direction: "outbound",
        localNode: "node-1",
        peerNode: "node-2",
        localIdentity: "spiffe://cluster.local/ns/demo/sa/orders",
        peerIdentity: "spiffe://cluster.local/ns/demo/sa/payments",
        tlsVersion: "TLSv1.3",
      }),
    );
    expect(doc.items.every((c: { bytesSent: number; bytesReceived: number }) => c.bytesSent > 0 && c.bytesReceived > 0)).toBe(true);
  });

  it("tunnels --workload asks the pod's node only and keeps that pod's connections", async () => {
    const orders = fixture<{ workloads: Array<{ name: string; ip: string; node: string }> }>("config_dump-node-1.json").workloads.find((w) =>
      w.name.startsWith("orders-"),
    )!;
    const { kube } = fakeKube({
      [`/api/v1/namespaces/demo/pods/${orders.name}`]: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: orders.name, namespace: "demo" },
        spec: { nodeName: orders.node },
        status: { podIP: orders.ip },
      },
    });
    const env = fixtureEnv({ kube });
    await runTunnels(env, { output: "json", workload: `demo/${orders.name}` });
    const doc = JSON.parse(env.out.join(""));
    expect(doc.nodes).toEqual([orders.node]);
    expect(doc.items.map((c: { localIdentity: string }) => c.localIdentity)).toEqual(["spiffe://cluster.local/ns/demo/sa/orders"]);
    await expect(runTunnels(fixtureEnv({ kube }), { output: "json", workload: "demo/nope" })).rejects.toMatchObject({ code: "AMBIT_E_UNKNOWN_POD" });
    await expect(runTunnels(fixtureEnv({ kube }), { output: "json", workload: "nope" })).rejects.toMatchObject({ code: "AMBIT_E_USAGE" });
  });

  it("says so when no agent exists (mesh not installed)", async () => {
    const env = fixtureEnv();
    env.agents.agents = async () => [];
    await expect(runWorkloads(env, args())).rejects.toMatchObject({ code: "AMBIT_E_NO_MESH" });
    await expect(runTunnels(env, { output: "table" })).rejects.toMatchObject({ code: "AMBIT_E_NO_MESH" });
  });

  it("aligns tables like kubectl: uppercase headers, two spaces between columns, no trailing blanks", () => {
    expect(
      formatTable({
        headers: ["name", "a b"],
        rows: [
          ["x", "1"],
          ["longer", ""],
        ],
      }),
    ).toBe("NAME    A B\nx       1\nlonger\n");
  });
});
