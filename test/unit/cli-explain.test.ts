// `ambit explain` over recorded sandbox state (API objects and agents' /config_dump): resolution, path, decision, golden output, errors.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { PolicyStore } from "../../agent/authorization/index.ts";
import { type AgentTransport, type ExplainReport, type KubeReader, explainConnection, renderReport } from "../../cli/explain.ts";
import { KubeRequestError, type KubeObject } from "../../kube/client.ts";

/*
 * Recorded from a sandbox (`ambit dev up --mesh`, two nodes, demo enrolled): cluster.json is `kubectl get -o json` of
 * pods, services, namespaces and EndpointSlices; a/ holds the agents' /config_dump with test/sandbox/control-plane's
 * ALLOW_ORDERS_TO_PAYMENTS applied (allow-nothing + payments-from-orders), b/ after adding a STRICT PeerAuthentication
 * for payments (port 9090 PERMISSIVE), a DENY on ports other than 8080, an AUDIT for namespace demo, an ALLOW that
 * needs L7 (PartiallyEnforced) and one bound by targetRefs (Invalid). The leader had not written policy status yet,
 * so statuses come out computed. The dumps predate config_dump's trustDomain field: it is read from certificates.
 */
const FIXTURES = path.join(import.meta.dirname, "../fixtures/explain");
const read = (file: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, file), "utf8")) as Record<string, unknown>;
const cluster = read("cluster.json") as unknown as Record<"pods" | "services" | "namespaces" | "endpointslices", KubeObject[]>;

/** The API as the recorded objects answer it: the paths explain asks, 404 for anything absent. */
function recordedApi(scenario: "a" | "b", edit: (objects: Record<string, KubeObject[]>) => void = () => {}): KubeReader {
  const policies = read(`${scenario}/policies.json`) as unknown as Record<string, KubeObject[]>;
  const objects: Record<string, KubeObject[]> = structuredClone({ ...cluster, ...policies });
  edit(objects);
  const notFound = (p: string) => new KubeRequestError(404, "NotFound", `${p} not found`);
  const parse = (p: string) => {
    const [route, query] = p.split("?") as [string, string | undefined];
    const ns = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(route);
    if (ns) return { plural: "namespaces", namespace: undefined, name: ns[1], selector: undefined };
    const m = /^\/apis?\/(?:[^/]+\/)?v1(?:\/namespaces\/([^/]+))?\/([a-z]+)(?:\/([^/]+))?$/.exec(route);
    if (!m) throw new Error(`unexpected API path ${p}`);
    const selector = query ? decodeURIComponent(query.replace(/^labelSelector=/, "")) : undefined;
    return { plural: m[2]!, namespace: m[1], name: m[3], selector };
  };
  const matching = (p: string) => {
    const q = parse(p);
    return (objects[q.plural] ?? []).filter(
      (o) =>
        (!q.namespace || o.metadata.namespace === q.namespace) &&
        (!q.name || o.metadata.name === q.name) &&
        (!q.selector ||
          q.selector.split(",").every((kv) => {
            const [k, v] = kv.split("=");
            return o.metadata.labels?.[k!] === v;
          })),
    );
  };
  return {
    get: async (p) => matching(p)[0] ?? Promise.reject(notFound(p)),
    list: async (p) => matching(p),
  };
}

function recordedAgents(scenario: "a" | "b"): AgentTransport & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    fetchAgentJson: async (node, p) => {
      asked.push(`${node}${p}`);
      if (p !== "/config_dump") throw new Error(`unexpected ${p}`);
      return read(`${scenario}/config-dump-${node}.json`);
    },
  };
}

const explainIn = (scenario: "a" | "b", src: string, dst: string) => explainConnection(recordedApi(scenario), recordedAgents(scenario), src, dst);
const golden = (name: string) => path.join(FIXTURES, "golden", name);

