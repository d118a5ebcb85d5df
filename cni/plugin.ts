// Ambit's chained CNI plugin (spec 1.1): tells the node agent about pod add/delete and waits, so no pod starts uncaptured.
import type { CniProtocolError } from "./protocol.ts";
import { type CniRequest, sendCniRequest } from "./protocol.ts";
import { lookupCaptureIntent } from "./enrollment-lookup.ts";
import { AmbitError, type CodeOf } from "../contract/errors.ts";
import { CNI_ERRORS } from "../contract/error-codes.ts";

export const PLUGIN_TYPE = "ambit-cni";
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const DEFAULT_SOCKET = "/var/run/ambit/cni.sock";
/** Namespaces whose pods are never captured and never wait for the agent (the cluster's own plumbing). */
const DEFAULT_EXCLUDED_NAMESPACES = ["kube-system"];

/** Error codes from the CNI specification, plus Ambit's own (100+), each with its AMBIT_E_* code. */
export const CODES = {
  incompatibleVersion: { cni: 1, code: CNI_ERRORS.code.incompatibleVersion },
  invalidEnvironment: { cni: 4, code: CNI_ERRORS.code.invalidEnvironment },
  decodeFailure: { cni: 6, code: CNI_ERRORS.code.decode },
  invalidConfig: { cni: 7, code: CNI_ERRORS.code.invalidConfig },
  tryAgainLater: { cni: 11, code: CNI_ERRORS.code.tryAgain },
  pluginNotAvailable: { cni: 50, code: CNI_ERRORS.code.agentUnavailable },
  agentRefused: { cni: 100, code: CNI_ERRORS.code.agentRefused },
} as const;

/** A failure the plugin reports to the runtime as the spec's error JSON: `cniCode` is what the runtime reads. */
export class PluginFailure extends AmbitError<CodeOf<typeof CNI_ERRORS>> {
  readonly cniCode: number;
  readonly details: string;
  constructor(kind: (typeof CODES)[keyof typeof CODES], msg: string, details = "") {
    super(kind.code, msg);
    this.name = "PluginFailure";
    this.cniCode = kind.cni;
    this.details = details;
  }
}

export interface NetConf {
  cniVersion?: string;
  name?: string;
  type?: string;
  agentSocket?: string;
  timeoutMs?: number;
  /** Read when the agent is unreachable, to let pods of namespaces that are not enrolled start anyway. */
  kubeconfig?: string;
  excludeNamespaces?: string[];
  prevResult?: { ips?: Array<{ address: string }> } & Record<string, unknown>;
  "cni.dev/valid-attachments"?: Array<{ containerID: string; ifname: string }>;
}

export function log(level: string, msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ level, time: new Date().toISOString(), plugin: PLUGIN_TYPE, msg, ...fields }) + "\n");
}

