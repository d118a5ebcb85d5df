// `ambit enroll|unenroll <namespace>`: sets or removes the namespace's dataplane-mode label, then waits until every running pod reports it.
import type { Argv } from "yargs";
import { DATAPLANE_MODE_AMBIENT, DATAPLANE_MODE_LABEL, REDIRECTION_ANNOTATION, captureIntent } from "../contract/capture-intent.ts";
import { type KubeObject, pathFor } from "../kube/client.ts";
import { type CliEnv, type CommonArgs, withCommonOptions, withEnv } from "./context.ts";
import { CliError, fromKubeError } from "./errors.ts";
import { CLI_API_VERSION, formatDocument } from "./output.ts";

export interface EnrollArgs extends CommonArgs {
  ns: string;
  /** Seconds to wait for every running pod to report; 0 returns once the label is set. */
  timeout: number;
}

export interface PodProgress {
  name: string;
  /** What the agent wrote on the pod (`ambit.dev/redirection`), or null before it has. */
  redirection: string | null;
  expected: "enabled" | "disabled";
  done: boolean;
}

export interface EnrollResult {
  apiVersion: typeof CLI_API_VERSION;
  kind: "EnrollResult";
  namespace: string;
  enrolled: boolean;
  pods: PodProgress[];
}

/** Running pods of the namespace and whether each already carries what its agent writes once it applied the change. */
export function progressOf(namespace: KubeObject, pods: KubeObject[]): PodProgress[] {
  return pods
    .filter((p) => p.status?.phase === "Running" && !p.metadata.deletionTimestamp && !p.spec?.hostNetwork)
    .map((p) => {
      const expected = captureIntent(namespace, p).capture ? ("enabled" as const) : ("disabled" as const);
      const redirection = p.metadata.annotations?.[REDIRECTION_ANNOTATION] ?? null;
      // A pod never captured carries no annotation at all: that is released too.
      return { name: p.metadata.name, redirection, expected, done: redirection === expected || (expected === "disabled" && redirection === null) };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export async function runEnroll(env: CliEnv, args: EnrollArgs, enroll: boolean): Promise<void> {
  const nsPath = pathFor("v1", "namespaces", undefined, args.ns);
  let namespace: KubeObject;
  try {
    namespace = await env.kube.mergePatch(nsPath, { metadata: { labels: { [DATAPLANE_MODE_LABEL]: enroll ? DATAPLANE_MODE_AMBIENT : null } } });
  } catch (err) {
    if ((err as { status?: number }).status === 404)
      throw new CliError("AMBIT_E_UNKNOWN_NAMESPACE", `no namespace "${args.ns}"; \`kubectl get namespaces\` lists them`, { cause: err });
    throw fromKubeError(err, `${enroll ? "labelling" : "unlabelling"} namespace ${args.ns}`);
  }
  const verb = enroll ? "captured" : "released";
  const table = args.output === "table" || args.output === "wide";
  if (table)
    env.stderr(`namespace/${args.ns} ${enroll ? `labelled ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT}` : `label ${DATAPLANE_MODE_LABEL} removed`}\n`);
  const deadline = env.now() + args.timeout * 1000;
  let pods: PodProgress[] = [];
  for (;;) {
    try {
      pods = progressOf(namespace, await env.kube.list(pathFor("v1", "pods", args.ns)));
    } catch (err) {
      throw fromKubeError(err, `listing pods of ${args.ns}`);
    }
    if (pods.every((p) => p.done) || args.timeout <= 0) break;
    if (env.now() >= deadline) {
      const waiting = pods.filter((p) => !p.done).map((p) => `${p.name} (${REDIRECTION_ANNOTATION}=${p.redirection ?? "<none>"})`);
      throw new CliError(
        "AMBIT_E_TIMEOUT",
        `after ${args.timeout}s ${waiting.length} of ${pods.length} running pods of ${args.ns} are not ${verb} yet: ${waiting.join(", ")}; check the agent on their nodes (ambit status, kubectl -n ambit-system logs -l app=ambit-agent)`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const result: EnrollResult = { apiVersion: CLI_API_VERSION, kind: "EnrollResult", namespace: args.ns, enrolled: enroll, pods };
  if (!table) return env.stdout(formatDocument(result, args.output as "json" | "yaml"));
  const done = pods.filter((p) => p.done).length;
  env.stdout(`${done}/${pods.length} running pods of ${args.ns} ${args.timeout <= 0 ? "(not waited for) " : ""}${verb}\n`);
}

export function enrollCommands(y: Argv): Argv {
  const builder = (c: Argv) =>
    withCommonOptions(c)
      .positional("ns", { type: "string", demandOption: true, describe: "namespace" })
      .option("timeout", { type: "number", default: 60, describe: "seconds to wait for every running pod to report; 0 = do not wait" });
  return y
    .command(
      "enroll <ns>",
      `add a namespace to the mesh (label ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT}) and wait until its running pods are captured`,
      builder,
      (args) => withEnv(args as unknown as EnrollArgs, (env) => runEnroll(env, args as unknown as EnrollArgs, true)),
    )
    .command(
      "unenroll <ns>",
      `take a namespace out of the mesh (remove label ${DATAPLANE_MODE_LABEL}) and wait until its running pods are released`,
      builder,
      (args) => withEnv(args as unknown as EnrollArgs, (env) => runEnroll(env, args as unknown as EnrollArgs, false)),
    );
}