describe("ambit explain on the recorded sandbox", () => {
  it("client -> payments:80 with ALLOW_ORDERS_TO_PAYMENTS: deny, naming the ALLOW policies that did not match", async () => {
    const agents = recordedAgents("a");
    const r = await explainConnection(recordedApi("a"), agents, "demo/client", "demo/payments:80");
    expect(agents.asked).toEqual(["node-2/config_dump"]);
    expect(r.decision).toMatchObject({ allowed: false, evaluated: true, decidedBy: "no-allow-match", match: null });
    expect(r.decision.summary).toContain("demo/allow-nothing, demo/payments-from-orders");
    expect(r.service).toMatchObject({
      service: "demo/payments",
      port: 80,
      targetPort: 8080,
      chosen: "demo/payments-b8a5f4d558-c24cf",
      endpoints: ["demo/payments-b8a5f4d558-c24cf", "demo/payments-b8a5f4d558-m6pkh"],
    });
    expect(r.path).toMatchObject({ kind: "tunnel", hbone: { fromNode: "node-1", toNode: "node-2", dial: "10.244.2.2:15008" } });
    expect(r.source.identity).toBe("spiffe://cluster.local/ns/demo/sa/client");
    expect(r.destination.identity).toBe("spiffe://cluster.local/ns/demo/sa/payments");
    expect(r.mtls).toMatchObject({ mode: "PERMISSIVE", peerAuthentication: null });
    await expect(renderReport(r, "table")).toMatchFileSnapshot(golden("a-client-payments.txt"));
    await expect(renderReport(r, "json")).toMatchFileSnapshot(golden("a-client-payments.json"));
  });

  it("orders -> payments:80: allowed by payments-from-orders rule 0, its principals clause", async () => {
    const r = await explainIn("a", "demo/orders", "demo/payments:80");
    expect(r.decision).toMatchObject({
      allowed: true,
      decidedBy: "allow",
      match: { policy: { namespace: "demo", name: "payments-from-orders", action: "ALLOW" }, ruleIndex: 0, from: { index: 0 } },
    });
    await expect(renderReport(r, "table")).toMatchFileSnapshot(golden("a-orders-payments.txt"));
  });

  it("same node: orders -> the payments pod on node-1 is local, decided by node-1's agent", async () => {
    const agents = recordedAgents("a");
    const r = await explainConnection(recordedApi("a"), agents, "demo/orders", "demo/payments-b8a5f4d558-m6pkh:8080");
    expect(agents.asked).toEqual(["node-1/config_dump"]);
    expect(r.path.kind).toBe("local");
    expect(r.service).toBeNull();
    expect(r.decision.allowed).toBe(true);
  });

  it("with DENY, AUDIT, STRICT, an L7-only ALLOW and an invalid ALLOW: the DENY rule, audit matches and warnings", async () => {
    const r = await explainIn("b", "demo/client", "demo/payments:80");
    expect(r.decision).toMatchObject({ allowed: false, decidedBy: "no-allow-match" });
    expect(r.mtls).toMatchObject({ mode: "STRICT", peerAuthentication: "demo/payments-strict", level: "workload" });
    expect(r.audit.map((m) => m.policy.name)).toEqual(["audit-payments"]);
    expect(r.policies.map((p) => `${p.name}:${p.status}:${p.statusFrom}`)).toEqual([
      "allow-nothing:Accepted:computed",
      "payments-from-orders:Accepted:computed",
      "deny-other-ports:Accepted:computed",
      "audit-payments:Accepted:computed",
      "payments-get-only:PartiallyEnforced:computed",
      "payments-via-waypoint:Invalid:computed",
    ]);
    expect(r.warnings).toHaveLength(2);
    await expect(renderReport(r, "table")).toMatchFileSnapshot(golden("b-client-payments.txt"));
    await expect(renderReport(r, "yaml")).toMatchFileSnapshot(golden("b-client-payments.yaml"));
    expect(parseYaml(renderReport(r, "yaml"))).toEqual(JSON.parse(renderReport(r, "json")));

    const legacy = await explainIn("b", "legacy/client", "demo/payments-b8a5f4d558-m6pkh:9090");
    expect(legacy.path.kind).toBe("plaintext-inbound");
    expect(legacy.source.identity).toBeNull();
    expect(legacy.mtls).toMatchObject({ mode: "PERMISSIVE", level: "port" });
    expect(legacy.decision).toMatchObject({ allowed: false, decidedBy: "deny", match: { policy: { name: "deny-other-ports" }, to: { index: 0 } } });
    await expect(renderReport(legacy, "table")).toMatchFileSnapshot(golden("b-legacy-payments-9090.txt"));

    const strict = await explainIn("b", "legacy/client", "demo/payments:80");
    expect(strict.decision).toMatchObject({ allowed: false, decidedBy: "mtls" });
  });

  it("reads the controller's status when written, instead of computing it", async () => {
    const api = recordedApi("b", (o) => {
      o.authorizationpolicies!.find((p) => p.metadata.name === "payments-via-waypoint")!.status = {
        conditions: [{ type: "Accepted", status: "False", reason: "Invalid", message: "as the controller wrote it" }],
      };
    });
    const r = await explainConnection(api, recordedAgents("b"), "demo/client", "demo/payments:80");
    expect(r.policies.find((p) => p.name === "payments-via-waypoint")).toMatchObject({
      status: "Invalid",
      message: "as the controller wrote it",
      statusFrom: "controller",
    });
  });

  it("a destination outside the mesh: passthrough, nothing evaluated, no agent asked", async () => {
    const agents = recordedAgents("a");
    const r = await explainConnection(recordedApi("a"), agents, "demo/client", "legacy/client-f0f13b2e08-kgv2c:8080");
    expect(r.path.kind).toBe("passthrough");
    expect(r.decision).toMatchObject({ allowed: true, evaluated: false, decidedBy: "not-enforced" });
    expect(agents.asked).toEqual([]);
  });

  it("agrees with the agent's enforcement over the same dump for every demo pod pair", async () => {
    const demo = cluster.pods.filter((p) => p.metadata.namespace === "demo" || p.metadata.namespace === "legacy");
    for (const scenario of ["a", "b"] as const) {
      for (const src of demo) {
        for (const dst of demo.filter((p) => p.metadata.namespace === "demo")) {
          for (const port of [8080, 9090]) {
            const r: ExplainReport = await explainIn(scenario, `${src.metadata.namespace}/${src.metadata.name}`, `demo/${dst.metadata.name}:${port}`);
            const dump = read(`${scenario}/config-dump-${dst.spec.nodeName}.json`) as {
              policies: { authorizations: unknown[]; peerAuthentications: unknown[] };
              workloads: Array<{ ip: string }>;
            };
            const store = new PolicyStore({ rootNamespace: "ambit-system" });
            store.replace(dump.policies.authorizations, dump.policies.peerAuthentications);
            const enrolled = src.metadata.namespace === "demo";
            const decision = store.check({
              ...(enrolled ? { source: { trustDomain: "cluster.local", namespace: "demo", serviceAccount: src.spec.serviceAccountName } } : {}),
              sourceIp: src.status.podIP,
              destination: dump.workloads.find((w) => w.ip === dst.status.podIP) as never,
              destinationIp: dst.status.podIP,
              destinationPort: port,
            });
            expect({ allowed: r.decision.allowed, reason: r.decision.reason }).toEqual({ allowed: decision.allowed, reason: decision.reason });
          }
        }
      }
    }
  });
});

