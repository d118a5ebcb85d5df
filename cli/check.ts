// `ambit check`: pass/fail lines for what a working mesh needs (API, CRDs, controller, agents, CNI, certificates, clocks), each failure with what to do.
import type { Argv } from "yargs";
import type { ConfigDump } from "../contract/agent-admin.ts";
import { pathFor } from "../kube/client.ts";
import { type AgentPod, MESH_NAMESPACE } from "./agents.ts";
import { type CliEnv, type CommonArgs, withCommonOptions, withEnv } from "./context.ts";
import { CliError } from "./errors.ts";
import { CLI_API_VERSION, formatDocument } from "./output.ts";
import { CERT_WARNING_SECONDS, collectStatus } from "./status.ts";

export const MESH_CRDS = ["authorizationpolicies.security.ambit.dev", "peerauthentications.security.ambit.dev", "backendtrafficpolicies.networking.ambit.dev"];
/** More than this between this machine's clock and the controller's breaks certificate validity windows. */
export const MAX_CLOCK_SKEW_SECONDS = 5;

export interface CheckLine {
  check: string;
  passed: boolean;
  message: string;
  /** What to do about a failure. */
  hint?: string;
}

export interface CheckResult {
  apiVersion: typeof CLI_API_VERSION;
  kind: "CheckResult";
  passed: boolean;
  checks: CheckLine[];
}

const pass = (check: string, message: string): CheckLine => ({ check, passed: true, message });
const fail = (check: string, message: string, hint: string): CheckLine => ({ check, passed: false, message, hint });