function parseConfig(stdin: string): NetConf {
  let conf: NetConf;
  try {
    conf = JSON.parse(stdin) as NetConf;
  } catch (err) {
    throw new PluginFailure(CODES.decodeFailure, "failed to decode the network configuration on stdin", (err as Error).message);
  }
  if (!conf || typeof conf !== "object" || Array.isArray(conf)) throw new PluginFailure(CODES.decodeFailure, "the network configuration must be a JSON object");
  if (conf.type !== PLUGIN_TYPE)
    throw new PluginFailure(CODES.invalidConfig, `invalid network configuration: type must be "${PLUGIN_TYPE}", got ${JSON.stringify(conf.type)}`);
  if (!conf.cniVersion || !SUPPORTED_VERSIONS.includes(conf.cniVersion)) {
    throw new PluginFailure(
      CODES.incompatibleVersion,
      `incompatible CNI version ${JSON.stringify(conf.cniVersion)}`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  if (conf.timeoutMs !== undefined && (!Number.isInteger(conf.timeoutMs) || conf.timeoutMs <= 0)) {
    throw new PluginFailure(CODES.invalidConfig, "invalid network configuration: timeoutMs must be a positive integer");
  }
  if (conf.kubeconfig !== undefined && typeof conf.kubeconfig !== "string")
    throw new PluginFailure(CODES.invalidConfig, "invalid network configuration: kubeconfig must be a file path");
  if (conf.excludeNamespaces !== undefined && !(Array.isArray(conf.excludeNamespaces) && conf.excludeNamespaces.every((n) => typeof n === "string"))) {
    throw new PluginFailure(CODES.invalidConfig, "invalid network configuration: excludeNamespaces must be a list of namespace names");
  }
  // prevResult comes from the plugin before us; a broken one must fail with a clear message, not a TypeError.
  const prev = conf.prevResult as unknown;
  if (prev !== undefined && (typeof prev !== "object" || prev === null || Array.isArray(prev)))
    throw new PluginFailure(CODES.invalidConfig, "invalid network configuration: prevResult must be an object (the previous plugin's result)");
  const ips = (prev as { ips?: unknown } | undefined)?.ips;
  if (
    ips !== undefined &&
    !(Array.isArray(ips) && ips.every((ip) => typeof ip === "object" && ip !== null && typeof (ip as { address?: unknown }).address === "string"))
  ) {
    throw new PluginFailure(CODES.invalidConfig, 'invalid network configuration: prevResult.ips must be a list of {address: "<ip>/<prefix>"}');
  }
  const attachments = conf["cni.dev/valid-attachments"] as unknown;
  if (
    attachments !== undefined &&
    !(
      Array.isArray(attachments) &&
      attachments.every((a) => typeof a === "object" && a !== null && typeof (a as { containerID?: unknown }).containerID === "string")
    )
  ) {
    throw new PluginFailure(CODES.invalidConfig, "invalid network configuration: cni.dev/valid-attachments must be a list of {containerID, ifname}");
  }
  return conf;
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new PluginFailure(CODES.invalidEnvironment, `${name} is not set`);
  return value;
}

/** K8S_POD_* from CNI_ARGS ("IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;..."). */
function podArgs(env: NodeJS.ProcessEnv): { namespace?: string; name?: string; uid?: string } {
  const args = new Map<string, string>();
  for (const pair of (env.CNI_ARGS ?? "").split(";")) {
    const eq = pair.indexOf("=");
    if (eq > 0) args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return { namespace: args.get("K8S_POD_NAMESPACE"), name: args.get("K8S_POD_NAME"), uid: args.get("K8S_POD_UID") };
}

async function ask(conf: NetConf, request: CniRequest, timeoutMs?: number) {
  return sendCniRequest(conf.agentSocket ?? DEFAULT_SOCKET, request, timeoutMs ?? conf.timeoutMs ?? 10_000);
}

/** Runs one plugin invocation; returns what to print on stdout (or nothing). Throws PluginFailure. */
export async function runPlugin(env: NodeJS.ProcessEnv, stdin: string): Promise<string | undefined> {
  const command = env.CNI_COMMAND;
  if (!command) throw new PluginFailure(CODES.invalidEnvironment, "CNI_COMMAND is not set");
  if (command === "VERSION") return JSON.stringify({ cniVersion: "1.1.0", supportedVersions: SUPPORTED_VERSIONS });
  if (!["ADD", "DEL", "CHECK", "STATUS", "GC"].includes(command)) throw new PluginFailure(CODES.invalidEnvironment, `unknown CNI_COMMAND "${command}"`);
  const conf = parseConfig(stdin);

  if (command === "STATUS") {
    try {
      const r = await ask(conf, { command: "STATUS" }, 2000);
      if (r.ok) return undefined;
      throw new PluginFailure(CODES.pluginNotAvailable, "the Ambit agent is not ready", r.message);
    } catch (err) {
      if (err instanceof PluginFailure) throw err;
      throw new PluginFailure(CODES.pluginNotAvailable, "the Ambit agent is not available", (err as Error).message);
    }
  }
  if (command === "GC") {
    // Best effort: leftovers are also cleaned by the agent's own reconciliation.
    await ask(conf, { command: "GC", validAttachments: conf["cni.dev/valid-attachments"] ?? [] }, 2000).catch((err: Error) =>
      log("warn", "GC not delivered to the agent", { err: err.message }),
    );
    return undefined;
  }

  const containerId = required(env, "CNI_CONTAINERID");
  const pod = podArgs(env);
  if (command === "DEL") {
    // DEL must succeed even when the agent or the pod's state is already gone: the runtime retries forever otherwise.
    if (pod.namespace && pod.name) {
      await ask(
        conf,
        { command: "DEL", containerId, netns: env.CNI_NETNS ?? "", podNamespace: pod.namespace, podName: pod.name, podUid: pod.uid ?? "" },
        2000,
      ).catch((err: Error) => log("warn", "pod deletion not delivered to the agent; it will reconcile", { containerId, err: err.message }));
    }
    return undefined;
  }

  const netns = required(env, "CNI_NETNS");
  const ifName = required(env, "CNI_IFNAME");
  if (!conf.prevResult)
    throw new PluginFailure(
      CODES.invalidConfig,
      `invalid network configuration: ${PLUGIN_TYPE} is a chained plugin and needs prevResult (list it after the main plugin)`,
    );
  const passthrough = JSON.stringify(conf.prevResult);
  if (!pod.namespace || !pod.name || !pod.uid) {
    // Not a Kubernetes pod (no K8S_POD_* args): nothing for the mesh to do.
    log("info", "not a Kubernetes pod; passing through", { containerId });
    return command === "ADD" ? passthrough : undefined;
  }
  if ((conf.excludeNamespaces ?? DEFAULT_EXCLUDED_NAMESPACES).includes(pod.namespace)) {
    log("info", "namespace excluded from the mesh; passing through", { pod: `${pod.namespace}/${pod.name}` });
    return command === "ADD" ? passthrough : undefined;
  }
  const ips = (conf.prevResult.ips ?? []).map((ip) => ip.address.split("/")[0] ?? "");
  const request: CniRequest = {
    command: command as "ADD" | "CHECK",
    containerId,
    netns,
    ifName,
    podNamespace: pod.namespace,
    podName: pod.name,
    podUid: pod.uid,
    ips,
  };
  let response;
  try {
    response = await ask(conf, request);
  } catch (err) {
    const e = err as CniProtocolError;
    if (e.code === "AMBIT_E_CNI_AGENT_UNREACHABLE" && (await notEnrolled(conf, pod.namespace, pod.name))) return command === "ADD" ? passthrough : undefined;
    throw new PluginFailure(CODES.tryAgainLater, `cannot set up pod ${pod.namespace}/${pod.name} for the mesh: ${e.message}`, e.code ?? "");
  }
  if (!response.ok)
    throw new PluginFailure(CODES.agentRefused, `the Ambit agent could not set up pod ${pod.namespace}/${pod.name}: ${response.message}`, response.code);
  log("info", command === "ADD" ? "pod handed to the agent" : "pod checked", { pod: `${pod.namespace}/${pod.name}`, captured: response.captured ?? false });
  return command === "ADD" ? passthrough : undefined;
}

/**
 * With the agent down (restarting, not yet scheduled), a pod the mesh does not capture may start; one that must be
 * captured, or one the API cannot vouch for, may not: failing closed is what keeps "no pod starts uncaptured" true.
 */
async function notEnrolled(conf: NetConf, namespace: string, name: string): Promise<boolean> {
  if (!conf.kubeconfig) return false;
  try {
    const intent = await lookupCaptureIntent(conf.kubeconfig, namespace, name, 2000);
    if (intent.capture) return false;
    log("warn", "the Ambit agent is unreachable; the pod is not enrolled, passing through", { pod: `${namespace}/${name}`, reason: intent.reason });
    return true;
  } catch (err) {
    log("warn", "the Ambit agent is unreachable and the API cannot tell whether the pod is enrolled; failing closed", {
      pod: `${namespace}/${name}`,
      err: (err as Error).message,
    });
    return false;
  }
}
