// `ambit explain <ns>/<pod> <ns>/<pod|service>[:port]`: how the mesh carries one connection and whether the destination agent lets it in, and why.
import type { Argv } from "yargs";
import { stringify as toYaml } from "yaml";
import { type PolicyExplanation, type PolicyRef, PolicyStore, type RuleMatch } from "../agent/authorization/index.ts";
import type { CompiledAuthorization, CompiledCondition, CompiledOperation, CompiledPeerAuthentication, CompiledSource } from "../contract/authorization.ts";
import { DATAPLANE_MODE_AMBIENT, DATAPLANE_MODE_LABEL, REDIRECTION_ANNOTATION, captureIntent } from "../contract/capture-intent.ts";
import { AGENT_POD_LABELS, AGENT_PORTS, POLICY_API_VERSION, POLICY_PLURALS } from "../contract/install.ts";
import type { Workload } from "../contract/mesh.ts";
import { workloadFromPod, workloadNameOf } from "../contract/pods.ts";
import { formatSpiffeId, parseSpiffeUri } from "../contract/spiffe.ts";
import { compileForEnforcers } from "../controller/authorization/index.ts";
import { type KubeObject, isNotFound, pathFor } from "../kube/client.ts";
import { withEnv } from "./context.ts";
import { type CliErrorCode, fromKubeError } from "./errors.ts";
import { AmbitError } from "../contract/errors.ts";

/** How the CLI reaches a node's agent admin API (localhost:15000 on that node): a port-forward, or anything a test provides. */
export interface AgentTransport {
  /** GET `path` from the admin API of the agent on `node`, parsed as JSON. Rejects with an AMBIT_E_* code when unreachable. */
  fetchAgentJson(node: string, path: string): Promise<unknown>;
}

/** The part of the Kubernetes API explain reads (KubeClient has it; tests use recorded objects). */
export interface KubeReader {
  get(path: string): Promise<KubeObject>;
  list(path: string): Promise<KubeObject[]>;
}

export class ExplainError extends AmbitError<CliErrorCode> {
  constructor(code: CliErrorCode, message: string) {
    super(code, message);
    this.name = "ExplainError";
  }
}

/** The agent's /config_dump, as far as explain reads it. */
interface ConfigDump {
  node?: string;
  trustDomain?: string;
  rootNamespace?: string;
  workloads?: Workload[];
  policies?: { authorizations?: CompiledAuthorization[]; peerAuthentications?: CompiledPeerAuthentication[] };
  certificates?: Array<{ identity: string }>;
  controller?: unknown;
}

export interface PodEnd {
  namespace: string;
  pod: string;
  node: string;
  ip: string;
  serviceAccount: string;
  /** Its traffic is captured by its node's agent (the agent marked it `ambit.dev/redirection=enabled`). */
  enrolled: boolean;
  /** Why it is or is not enrolled, in the agent's words. */
  enrollment: string;
  /** Its SPIFFE ID when enrolled: what it presents on mesh connections. */
  identity: string | null;
}

export interface ServiceHop {
  service: string;
  port: number;
  targetPort: number;
  /** Every ready endpoint pod; the explanation follows `chosen`. */
  endpoints: string[];
  chosen: string;
  why: string;
}

export type PathKind = "local" | "tunnel" | "passthrough" | "plaintext-inbound" | "outside-mesh";

export interface PolicyStatus extends PolicyRef {
  /** The policy's Accepted condition: Accepted, PartiallyEnforced, Invalid; Unknown when the object is gone. */
  status: string;
  message: string;
  /** The condition as the controller wrote it, or computed here from the object when it has written none yet. */
  statusFrom: "controller" | "computed";
}

