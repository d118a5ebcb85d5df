// What every operator command starts from: the common flags, the Kubernetes client they select, and the agent transport.
import { KubeConfig } from "@kubernetes/client-node";
import type { Argv } from "yargs";
import { KubeClient } from "../kube/client.ts";
import { type AgentTransport, PortForwardTransport } from "./agents.ts";
import { CliError } from "./errors.ts";
import { OUTPUT_FORMATS, type OutputFormat } from "./output.ts";

export interface CommonArgs {
  output: OutputFormat;
  namespace?: string;
  allNamespaces?: boolean;
  node?: string;
  kubeconfig?: string;
  context?: string;
}

/** The flags every operator command takes (`ambit dev` has its own). */
export function withCommonOptions<T>(y: Argv<T>) {
  return y
    .option("output", { alias: "o", choices: OUTPUT_FORMATS, default: "table" as OutputFormat, describe: "table, wide, json or yaml" })
    .option("namespace", { alias: "n", type: "string", describe: "only this namespace" })
    .option("all-namespaces", { alias: "A", type: "boolean", describe: "every namespace (the default where it applies)" })
    .option("node", { type: "string", describe: "the agent of this node" })
    .option("kubeconfig", { type: "string", describe: "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)" })
    .option("context", { type: "string", describe: "kubeconfig context to use" });
}

/** What a command runs against; tests build one from fixtures. */
export interface CliEnv {
  kube: KubeClient;
  agents: AgentTransport;
  stdout(text: string): void;
  stderr(text: string): void;
  now(): number;
}

export function loadKubeConfig(args: Pick<CommonArgs, "kubeconfig" | "context">): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (args.kubeconfig) kc.loadFromFile(args.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new CliError("AMBIT_E_KUBECONFIG", `cannot load the kubeconfig ${args.kubeconfig ?? "(default)"}: ${(err as Error).message}`, { cause: err });
  }
  if (args.context) {
    if (!kc.getContextObject(args.context))
      throw new CliError("AMBIT_E_KUBECONFIG", `no context "${args.context}" in the kubeconfig; \`kubectl config get-contexts\` lists them`);
    kc.setCurrentContext(args.context);
  }
  // With no kubeconfig anywhere, client-node (like kubectl) falls back to http://localhost:8080, which fails later with a
  // TLS message that names none of this.
  const cluster = kc.getCurrentCluster();
  if (!args.kubeconfig && cluster?.server === "http://localhost:8080" && kc.getContexts().length <= 1 && !process.env.KUBECONFIG)
    throw new CliError(
      "AMBIT_E_KUBECONFIG",
      "no kubeconfig found ($KUBECONFIG is unset, ~/.kube/config does not exist, and this is not a pod): pass --kubeconfig or set KUBECONFIG (for the sandbox: export KUBECONFIG=$(npx ambit dev kubeconfig))",
    );
  if (!cluster) throw new CliError("AMBIT_E_KUBECONFIG", "the kubeconfig names no current cluster; pass --kubeconfig or --context, or set KUBECONFIG");
  return kc;
}

/** The real environment: the API server from the kubeconfig, agents through port-forwards. */
export function openEnv(args: Pick<CommonArgs, "kubeconfig" | "context">): CliEnv {
  const kube = new KubeClient(loadKubeConfig(args));
  return {
    kube,
    agents: new PortForwardTransport(kube),
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    now: () => Date.now(),
  };
}

/** Runs a command against the real environment and releases its connections afterwards. */
export async function withEnv(args: Pick<CommonArgs, "kubeconfig" | "context">, run: (env: CliEnv) => Promise<void>): Promise<void> {
  const env = openEnv(args);
  try {
    await run(env);
  } finally {
    env.agents.close();
    env.kube.close();
  }
}
