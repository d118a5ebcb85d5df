// End to end on the sandbox: `ambit explain` through the API server (port-forward to the destination agent) agrees with the traffic.
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT_REQUIRED, ambit, configDumpOf, enrollDemo, freshSandboxWithMesh, isRoot, kubeconfig, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";
import { ALLOW_ORDERS_TO_PAYMENTS } from "../support/demo-mesh.ts";

const explain = (...args: string[]) => ambit(["explain", ...args], { env: { KUBECONFIG: kubeconfig } });

/** What `from` gets back from `url`: the answering service's name, or the curl failure. */
async function reach(from: string, url: string): Promise<string> {
  const r = await ambit(["dev", "exec", from, "--", "curl", "-s", "--max-time", "4", url]);
  if (r.exitCode !== 0) return `curl exit ${r.exitCode}`;
  return /"service":"([a-z]+)"/.exec(r.stdout)?.[1] ?? r.stdout.slice(0, 80);
}

describeTier(isRoot, ROOT_REQUIRED)("ambit explain on the sandbox", () => {
  beforeAll(async () => {
    await freshSandboxWithMesh();
    await enrollDemo();
    expect((await kubectl(["apply", "-f", "-"], { input: ALLOW_ORDERS_TO_PAYMENTS })).exitCode).toBe(0);
    // Every agent that holds a payments pod has the policy before explain reads its config.
    const nodes = [
      ...new Set((await kubectl(["get", "pods", "-n", "demo", "-l", "app=payments", "-o", "jsonpath={.items[*].spec.nodeName}"])).stdout.split(" ")),
    ];
    const dumps = await Promise.all(nodes.map(configDumpOf));
    // A bounded poll (expect.poll is for tests, not hooks).
    const holdsPolicy = async () =>
      (await Promise.all(dumps.map(async (d) => (await d()).policies.authorizations.some((p) => p.name === "payments-from-orders")))).every(Boolean);
    for (let i = 0; !(await holdsPolicy()); i++) {
      if (i > 75) throw new Error("the agents holding payments pods did not get the policy within 15 s");
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 240_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("client -> payments:80 is denied, naming the ALLOW policies that select payments; the traffic agrees", async () => {
    const table = await explain("demo/client", "demo/payments:80");
    expect(table.stderr).toBe("");
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toMatch(/^Decision {5}DENY: ALLOW policies select the destination \(demo\/allow-nothing, demo\/payments-from-orders\)/);
    const json = await explain("demo/client", "demo/payments:80", "-o", "json");
    const r = JSON.parse(json.stdout) as Record<string, Record<string, unknown>>;
    expect(r.decision).toMatchObject({ allowed: false, evaluated: true, decidedBy: "no-allow-match" });
    expect(r.source).toMatchObject({ identity: "spiffe://cluster.local/ns/demo/sa/client", enrolled: true });
    expect(r.service).toMatchObject({ service: "demo/payments", port: 80, targetPort: 8080 });
    expect(await reach("demo/client", "http://payments.demo/")).toMatch(/^curl exit (52|56)$/);
  });

  it("orders -> payments:80 is allowed by payments-from-orders rule 0 (its principals); the traffic agrees", async () => {
    const table = await explain("demo/orders", "demo/payments:80");
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toContain("rule: ALLOW demo/payments-from-orders rule 0: from[0] principals [cluster.local/ns/demo/sa/orders]");
    const r = JSON.parse((await explain("demo/orders", "demo/payments:80", "-o", "json")).stdout) as Record<string, Record<string, unknown>>;
    expect(r.decision).toMatchObject({
      allowed: true,
      decidedBy: "allow",
      match: { policy: { namespace: "demo", name: "payments-from-orders" }, ruleIndex: 0 },
    });
    expect(await reach("demo/orders", "http://payments.demo/")).toBe("payments");
  });

  it("an unknown pod is a clear error with a stable code and a non-zero exit", async () => {
    const r = await explain("demo/nope", "demo/payments:80");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error \[AMBIT_E_UNKNOWN_POD\]: source demo\/nope/);
  });
});
