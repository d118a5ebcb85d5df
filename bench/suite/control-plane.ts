// The control plane's numbers for the report, from the existing benches run as they are: CA issuances per second and policy propagation at 1,000 pods.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../../sandbox/config.ts";
import type { ControlPlane } from "../report/index.ts";
import { NODE } from "../tools/bench-sandbox.ts";

const RESULTS = path.join(REPO_ROOT, "bench", "results");

/** `bench/ca-issue.ts`: CSR verification + P-256 signing on one core. */
export async function caIssuances(quick: boolean): Promise<number> {
  await execa(NODE, [path.join(REPO_ROOT, "bench", "ca-issue.ts")], {
    env: { ISSUANCES: quick ? "3000" : "20000", SECONDS: quick ? "2" : "8" },
    timeout: 300_000,
  });
  const out = JSON.parse(await fs.readFile(path.join(RESULTS, "ca-issue.json"), "utf8")) as { signingOneCore: { issuancesPerSecond: number } };
  return out.signingOneCore.issuancesPerSecond;
}

/** `bench/controller-scale.ts` at `pods` pods over `nodes` nodes: a policy change to its enforcement on every agent. */
export async function policyPropagation(pods: number, nodes: number, rounds: number): Promise<NonNullable<ControlPlane["policyPropagationMs"]>> {
  await execa(NODE, [path.join(REPO_ROOT, "bench", "controller-scale.ts")], {
    env: { PODS: String(pods), NODES: String(nodes), ROUNDS: String(rounds), SETTLE_S: "1" },
    timeout: 600_000,
  });
  const out = JSON.parse(await fs.readFile(path.join(RESULTS, `controller-scale-${pods}.json`), "utf8")) as {
    policyToEnforcementMs: { allAgentsP50: number; allAgentsP99: number };
  };
  return { p50: out.policyToEnforcementMs.allAgentsP50, p99: out.policyToEnforcementMs.allAgentsP99, pods, nodes };
}
