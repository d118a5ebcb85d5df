// The mesh across projected token rotation: the sandbox issues 20 s tokens, so agent and controller must follow the files.
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT_REQUIRED, ambit, freshSandboxWithMesh, isRoot, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";

const TOKEN_SECONDS = 20;
const SHORT_TOKENS = { AMBIT_DEV_MAX_TOKEN_SECONDS: String(TOKEN_SECONDS) };

/** The token file a pod's container sees, and when that token expires. */
async function tokenOf(pod: string, file = "/var/run/secrets/kubernetes.io/serviceaccount/token"): Promise<{ token: string; exp: number }> {
  const r = await ambit(["dev", "exec", pod, "--", "cat", file]);
  if (r.exitCode !== 0) throw new Error(`cannot read ${file} in ${pod}: ${r.stderr}`);
  const payload = JSON.parse(Buffer.from(r.stdout.trim().split(".")[1]!, "base64url").toString("utf8")) as { exp: number };
  return { token: r.stdout.trim(), exp: payload.exp };
}
const podName = async (ns: string, selector: string) =>
  (await kubectl(["get", "pods", "-n", ns, "-l", selector, "-o", "jsonpath={.items[0].metadata.name}"])).stdout;

describeTier(isRoot, ROOT_REQUIRED)("agent and controller across projected token rotation", () => {
  beforeAll(async () => {
    await freshSandboxWithMesh(SHORT_TOKENS);
  }, 180_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("keeps enrolling pods, issuing certificates and writing policy status after every token it started with expired", async () => {
    const agent = `ambit-system/${await podName("ambit-system", "app=ambit-agent")}`;
    const controller = `ambit-system/${await podName("ambit-system", "app=ambit-controller")}`;
    const first = { agent: await tokenOf(agent), ca: await tokenOf(agent, "/var/run/secrets/tokens/ambit-ca/token"), controller: await tokenOf(controller) };
    expect(first.agent.exp * 1000 - Date.now()).toBeLessThanOrEqual(TOKEN_SECONDS * 1000);

    // Bounded poll on the event that matters: every token the programs started with has expired, and the kubelet has
    // projected new ones (at 80% of each lifetime).
    const lastExpiry = Math.max(first.agent.exp, first.ca.exp, first.controller.exp) * 1000;
    await expect
      .poll(
        async () =>
          Date.now() > lastExpiry + 1000 && (await tokenOf(agent)).token !== first.agent.token && (await tokenOf(controller)).token !== first.controller.token,
        { timeout: (TOKEN_SECONDS + 15) * 1000, interval: 1000 },
      )
      .toBe(true);

    // Enrolling the namespace now needs the agents' API watches and CSRs (rotated ambit-ca token, reviewed by the
    // controller with its own rotated token): every demo pod must be captured.
    expect((await kubectl(["label", "ns", "demo", "ambit.dev/dataplane-mode=ambient"])).exitCode).toBe(0);
    await expect
      .poll(async () => (await kubectl(["get", "pods", "-n", "demo", "-o", "jsonpath={.items[*].metadata.annotations.ambit\\.dev/redirection}"])).stdout, {
        timeout: 30_000,
        interval: 300,
      })
      .toBe(Array(5).fill("enabled").join(" "));
    const chain = await ambit(["dev", "exec", "demo/client", "--", "curl", "-s", "--max-time", "5", "http://orders.demo/"]);
    expect(chain.stdout).toContain('"service":"payments"');

    // The controller writes policy status with its rotated token.
    const policy =
      "apiVersion: security.ambit.dev/v1\nkind: AuthorizationPolicy\nmetadata: {name: after-rotation, namespace: demo}\nspec: {action: DENY, rules: [{from: [{source: {namespaces: [nowhere]}}]}]}\n";
    expect((await kubectl(["apply", "-f", "-"], { input: policy })).exitCode).toBe(0);
    await expect
      .poll(
        async () => (await kubectl(["get", "authorizationpolicy", "-n", "demo", "after-rotation", "-o", "jsonpath={.status.conditions[0].reason}"])).stdout,
        { timeout: 15_000, interval: 300 },
      )
      .toBe("Accepted");

    // Nothing was refused on the way: no 401 in either program's log, and no 403 either (the API server enforces
    // RBAC, so this also shows the manifests grant what agent and controller use).
    for (const pod of [agent, controller]) {
      const logs = await ambit(["dev", "logs", pod]);
      expect(logs.stdout, `${pod} log`).not.toMatch(/\b40[13]\b|Unauthorized|Forbidden|forbidden/);
    }
  }, 150_000);
});
