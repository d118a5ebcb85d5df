// Who is calling: a projected service-account token checked by TokenReview; an agent (with its node) or a pod proving which pod it is.
import { createHash } from "node:crypto";
import { type KubeClient, type KubeObject, pathFor } from "../../kube/client.ts";
import { CA_TOKEN_AUDIENCE, CaRefusalCode } from "../../contract/certificates.ts";

/** `username` (from TokenReview) is set when the token was valid but the caller is not an agent. */
export type CallerRefusal = { ok: false; status: 401 | 403; code: CaRefusalCode; reason: string; username?: string };

/** An agent: it may ask for the identities of its node's pods. `serviceAccount` is the TokenReview username. */
export type AgentAuthentication = { ok: true; node: string; serviceAccount: string } | CallerRefusal;

/** A pod that is not an agent (a waypoint, later a sidecar): proven by its pod-bound token, it may ask only for its own identity. */
export interface PodCaller {
  namespace: string;
  /** The pod the token is bound to, checked live: it exists with that uid, is not terminating or finished, and runs `serviceAccount`. */
  pod: string;
  serviceAccount: string;
}

export type CallerAuthentication = { ok: true; agent: { node: string; serviceAccount: string } } | { ok: true; pod: PodCaller } | CallerRefusal;

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

/** A verdict is reused briefly: callers come in bursts (one CSR per identity) and TokenReview is a round trip. */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
const POD_NAME = "authentication.kubernetes.io/pod-name";
const POD_UID = "authentication.kubernetes.io/pod-uid";
const NODE_NAME = "authentication.kubernetes.io/node-name";

export interface CallerAuthenticatorOptions {
  /** The pod in the informer cache, asked before the API (a pod created a moment ago may not be there yet). */
  cachedPod?(namespace: string, name: string): KubeObject | undefined;
  now?(): number;
}

export class CallerAuthenticator {
  readonly #client: KubeClient;
  readonly #agents: Set<string>;
  readonly #cache = new Map<string, { at: number; result: CallerAuthentication }>();
  readonly #opts: CallerAuthenticatorOptions;
  readonly #now: () => number;

