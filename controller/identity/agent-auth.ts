// Who is calling: a projected service-account token checked by TokenReview, which must belong to an agent, on a known node.
import { createHash } from "node:crypto";
import { type KubeClient, pathFor } from "../../kube/client.ts";
import { CA_TOKEN_AUDIENCE, CaRefusalCode } from "../../contract/certificates.ts";

export type AgentAuthentication = { ok: true; node: string; serviceAccount: string } | { ok: false; status: 401 | 403; code: CaRefusalCode; reason: string };

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

/** A verdict is reused briefly: agents call in bursts (one CSR per identity) and TokenReview is a round trip. */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;

export class AgentAuthenticator {
  readonly #client: KubeClient;
  readonly #agents: Set<string>;
  readonly #cache = new Map<string, { at: number; result: AgentAuthentication }>();
  readonly #now: () => number;

  /** `agentServiceAccounts` as namespace/name. */
  constructor(client: KubeClient, agentServiceAccounts: string[], now: () => number = Date.now) {
    this.#client = client;
    this.#agents = new Set(agentServiceAccounts.map((sa) => `system:serviceaccount:${sa.replace("/", ":")}`));
    this.#now = now;
  }

  async authenticate(authorization: string | undefined): Promise<AgentAuthentication> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
    if (!token)
      return {
        ok: false,
        status: 401,
        code: CaRefusalCode.unauthenticated,
        reason: "no bearer token: send the agent's projected service-account token (audience ambit-ca)",
      };
    const key = createHash("sha256").update(token).digest("base64url");
    const cached = this.#cache.get(key);
    if (cached && this.#now() - cached.at < CACHE_MS) return cached.result;
    const result = await this.#review(token);
    if (this.#cache.size >= CACHE_MAX) this.#cache.clear();
    this.#cache.set(key, { at: this.#now(), result });
    return result;
  }

  async #review(token: string): Promise<AgentAuthentication> {
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
    if (!this.#agents.has(username))
      return {
        ok: false,
        status: 403,
        code: CaRefusalCode.notAnAgent,
        reason: `${username || "the caller"} is not an agent service account (allowed: ${[...this.#agents].join(", ")})`,
      };
    const extra = status.user?.extra ?? {};
    let node = extra["authentication.kubernetes.io/node-name"]?.[0];
    const podName = extra["authentication.kubernetes.io/pod-name"]?.[0];
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
    return { ok: true, node, serviceAccount: username };
  }
}