export interface ExplainReport {
  source: PodEnd;
  destination: PodEnd & { port: number };
  service: ServiceHop | null;
  path: { kind: PathKind; description: string; hbone: { fromNode: string; toNode: string; dial: string } | null };
  trustDomain: string;
  mtls: { mode: string; peerAuthentication: string | null; level: string | null; effect: string };
  decision: {
    allowed: boolean;
    /** False when no agent decides (the destination is not enrolled): nothing Ambit enforces applies. */
    evaluated: boolean;
    decidedBy: PolicyExplanation["decidedBy"] | "not-enforced";
    reason: string;
    summary: string;
    match: RuleMatch | null;
  };
  /** Authorization policies that select the destination, with their status. */
  policies: PolicyStatus[];
  /** Selecting policies not enforced as written (Invalid or PartiallyEnforced): why a decision may surprise. */
  warnings: string[];
  audit: RuleMatch[];
  evaluatedBy: { node: string; agentConfig: string } | null;
}

// ---- references and resolution through the Kubernetes API

function parseRef(ref: string, what: string, allowPort: boolean): { namespace: string; name: string; port: number | undefined } {
  const m = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)(?::(\d+))?$/.exec(ref);
  if (!m || (!allowPort && m[3] !== undefined))
    throw new ExplainError(
      "AMBIT_E_USAGE",
      `${what} "${ref}" must be <namespace>/<name>${allowPort ? "[:port]" : ""}, e.g. demo/client${allowPort ? " or demo/payments:80" : ""}`,
    );
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new ExplainError("AMBIT_E_USAGE", `${what} "${ref}": port ${port} is not 1-65535`);
  return { namespace: m[1]!, name: m[2]!, port };
}