  /** `agentServiceAccounts` as namespace/name. */
  constructor(client: KubeClient, agentServiceAccounts: string[], opts: CallerAuthenticatorOptions = {}) {
    this.#client = client;
    this.#agents = new Set(agentServiceAccounts.map((sa) => `system:serviceaccount:${sa.replace("/", ":")}`));
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Agents only (the config stream of a node): any other caller is refused with AMBIT_E_CA_NOT_AN_AGENT. */
  async authenticateAgent(authorization: string | undefined): Promise<AgentAuthentication> {
    const result = await this.authenticate(authorization);
    if (result.ok && "agent" in result) return { ok: true, ...result.agent };
    if (!result.ok && result.username === undefined) return result;
    const username = result.ok ? `system:serviceaccount:${result.pod.namespace}:${result.pod.serviceAccount}` : result.username;
    return {
      ok: false,
      status: 403,
      code: CaRefusalCode.notAnAgent,
      reason: `${username || "the caller"} is not an agent service account (allowed: ${[...this.#agents].join(", ")})`,
    };
  }

  /** An agent, or else a pod proven by its pod-bound token. */
  async authenticate(authorization: string | undefined): Promise<CallerAuthentication> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
    if (!token)
      return {
        ok: false,
        status: 401,
        code: CaRefusalCode.unauthenticated,
        reason: "no bearer token: send the pod's projected service-account token (audience ambit-ca)",
      };
    const key = createHash("sha256").update(token).digest("base64url");
    const cached = this.#cache.get(key);
    if (cached && this.#now() - cached.at < CACHE_MS) return cached.result;
    const result = await this.#review(token);
    if (this.#cache.size >= CACHE_MAX) this.#cache.clear();
    this.#cache.set(key, { at: this.#now(), result });
    return result;
  }

  async #review(token: string): Promise<CallerAuthentication> {
    const review = await this.#client.request<{ status?: TokenReviewStatus }>("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token, audiences: [CA_TOKEN_AUDIENCE] },
    });
    const status = review.status ?? {};
    if (!status.authenticated)
      return { ok: false, status: 401, code: CaRefusalCode.unauthenticated, reason: `token refused by TokenReview: ${status.error ?? "not authenticated"}` };
    if (!(status.audiences ?? []).includes(CA_TOKEN_AUDIENCE))
      return { ok: false, status: 401, code: CaRefusalCode.unauthenticated, reason: `token is not for audience ${CA_TOKEN_AUDIENCE}` };
    const username = status.user?.username ?? "";
    const extra = status.user?.extra ?? {};
    return this.#agents.has(username) ? this.#agent(username, extra) : this.#pod(username, extra);
  }

  async #agent(username: string, extra: Record<string, string[]>): Promise<CallerAuthentication> {
    let node = extra[NODE_NAME]?.[0];
    const podName = extra[POD_NAME]?.[0];
    if (!node && podName) {
      // Older clusters bind tokens to the pod only: its spec.nodeName says where the agent runs.
      const [, , namespace] = username.split(":");
      const pod = await this.#client.get(pathFor("v1", "pods", namespace, podName)).catch(() => undefined);
      node = pod?.spec?.nodeName as string | undefined;
    }
    if (!node)
      return {
        ok: false,
        status: 403,
        code: CaRefusalCode.noNode,
        reason: "the token is not bound to a pod on a node: mount a projected token (serviceAccountToken volume) in the agent pod",
      };
    return { ok: true, agent: { node, serviceAccount: username } };
  }

  /**
   * A pod's token is only as good as the pod behind it: TokenReview accepts a terminating pod's token through its
   * grace period, but a pod on its way out gets no new identity, and a token whose pod was replaced (same name,
   * another uid) proves nothing.
   */
  async #pod(username: string, extra: Record<string, string[]>): Promise<CallerAuthentication> {
    const refuse = (code: CaRefusalCode, reason: string): CallerRefusal => ({ ok: false, status: 403, code, reason, username });
    const [prefix, kind, namespace = "", serviceAccount = ""] = username.split(":");
    if (prefix !== "system" || kind !== "serviceaccount" || !namespace || !serviceAccount)
      return refuse(
        CaRefusalCode.notAnAgent,
        `${username || "the caller"} is not a service account; only agents and pods with their own service-account token may call`,
      );
    const name = extra[POD_NAME]?.[0];
    const uid = extra[POD_UID]?.[0];
    if (!name || !uid)
      return refuse(
        CaRefusalCode.notPodBound,
        `the token of ${namespace}/${serviceAccount} is not bound to a pod, and it is not an agent's (allowed: ${[...this.#agents].join(", ")}): a pod proves its identity with a projected serviceAccountToken volume of audience ${CA_TOKEN_AUDIENCE}`,
      );
    let pod = this.#opts.cachedPod?.(namespace, name);
    if (pod?.metadata.uid !== uid) pod = await this.#client.get(pathFor("v1", "pods", namespace, name)).catch(() => undefined);
    if (!pod || pod.metadata.uid !== uid) return refuse(CaRefusalCode.podNotLive, `pod ${namespace}/${name} the token is bound to no longer exists`);
    if (pod.metadata.deletionTimestamp) return refuse(CaRefusalCode.podNotLive, `pod ${namespace}/${name} is terminating: it gets no new identity`);
    const phase = pod.status?.phase as string | undefined;
    if (phase === "Succeeded" || phase === "Failed") return refuse(CaRefusalCode.podNotLive, `pod ${namespace}/${name} has terminated (${phase})`);
    const runsAs = (pod.spec?.serviceAccountName as string | undefined) ?? "default";
    if (runsAs !== serviceAccount)
      return refuse(
        CaRefusalCode.podServiceAccount,
        `the token names service account ${namespace}/${serviceAccount} but pod ${namespace}/${name} runs as ${namespace}/${runsAs}`,
      );
    return { ok: true, pod: { namespace, pod: name, serviceAccount } };
  }
}
