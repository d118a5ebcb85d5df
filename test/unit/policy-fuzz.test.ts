// Property-based tests of the policy path's hostile-input surfaces: the compiler on any JSON, and the agent's address sets.
import net from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IpSet, PolicyStore } from "../../agent/authorization/index.ts";
import { compileAuthorizationPolicy, compilePeerAuthentication } from "../../controller/authorization/index.ts";
import type { KubeObject } from "../../kube/client.ts";

// Bounded in time: each property runs a fixed number of cases with a fixed seed, so a failure replays exactly.
const RUNS = { numRuns: 400, seed: 20261206 };

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
const v6 = fc
  .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
  .map((g) => net.SocketAddress.parse(`[${g.map((x) => x.toString(16)).join(":")}]:1`)!.address);
const v4Block = fc.tuple(v4, fc.option(fc.nat(32), { nil: undefined })).map(([a, b]) => (b === undefined ? a : `${a}/${b}`));
const v6Block = fc.tuple(v6, fc.option(fc.nat(128), { nil: undefined })).map(([a, b]) => (b === undefined ? a : `${a}/${b}`));

function blockList(blocks: string[]): net.BlockList {
  const list = new net.BlockList();
  for (const b of blocks) {
    const [addr, bits] = b.split("/");
    const family = net.isIP(addr!) === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(addr!, family);
    else list.addSubnet(addr!, Number(bits), family);
  }
  return list;
}

describe("IpSet agrees with node's BlockList", () => {
  it("on IPv4 blocks and addresses, including neighbours of every block's bounds", () => {
    fc.assert(
      fc.property(fc.array(v4Block, { maxLength: 30 }), fc.array(v4, { maxLength: 30 }), (blocks, probes) => {
        const set = new IpSet(blocks);
        const reference = blockList(blocks);
        const near = blocks.map((b) => b.split("/")[0]!);
        for (const ip of [...probes, ...near]) expect(set.has(ip), `${ip} in ${blocks.join(",")}`).toBe(reference.check(ip, "ipv4"));
      }),
      RUNS,
    );
  });

  it("on IPv6 blocks and addresses", () => {
    fc.assert(
      fc.property(fc.array(v6Block, { maxLength: 20 }), fc.array(v6, { maxLength: 20 }), (blocks, probes) => {
        const set = new IpSet(blocks);
        const reference = blockList(blocks);
        for (const ip of [...probes, ...blocks.map((b) => b.split("/")[0]!)])
          expect(set.has(ip), `${ip} in ${blocks.join(",")}`).toBe(reference.check(ip, "ipv6"));
      }),
      RUNS,
    );
  });

  it("matches IPv4-mapped IPv6 clients against IPv4 blocks, and refuses invalid blocks", () => {
    expect(new IpSet(["10.0.0.0/8"]).has("::ffff:10.1.2.3")).toBe(true);
    expect(new IpSet(["::ffff:10.0.0.0/104"]).has("10.9.9.9")).toBe(true);
    expect(new IpSet(["10.0.0.0/8"]).has("not-an-ip")).toBe(false);
    for (const bad of ["10.0.0.0/33", "10.0.0.0/-1", "fd00::/129", "x", "10.0.0.0/8/8", "10.0.0.0/"])
      expect(() => new IpSet([bad]), bad).toThrow(/not an IP address/);
  });
});

describe("the policy compiler on hostile input", () => {
  const object = (kind: string, spec: unknown): KubeObject =>
    ({
      apiVersion: "security.ambit.dev/v1",
      kind,
      metadata: { name: "fuzz", namespace: "demo", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec,
    }) as KubeObject;
  // Shapes near the real schema hit deeper branches than random JSON alone.
  const nearSchema = fc.record(
    {
      action: fc.oneof(fc.constantFrom("ALLOW", "DENY", "AUDIT", "CUSTOM", ""), fc.jsonValue()),
      selector: fc.oneof(fc.record({ matchLabels: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.jsonValue())) }), fc.jsonValue()),
      rules: fc.oneof(
        fc.array(
          fc.record(
            {
              from: fc.array(
                fc.record({
                  source: fc.dictionary(
                    fc.constantFrom("principals", "ipBlocks", "namespaces", "notIpBlocks", "bogus"),
                    fc.array(fc.oneof(fc.string(), v4Block)),
                  ),
                }),
              ),
              to: fc.array(fc.record({ operation: fc.record({ ports: fc.array(fc.oneof(fc.string(), fc.integer())) }) })),
            },
            { requiredKeys: [] },
          ),
        ),
        fc.jsonValue(),
      ),
    },
    { requiredKeys: [] },
  );

  it("never throws, always yields a condition, and what it yields an agent accepts", () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), nearSchema), (spec) => {
        const a = compileAuthorizationPolicy(object("AuthorizationPolicy", spec));
        const p = compilePeerAuthentication(object("PeerAuthentication", spec));
        for (const c of [a.condition, p.condition]) expect(["Accepted", "PartiallyEnforced", "Invalid"]).toContain(c.reason);
        // Fail closed: an invalid DENY denies everything it selects; an invalid peer authentication is STRICT.
        if (a.condition.reason === "Invalid" && a.compiled.action === "DENY") expect(a.compiled.rules).toEqual([{}]);
        if (p.condition.reason === "Invalid") expect(p.compiled.mode).toBe("STRICT");
        new PolicyStore({ rootNamespace: "ambit-system" }).replace([a.compiled], [p.compiled]);
      }),
      RUNS,
    );
  });
});