async function getOrUndefined(kube: KubeReader, path: string): Promise<KubeObject | undefined> {
  try {
    return await kube.get(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const running = (p: KubeObject) => Boolean(p.status?.podIP) && p.status?.phase === "Running" && !p.metadata.deletionTimestamp;

/** A pod by its name, or by its workload's name (`demo/client` for the client Deployment's pods): the first running one by name. */
async function findPod(kube: KubeReader, namespace: string, name: string, what: string): Promise<{ pod: KubeObject; note: string | null }> {
  const exact = await getOrUndefined(kube, pathFor("v1", "pods", namespace, name));
  if (exact) return { pod: exact, note: null };
  const owned = (await kube.list(pathFor("v1", "pods", namespace)))
    .filter((p) => workloadNameOf(p) === name && running(p))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  if (owned.length === 0)
    throw new ExplainError("AMBIT_E_UNKNOWN_POD", `${what} ${namespace}/${name}: no such pod, and no running pod of a workload named ${name}`);
  return { pod: owned[0]!, note: owned.length > 1 ? `${owned.length} running pods of ${name}; explaining ${owned[0]!.metadata.name}` : null };
}

async function podEnd(kube: KubeReader, pod: KubeObject, what: string): Promise<PodEnd> {
  if (!pod.status?.podIP)
    throw new ExplainError(
      "AMBIT_E_UNKNOWN_POD",
      `${what} ${pod.metadata.namespace}/${pod.metadata.name} has no IP yet (phase ${pod.status?.phase ?? "unknown"})`,
    );
  const namespace = pod.metadata.namespace ?? "";
  const ns = await getOrUndefined(kube, pathFor("v1", "namespaces", undefined, namespace));
  const intent = captureIntent(ns, pod);
  const marked = pod.metadata.annotations?.[REDIRECTION_ANNOTATION] === "enabled";
  const enrollment = marked
    ? intent.reason
    : intent.capture
      ? `${intent.reason}, but its agent has not captured it (no ${REDIRECTION_ANNOTATION}=enabled): check the agent on ${pod.spec?.nodeName}`
      : intent.reason;
  return {
    namespace,
    pod: pod.metadata.name,
    node: pod.spec?.nodeName ?? "",
    ip: pod.status.podIP as string,
    serviceAccount: pod.spec?.serviceAccountName ?? "default",
    enrolled: marked,
    enrollment,
    identity: null,
  };
}

interface EndpointSliceEndpoint {
  addresses?: string[];
  conditions?: { ready?: boolean };
  nodeName?: string;
  targetRef?: { kind?: string; name?: string; namespace?: string };
}

/** A Service port to one endpoint pod and the pod's port, as kube-proxy would (any ready endpoint; explain follows the first by name). */
async function resolveService(kube: KubeReader, svc: KubeObject, port: number | undefined): Promise<{ hop: ServiceHop; podName: string; targetPort: number }> {
  const ns = svc.metadata.namespace ?? "";
  const ports = (svc.spec?.ports ?? []) as Array<{ name?: string; port: number; targetPort?: number | string }>;
  const named = `${ns}/${svc.metadata.name}`;
  if (ports.length === 0) throw new ExplainError("AMBIT_E_NO_ENDPOINT", `service ${named} has no ports`);
  if (port === undefined && ports.length > 1)
    throw new ExplainError(
      "AMBIT_E_USAGE",
      `service ${named} has several ports (${ports.map((p) => p.port).join(", ")}): name one, e.g. ${named}:${ports[0]!.port}`,
    );
  const sp = port === undefined ? ports[0]! : ports.find((p) => p.port === port);
  if (!sp) throw new ExplainError("AMBIT_E_NO_ENDPOINT", `service ${named} has no port ${port} (it has ${ports.map((p) => p.port).join(", ")})`);
  const slices = (
    await kube.list(
      `${pathFor("discovery.k8s.io/v1", "endpointslices", ns)}?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${svc.metadata.name}`)}`,
    )
  ).filter((s) => s.metadata.labels?.["kubernetes.io/service-name"] === svc.metadata.name);
  const candidates: Array<{ pod: string; targetPort: number }> = [];
  for (const slice of slices) {
    const slicePort = ((slice.ports ?? []) as Array<{ name?: string; port?: number }>).find((p) => (p.name ?? "") === (sp.name ?? ""));
    const targetPort = slicePort?.port ?? (typeof sp.targetPort === "number" ? sp.targetPort : sp.port);
    for (const e of (slice.endpoints ?? []) as EndpointSliceEndpoint[]) {
      if (e.conditions?.ready === false || e.targetRef?.kind !== "Pod" || !e.targetRef.name) continue;
      candidates.push({ pod: e.targetRef.name, targetPort });
    }
  }
  candidates.sort((a, b) => a.pod.localeCompare(b.pod));
  const chosen = candidates[0];
  if (!chosen) throw new ExplainError("AMBIT_E_NO_ENDPOINT", `service ${named} port ${sp.port} has no ready endpoint pod`);
  return {
    podName: chosen.pod,
    targetPort: chosen.targetPort,
    hop: {
      service: named,
      port: sp.port,
      targetPort: chosen.targetPort,
      endpoints: candidates.map((c) => `${ns}/${c.pod}`),
      chosen: `${ns}/${chosen.pod}`,
      why:
        candidates.length > 1
          ? "the first ready endpoint by name; the source's agent picks any ready endpoint per connection, and each endpoint's node decides for it"
          : "the only ready endpoint",
    },
  };
}

/** The port a pod destination is reached on: the one given, else its only container port. */
function podPort(pod: KubeObject, port: number | undefined, ref: string): number {
  if (port !== undefined) return port;
  const declared = ((pod.spec?.containers ?? []) as Array<{ ports?: Array<{ containerPort: number }> }>).flatMap((c) =>
    (c.ports ?? []).map((p) => p.containerPort),
  );
  if (declared.length === 1) return declared[0]!;
  throw new ExplainError("AMBIT_E_USAGE", `name the port of ${ref}, e.g. ${ref}:${declared[0] ?? 8080}`);
}

// ---- the explanation

const describeList = (label: string, values: readonly unknown[] | undefined) => (values ? [`${label} [${values.join(", ")}]`] : []);

export function describeSource(s: CompiledSource): string {
  return [
    ...describeList("principals", s.principals),
    ...describeList("notPrincipals", s.notPrincipals),
    ...describeList("namespaces", s.namespaces),
    ...describeList("notNamespaces", s.notNamespaces),
    ...describeList("ipBlocks", s.ipBlocks),
    ...describeList("notIpBlocks", s.notIpBlocks),
    ...describeList("remoteIpBlocks", s.remoteIpBlocks),
    ...describeList("notRemoteIpBlocks", s.notRemoteIpBlocks),
  ].join(", ");
}

const describeOperation = (o: CompiledOperation) => [...describeList("ports", o.ports), ...describeList("notPorts", o.notPorts)].join(", ") || "any port";
const describeCondition = (c: CompiledCondition) => `${c.key} ${c.values ? `in [${c.values.join(", ")}]` : `not in [${(c.notValues ?? []).join(", ")}]`}`;

export function describeMatch(m: RuleMatch): string {
  const parts = [
    m.from ? `from[${m.from.index}] ${describeSource(m.from.source) || "any source"}` : "from any source",
    m.to ? `to[${m.to.index}] ${describeOperation(m.to.operation)}` : "to any port",
    ...(m.when ? [`when ${m.when.map(describeCondition).join(" and ")}`] : []),
  ];
  return `${m.policy.action} ${m.policy.namespace}/${m.policy.name} rule ${m.ruleIndex}: ${parts.join("; ")}`;
}

function trustDomainOf(dump: ConfigDump): string {
  if (dump.trustDomain) return dump.trustDomain;
  // Agents from before config_dump said it: every certificate they hold is in the mesh's trust domain.
  for (const c of dump.certificates ?? []) {
    try {
      return parseSpiffeUri(c.identity).trustDomain;
    } catch {
      // not a SPIFFE ID: look at the next
    }
  }
  return "cluster.local";
}

async function policyStatuses(kube: KubeReader, selecting: PolicyRef[]): Promise<PolicyStatus[]> {
  return Promise.all(
    selecting.map(async (p): Promise<PolicyStatus> => {
      const obj = await getOrUndefined(kube, pathFor(POLICY_API_VERSION, POLICY_PLURALS.authorization, p.namespace, p.name));
      if (!obj) return { ...p, status: "Unknown", message: "not found in the API: deleted since the agent's config was sent", statusFrom: "controller" };
      const written = ((obj.status?.conditions ?? []) as Array<{ type: string; reason: string; message: string }>).find((c) => c.type === "Accepted");
      if (written) return { ...p, status: written.reason, message: written.message, statusFrom: "controller" };
      // The controller's leader writes status; until it has, the same compiler says what it will write.
      const { condition } = compileForEnforcers(obj);
      return { ...p, status: condition.reason, message: condition.message, statusFrom: "computed" };
    }),
  );
}

function pathOf(src: PodEnd, dst: PodEnd, port: number): ExplainReport["path"] {
  if (src.enrolled && dst.enrolled && src.node === dst.node)
    return {
      kind: "local",
      description: `same node (${src.node}): its agent delivers from the source's outbound capture straight to the destination, enforcing the destination's policy; no tunnel`,
      hbone: null,
    };
  if (src.enrolled && dst.enrolled)
    return {
      kind: "tunnel",
      description: `HBONE (mutual TLS 1.3, HTTP/2 CONNECT to ${dst.ip}:${port}) from ${src.node}'s agent to ${dst.node}'s agent, dialing ${dst.ip}:${AGENT_PORTS.hbone}`,
      hbone: { fromNode: src.node, toNode: dst.node, dial: `${dst.ip}:${AGENT_PORTS.hbone}` },
    };
  if (src.enrolled)
    return {
      kind: "passthrough",
      description: `the destination is not in the mesh: ${src.node}'s agent forwards the connection in plaintext (passthrough); no identity, no policy`,
      hbone: null,
    };
  if (dst.enrolled)
    return {
      kind: "plaintext-inbound",
      description: `the source is not in the mesh: it connects in plaintext, and ${dst.node}'s agent takes it on the destination's inbound capture (${AGENT_PORTS.inboundPlaintext}) with no identity`,
      hbone: null,
    };
  return { kind: "outside-mesh", description: "neither end is in the mesh: plain Kubernetes networking, Ambit is not involved", hbone: null };
}

/** Resolves both ends, fetches the destination node's agent config and explains the connection with the agent's own policy code. */
export async function explainConnection(kube: KubeReader, transport: AgentTransport, sourceRef: string, destinationRef: string): Promise<ExplainReport> {
  const s = parseRef(sourceRef, "source", false);
  const d = parseRef(destinationRef, "destination", true);
  const agents = await kube.list(
    `/api/v1/pods?labelSelector=${encodeURIComponent(
      Object.entries(AGENT_POD_LABELS)
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
    )}`,
  );
  if (agents.length === 0)
    throw new ExplainError("AMBIT_E_NO_MESH", "no Ambit agent pods (label app=ambit-agent) in the cluster: install the mesh (the chart in daemonset/) first");

  const source = await podEnd(kube, (await findPod(kube, s.namespace, s.name, "source")).pod, "source");
  const svc = await getOrUndefined(kube, pathFor("v1", "services", d.namespace, d.name));
  let service: ServiceHop | null = null;
  let dstPod: KubeObject;
  let port: number;
  if (svc) {
    const resolved = await resolveService(kube, svc, d.port);
    service = resolved.hop;
    dstPod = (await findPod(kube, d.namespace, resolved.podName, "destination endpoint")).pod;
    port = resolved.targetPort;
  } else {
    try {
      dstPod = (await findPod(kube, d.namespace, d.name, "destination")).pod;
    } catch (err) {
      if (err instanceof ExplainError && err.code === "AMBIT_E_UNKNOWN_POD")
        throw new ExplainError(err.code, `destination ${d.namespace}/${d.name}: no service, pod, or running pod of a workload by that name`);
      throw err;
    }
    port = podPort(dstPod, d.port, destinationRef);
  }
  const destination = { ...(await podEnd(kube, dstPod, "destination")), port };
  const path = pathOf(source, destination, port);

  if (!destination.enrolled) {
    return {
      source,
      destination,
      service,
      path,
      trustDomain: "",
      mtls: { mode: "none", peerAuthentication: null, level: null, effect: "the destination is not enrolled: no agent terminates its traffic" },
      decision: {
        allowed: true,
        evaluated: false,
        decidedBy: "not-enforced",
        reason: `${destination.namespace}/${destination.pod} is not in the mesh (${destination.enrollment}); Ambit enforces no policy for it`,
        summary: "ALLOW (not enforced by Ambit)",
        match: null,
      },
      policies: [],
      warnings: [],
      audit: [],
      evaluatedBy: null,
    };
  }

  const dump = (await transport.fetchAgentJson(destination.node, "/config_dump")) as ConfigDump;
  if (!dump || typeof dump !== "object" || !dump.policies)
    throw new ExplainError(
      "AMBIT_E_AGENT_BAD_ANSWER",
      `the agent on ${destination.node} answered /config_dump without policies: is it an Ambit agent of this version?`,
    );
  const trustDomain = trustDomainOf(dump);
  const agentPod = agents.find((a) => a.spec?.nodeName === destination.node);
  const rootNamespace = dump.rootNamespace ?? agentPod?.metadata.namespace ?? "ambit-system";
  if (source.enrolled) source.identity = formatSpiffeId({ trustDomain, namespace: source.namespace, serviceAccount: source.serviceAccount });
  destination.identity = formatSpiffeId({ trustDomain, namespace: destination.namespace, serviceAccount: destination.serviceAccount });

  const store = new PolicyStore({ rootNamespace });
  store.replace(dump.policies.authorizations ?? [], dump.policies.peerAuthentications ?? []);
  const warnings: string[] = [];
  // The agent matches selectors against its own record of the pod (labels included); without one it refuses the connection.
  let workload = (dump.workloads ?? []).find((w) => w.ip === destination.ip && w.node === destination.node);
  if (!workload) {
    workload = workloadFromPod(dstPod);
    warnings.push(
      `the agent on ${destination.node} has no workload record for ${destination.ip} yet (its config is older than the pod): it refuses connections to it until the controller's next update; explained with the pod's own labels`,
    );
  }
  if (!workload)
    throw new ExplainError("AMBIT_E_UNKNOWN_POD", `destination ${destination.namespace}/${destination.pod} is not a workload (host network or terminating)`);
  const e = store.explain({
    ...(source.enrolled ? { source: { trustDomain, namespace: source.namespace, serviceAccount: source.serviceAccount } } : {}),
    sourceIp: source.ip,
    destination: workload,
    destinationIp: destination.ip,
    destinationPort: port,
  });
  const policies = await policyStatuses(kube, e.selecting);
  for (const p of policies) {
    if (p.status === "Invalid" || p.status === "PartiallyEnforced")
      warnings.push(
        `${p.action} ${p.namespace}/${p.name} is ${p.status}${p.statusFrom === "computed" ? " (computed; the controller has not written status yet)" : ""}: ${p.message}`,
      );
  }
  const pa = e.mtls.peerAuthentication;
  const mtlsEffect =
    e.mtls.mode === "STRICT"
      ? source.enrolled
        ? "STRICT: mesh identities only; this source presents one"
        : "STRICT: mesh identities only; this plaintext source is refused"
      : e.mtls.mode === "DISABLE"
        ? "DISABLE: plaintext accepted; mesh sources still arrive over HBONE"
        : source.enrolled
          ? "PERMISSIVE: mTLS from mesh sources (this one), plaintext also accepted"
          : "PERMISSIVE: plaintext accepted, evaluated with no identity";
  const summary =
    e.decidedBy === "deny"
      ? `DENY by ${e.match!.policy.namespace}/${e.match!.policy.name}`
      : e.decidedBy === "allow"
        ? `ALLOW by ${e.match!.policy.namespace}/${e.match!.policy.name}`
        : e.decidedBy === "no-allow-policy"
          ? "ALLOW: no ALLOW policy selects the destination, so whatever no DENY refuses is allowed"
          : e.decidedBy === "no-allow-match"
            ? `DENY: ALLOW policies select the destination (${e.selecting
                .filter((p) => p.action === "ALLOW")
                .map((p) => `${p.namespace}/${p.name}`)
                .join(", ")}) and none of their rules matched`
            : "DENY: STRICT mTLS and the source sent plaintext";
  return {
    source,
    destination,
    service,
    path,
    trustDomain,
    mtls: {
      mode: e.mtls.mode,
      peerAuthentication: pa ? `${pa.namespace}/${pa.name}` : null,
      level: pa?.level ?? null,
      effect: mtlsEffect,
    },
    decision: { allowed: e.allowed, evaluated: true, decidedBy: e.decidedBy, reason: e.reason, summary, match: e.match ?? null },
    policies,
    warnings,
    audit: e.audit,
    evaluatedBy: { node: destination.node, agentConfig: `${agentPod ? `${agentPod.metadata.namespace}/${agentPod.metadata.name}` : "agent"} /config_dump` },
  };
}

// ---- output

const endLine = (e: PodEnd) =>
  `${e.namespace}/${e.pod} (${e.ip}, ${e.node}, service account ${e.serviceAccount})\n${e.enrolled ? `in the mesh as ${e.identity ?? "(identity not evaluated)"}` : "not in the mesh"}: ${e.enrollment}`;

/** The readable form: one labelled block per question. */
export function renderText(r: ExplainReport): string {
  const out: string[] = [];
  const field = (label: string, text: string) => out.push(`${label.padEnd(13)}${text.split("\n").join(`\n${" ".repeat(13)}`)}`);
  field("Decision", r.decision.summary);
  if (r.decision.match) field("", `rule: ${describeMatch(r.decision.match)}`);
  field("", `reason: ${r.decision.reason}`);
  field("Source", endLine(r.source));
  field("Destination", `${endLine(r.destination)}\nport ${r.destination.port}`);
  if (r.service)
    field(
      "Service",
      `${r.service.service}:${r.service.port} -> target port ${r.service.targetPort}; ready endpoints: ${r.service.endpoints.join(", ")}\nexplained endpoint: ${r.service.chosen}: ${r.service.why}`,
    );
  field("Path", `${r.path.kind}: ${r.path.description}`);
  if (r.decision.evaluated) {
    const width = Math.max(0, ...r.policies.map((p) => p.namespace.length + p.name.length + 1)) + 2;
    field(
      "mTLS",
      `${r.mtls.mode}${r.mtls.peerAuthentication ? ` from PeerAuthentication ${r.mtls.peerAuthentication} (${r.mtls.level} level)` : " (default: no PeerAuthentication applies)"}`,
    );
    field("", r.mtls.effect);
    field(
      "Policies",
      r.policies.length
        ? r.policies
            .map((p) => `${p.action.padEnd(6)}${`${p.namespace}/${p.name}`.padEnd(width)}${p.status}${p.statusFrom === "computed" ? " (computed)" : ""}`)
            .join("\n")
        : "none select the destination",
    );
    field("Audit", r.audit.length ? r.audit.map(describeMatch).join("\n") : "no AUDIT rule matches");
    if (r.warnings.length) field("Warnings", r.warnings.join("\n"));
    field(
      "Evaluated",
      `with the agent's own policy code over the config the agent on ${r.evaluatedBy!.node} holds (${r.evaluatedBy!.agentConfig}); trust domain ${r.trustDomain}`,
    );
  }
  return `${out.join("\n")}\n`;
}

export function renderReport(r: ExplainReport, format: "table" | "json" | "yaml"): string {
  if (format === "json") return `${JSON.stringify(r, null, 2)}\n`;
  if (format === "yaml") return toYaml(r);
  return renderText(r);
}

// ---- the command

export interface ExplainArgs {
  source: string;
  destination: string;
  output: "table" | "json" | "yaml";
  kubeconfig?: string;
  context?: string;
}

export function explainCommand(yargs: Argv): Argv {
  return yargs.command(
    "explain <source> <destination>",
    "explain one connection: path, identities, mTLS mode and the destination agent's policy decision with the rule that made it",
    (y) =>
      y
        .positional("source", { type: "string", demandOption: true, describe: "<namespace>/<pod> (or a workload name, e.g. demo/client)" })
        .positional("destination", { type: "string", demandOption: true, describe: "<namespace>/<pod|service>[:port], e.g. demo/payments:80" })
        .option("output", { alias: "o", choices: ["table", "json", "yaml"] as const, default: "table" as const, describe: "output format" })
        .option("kubeconfig", { type: "string", describe: "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)" })
        .option("context", { type: "string", describe: "kubeconfig context to use" })
        .example(
          "$0 explain demo/client demo/payments:80",
          `why client may or may not reach payments (namespace label ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT})`,
        ),
    // The operator commands' environment: the API client and the agent transport (port-forward, or a node netns in development).
    (args) =>
      withEnv(args as ExplainArgs, async (env) => {
        const a = args as ExplainArgs;
        const transport: AgentTransport = { fetchAgentJson: (node, p) => env.agents.get(node, p) };
        let report: ExplainReport;
        try {
          report = await explainConnection(env.kube, transport, a.source, a.destination);
        } catch (err) {
          throw fromKubeError(err, `explaining ${a.source} -> ${a.destination}`);
        }
        env.stdout(renderReport(report, a.output));
      }),
  );
}
