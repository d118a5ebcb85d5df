// End to end on the sandbox: waypoint Gateways are deployed by the controller, and a destination bound to a waypoint that cannot take traffic fails closed.
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT_REQUIRED, ambit, enrollDemo, freshSandboxWithMesh, fromAgent, isRoot, kubeconfig, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";
import { WAYPOINT_GATEWAY } from "../support/waypoint.ts";

/** What `from` gets back from `url`: the answering service's name, or the curl failure. */
async function reach(from: string, url: string): Promise<string> {
  const r = await ambit(["dev", "exec", from, "--", "curl", "-s", "--max-time", "4", url]);
  if (r.exitCode !== 0) return `curl exit ${r.exitCode}`;
  return /"service":"([a-z]+)"/.exec(r.stdout)?.[1] ?? r.stdout.slice(0, 80);
}

/** Connections payments' agents accepted for it (the destination reporter's count), summed over the nodes. */
async function acceptedByPayments(): Promise<number> {
  let total = 0;
  for (const node of ["node-1", "node-2"]) {
    const text = await fromAgent(node, (ip) => `http://${ip}:15020/metrics`);
    for (const line of text.split("\n")) {
      if (line.startsWith("istio_tcp_connections_opened_total{") && line.includes('reporter="destination"') && line.includes('destination_workload="payments"'))
        total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}

const refusedNoWaypoint = async (node: string) =>
  Number(
    /^ambit_connections_refused_total\{[^}]*reason="no_waypoint"[^}]*\} (\d+)/m.exec(await fromAgent(node, (ip) => `http://${ip}:15020/metrics`))?.[1] ?? 0,
  );

describeTier(isRoot, ROOT_REQUIRED)("waypoints on the sandbox", () => {
  let ordersNode = "";

  beforeAll(async () => {
    await freshSandboxWithMesh({}, { gatewayApi: true });
    await enrollDemo();
    ordersNode = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=orders", "-o", "jsonpath={.items[0].spec.nodeName}"])).stdout;
  }, 240_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("a Service bound to a waypoint that does not exist: every connection fails and none reaches the pods, until the label goes", async () => {
    await expect.poll(() => reach("demo/orders", "http://payments.demo/"), { timeout: 20_000 }).toBe("payments");
    expect((await kubectl(["label", "svc", "-n", "demo", "payments", "ambit.dev/use-waypoint=missing"])).exitCode).toBe(0);
    // The binding reaches orders' agent with the next config version.
    await expect.poll(() => reach("demo/orders", "http://payments.demo/"), { timeout: 20_000 }).toMatch(/^curl exit (52|56)$/);
    const accepted = await acceptedByPayments();
    const refused = await refusedNoWaypoint(ordersNode);
    for (let i = 0; i < 5; i++) expect(await reach("demo/orders", "http://payments.demo/")).toMatch(/^curl exit (52|56)$/);
    expect(await acceptedByPayments()).toBe(accepted);
    expect(await refusedNoWaypoint(ordersNode)).toBeGreaterThanOrEqual(refused + 5);

    const services = await ambit(["services", "-n", "demo", "--node", ordersNode], { env: { KUBECONFIG: kubeconfig } });
    expect(services.stdout).toMatch(/^demo\s+payments\s+\S+\s+demo\/missing\s/m);

    expect((await kubectl(["label", "svc", "-n", "demo", "payments", "ambit.dev/use-waypoint-"])).exitCode).toBe(0);
    await expect.poll(() => reach("demo/orders", "http://payments.demo/"), { timeout: 20_000 }).toBe("payments");
  });

  it("the controller deploys a waypoint Gateway that carries bound traffic; without a ready pod it is not Programmed and bound traffic fails; deleting it removes what was made", async () => {
    expect((await kubectl(["apply", "-f", "-"], { input: WAYPOINT_GATEWAY })).exitCode).toBe(0);
    const condition = async (type: string) =>
      (await kubectl(["get", "gateway", "-n", "demo", "waypoint", "-o", `jsonpath={.status.conditions[?(@.type=="${type}")].status}`])).stdout;
    await expect.poll(() => condition("Accepted"), { timeout: 20_000 }).toBe("True");
    const owner = await kubectl([
      "get",
      "deploy",
      "-n",
      "demo",
      "waypoint",
      "-o",
      "jsonpath={.metadata.ownerReferences[0].kind}/{.spec.template.spec.serviceAccountName}",
    ]);
    expect(owner.stdout).toBe("Gateway/waypoint");
    expect((await kubectl(["get", "gatewayclass", "ambit-waypoint", "-o", 'jsonpath={.status.conditions[?(@.type=="Accepted")].status}'])).stdout).toBe("True");
    await expect.poll(() => condition("Programmed"), { timeout: 30_000 }).toBe("True");
    expect((await kubectl(["label", "svc", "-n", "demo", "payments", "ambit.dev/use-waypoint=waypoint"])).exitCode).toBe(0);
    await expect.poll(() => reach("demo/orders", "http://payments.demo/"), { timeout: 20_000 }).toBe("payments");

    // No replica left (an operator scaled it down, or its pods cannot start): not Programmed, and bound traffic fails
    // rather than going around the waypoint. The controller leaves replicas to the operator (or an autoscaler).
    expect((await kubectl(["scale", "deploy", "-n", "demo", "waypoint", "--replicas=0"])).exitCode).toBe(0);
    await expect.poll(() => condition("Programmed"), { timeout: 30_000 }).toBe("False");
    await expect.poll(() => reach("demo/orders", "http://payments.demo/"), { timeout: 20_000 }).toMatch(/^curl exit (52|56)$/);
    expect((await kubectl(["label", "svc", "-n", "demo", "payments", "ambit.dev/use-waypoint-"])).exitCode).toBe(0);
    await expect.poll(() => reach("demo/orders", "http://payments.demo/"), { timeout: 20_000 }).toBe("payments");

    expect((await kubectl(["delete", "gateway", "-n", "demo", "waypoint"])).exitCode).toBe(0);
    await expect
      .poll(async () => (await kubectl(["get", "deploy,svc,sa,configmap", "-n", "demo", "waypoint", "--ignore-not-found", "-o", "name"])).stdout, {
        timeout: 20_000,
      })
      .toBe("");
  });
});