describe("ambit explain errors", () => {
  const code = async (p: Promise<unknown>) =>
    (
      (await p.then(
        () => undefined,
        (e: unknown) => e,
      )) as { code?: string } | undefined
    )?.code;

  it("unknown pods, services and ports, malformed references", async () => {
    expect(await code(explainIn("a", "demo/nope", "demo/payments:80"))).toBe("AMBIT_E_UNKNOWN_POD");
    expect(await code(explainIn("a", "demo/client", "demo/nope:80"))).toBe("AMBIT_E_UNKNOWN_POD");
    expect(await code(explainIn("a", "demo/client", "demo/payments:81"))).toBe("AMBIT_E_NO_ENDPOINT");
    expect(await code(explainIn("a", "nope/client", "demo/payments:80"))).toBe("AMBIT_E_UNKNOWN_POD");
    for (const [src, dst] of [
      ["client", "demo/payments:80"],
      ["demo/client:80", "demo/payments"],
      ["demo/client", "demo/payments:0"],
      ["demo/client", "Demo/payments"],
    ])
      expect(await code(explainIn("a", src!, dst!)), `${src} ${dst}`).toBe("AMBIT_E_USAGE");
  });

  it("no mesh installed, and an unreachable agent", async () => {
    const noMesh = recordedApi("a", (o) => (o.pods = o.pods!.filter((p) => !p.metadata.name.startsWith("ambit-agent"))));
    await expect(explainConnection(noMesh, recordedAgents("a"), "demo/client", "demo/payments:80")).rejects.toMatchObject({
      code: "AMBIT_E_NO_MESH",
      message: expect.stringContaining("install the mesh"),
    });
    const down: AgentTransport = {
      fetchAgentJson: async () => Promise.reject(Object.assign(new Error("cannot reach the agent on node-2"), { code: "AMBIT_E_AGENT_UNREACHABLE" })),
    };
    expect(await code(explainConnection(recordedApi("a"), down, "demo/client", "demo/payments:80"))).toBe("AMBIT_E_AGENT_UNREACHABLE");
    expect(await code(explainConnection(recordedApi("a"), { fetchAgentJson: async () => ({ hello: 1 }) }, "demo/client", "demo/payments:80"))).toBe(
      "AMBIT_E_AGENT_BAD_ANSWER",
    );
  });
});