export async function runChecks(env: CliEnv): Promise<CheckResult> {
  const checks: CheckLine[] = [];
  const done = (): CheckResult => ({ apiVersion: CLI_API_VERSION, kind: "CheckResult", passed: checks.every((c) => c.passed), checks });

  try {
    const v = await env.kube.request<{ gitVersion?: string }>("GET", "/version");
    checks.push(pass("api", `Kubernetes API reachable (${v?.gitVersion ?? "version unknown"})`));
  } catch (err) {
    checks.push(fail("api", `Kubernetes API not reachable: ${(err as Error).message}`, "check --kubeconfig/--context and `kubectl cluster-info`"));
    return done();
  }

  for (const crd of MESH_CRDS) {
    try {
      await env.kube.get(pathFor("apiextensions.k8s.io/v1", "customresourcedefinitions", undefined, crd));
      checks.push(pass("crds", `CRD ${crd} installed`));
    } catch (err) {
      const status = (err as { status?: number }).status;
      checks.push(
        fail(
          "crds",
          `CRD ${crd} ${status === 404 ? "is not installed" : `cannot be read: ${(err as Error).message}`}`,
          status === 404 ? "install the chart's CRDs: kubectl apply -f daemonset/crds/" : "check your RBAC permissions (kubectl auth can-i get crd)",
        ),
      );
    }
  }

  const status = await collectStatus(env);
  const running = status.controllers.filter((c) => c.ready);
  checks.push(
    running.length > 0
      ? pass("controller", `controller ready (${running.length}/${status.controllers.length} replicas)`)
      : fail(
          "controller",
          status.controllers.length === 0 ? "no controller pod" : "no controller replica is ready",
          `kubectl -n ${MESH_NAMESPACE} get deploy,pods -l app=ambit-controller; kubectl -n ${MESH_NAMESPACE} logs -l app=ambit-controller`,
        ),
  );
  checks.push(
    status.leader
      ? pass("leader", `leader elected (${status.leader})`)
      : fail(
          "leader",
          "no controller holds a fresh leader lease",
          `kubectl -n ${MESH_NAMESPACE} get lease ambit-controller -o yaml; check the controllers' logs`,
        ),
  );

  const pods = new Map<string, AgentPod>((await env.agents.agents()).map((a) => [a.node, a]));
  for (const a of status.agents) {
    const where = `node ${a.node}`;
    if (!a.pod) {
      checks.push(fail("agent", `${where}: no agent pod`, `kubectl -n ${MESH_NAMESPACE} describe ds ambit-agent (taints, node selector, resources)`));
      continue;
    }
    checks.push(
      a.ready && a.reachable
        ? pass("agent", `${where}: agent ${a.pod} ready, config version ${a.configVersion}`)
        : fail(
            "agent",
            `${where}: agent ${a.pod} ${a.ready ? "does not answer on its admin port" : "is not ready"}`,
            `kubectl -n ${MESH_NAMESPACE} describe pod ${a.pod}; kubectl -n ${MESH_NAMESPACE} logs ${a.pod} -c agent`,
          ),
    );
    const cni = pods.get(a.node)?.cniChained;
    if (cni !== undefined)
      checks.push(
        cni
          ? pass("cni", `${where}: Ambit CNI plugin chained`)
          : fail(
              "cni",
              `${where}: Ambit CNI plugin not chained (install-cni not ready)`,
              `kubectl -n ${MESH_NAMESPACE} logs ${a.pod} -c install-cni; is the node's primary CNI configured?`,
            ),
      );
  }

  const now = env.now();
  for (const a of status.agents.filter((x) => x.reachable)) {
    const dump = await env.agents.get<ConfigDump>(a.node, "/config_dump").catch(() => undefined);
    if (!dump) continue;
    const bad = [
      ...dump.certificates.flatMap((c) => c.chain.map((e) => ({ ...e, identity: c.identity }))),
      ...(dump.trustBundle.certificates ?? []).map((e) => ({ ...e, identity: "trust bundle root" })),
    ].filter((c) => Date.parse(c.notBefore) > now || Date.parse(c.notAfter) - now < CERT_WARNING_SECONDS * 1000);
    checks.push(
      bad.length === 0
        ? pass("certificates", `node ${a.node}: ${dump.certificates.length} certificates valid`)
        : fail(
            "certificates",
            `node ${a.node}: ${bad.map((c) => `${c.identity} (${Date.parse(c.notBefore) > now ? `not valid before ${c.notBefore}` : `expires ${c.notAfter}`})`).join(", ")}`,
            "check the agent's logs for renewal failures and the controller's CA (kubectl -n ambit-system logs -l app=ambit-controller)",
          ),
    );
  }

  // The leader renews its lease every few seconds with its own clock: a renewal in the future means clocks disagree.
  const lease = await env.kube.get(pathFor("coordination.k8s.io/v1", "leases", MESH_NAMESPACE, "ambit-controller")).catch(() => undefined);
  const renew = Date.parse(String(lease?.spec?.renewTime ?? ""));
  if (Number.isFinite(renew)) {
    const ahead = (renew - now) / 1000;
    checks.push(
      ahead <= MAX_CLOCK_SKEW_SECONDS
        ? pass("clock", `controller's clock agrees with this machine's (lease renewed ${Math.max(0, Math.round(-ahead))}s ago)`)
        : fail("clock", `controller's clock is ${Math.round(ahead)}s ahead of this machine's`, "synchronise clocks (NTP) on the nodes and this machine"),
    );
  }
  return done();
}

export function formatChecks(r: CheckResult): string {
  return r.checks.map((c) => `${c.passed ? "[PASS]" : "[FAIL]"} ${c.message}${c.hint ? `\n       -> ${c.hint}` : ""}\n`).join("");
}

export async function runCheck(env: CliEnv, args: CommonArgs): Promise<void> {
  const r = await runChecks(env);
  env.stdout(args.output === "json" || args.output === "yaml" ? formatDocument(r, args.output) : formatChecks(r));
  const failed = r.checks.filter((c) => !c.passed);
  if (failed.length > 0)
    throw new CliError("AMBIT_E_UNHEALTHY", `${failed.length} check${failed.length === 1 ? "" : "s"} failed: ${failed.map((c) => c.message).join("; ")}`);
}

export function checkCommand(y: Argv): Argv {
  return y.command(
    "check",
    "checks API access, CRDs, controller and leader, an agent and the CNI plugin on every node, certificates and clocks",
    withCommonOptions,
    (args) => withEnv(args as CommonArgs, (env) => runCheck(env, args as CommonArgs)),
  );
}
