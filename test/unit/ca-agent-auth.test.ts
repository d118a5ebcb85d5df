// CallerAuthenticator's verdicts on TokenReview answers: audience, agent service account, node from the token or its pod, a non-agent pod proven by its bound token, caching.
import { describe, expect, it } from "vitest";
import { CallerAuthenticator } from "../../controller/identity/index.ts";
import { type KubeClient, KubeRequestError } from "../../kube/client.ts";

interface ReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

const AGENT = "system:serviceaccount:ambit-system:ambit-agent";
const bound = (extra: Record<string, string[]>): ReviewStatus => ({ authenticated: true, audiences: ["ambit-ca"], user: { username: AGENT, extra } });

/** A KubeClient whose TokenReview answers what `answer` says and whose pods are `pods`; every call is recorded. */
function fakeClient(answer: (token: string) => ReviewStatus, pods: Record<string, unknown> = {}) {
  const reviews: Array<{ path: string; body: { spec: { token: string; audiences: string[] } } }> = [];
  const gets: string[] = [];
  const client = {
    request: async (_method: string, path: string, body: { spec: { token: string; audiences: string[] } }) => {
      reviews.push({ path, body });
      return { status: answer(body.spec.token) };
    },
    get: async (path: string) => {
      gets.push(path);
      const pod = pods[path];
      if (!pod) throw new KubeRequestError(404, "NotFound", `${path} not found`);
      return pod;
    },
  };
  return { client: client as unknown as KubeClient, reviews, gets };
}

describe("CallerAuthenticator", () => {
  it("refuses a request without a bearer token before asking the API", async () => {
    const f = fakeClient(() => bound({ "authentication.kubernetes.io/node-name": ["node-1"] }));
    const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    for (const header of [undefined, "", "Basic abc", "Bearer"]) {
      expect(await auth.authenticateAgent(header)).toMatchObject({ ok: false, status: 401, code: "AMBIT_E_CA_UNAUTHENTICATED" });
    }
    expect(f.reviews).toHaveLength(0);
  });

  it("asks TokenReview for audience ambit-ca and takes the node from the token", async () => {
    const f = fakeClient(() => bound({ "authentication.kubernetes.io/node-name": ["node-1"] }));
    const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    expect(await auth.authenticateAgent("Bearer tok-1")).toEqual({ ok: true, node: "node-1", serviceAccount: AGENT });
    expect(f.reviews).toEqual([
      {
        path: "/apis/authentication.k8s.io/v1/tokenreviews",
        body: expect.objectContaining({ kind: "TokenReview", spec: { token: "tok-1", audiences: ["ambit-ca"] } }),
      },
    ]);
  });

  it("refuses unauthenticated tokens (401), tokens without the ambit-ca audience (401), other service accounts (403)", async () => {
    const answers: Record<string, ReviewStatus> = {
      expired: { authenticated: false, error: "token has expired" },
      otherAudience: {
        authenticated: true,
        audiences: ["https://kubernetes.default.svc"],
        user: { username: AGENT, extra: { "authentication.kubernetes.io/node-name": ["node-1"] } },
      },
      intruder: {
        authenticated: true,
        audiences: ["ambit-ca"],
        user: { username: "system:serviceaccount:demo:intruder", extra: { "authentication.kubernetes.io/node-name": ["node-1"] } },
      },
    };
    const f = fakeClient((t) => answers[t]!);
    const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    expect(await auth.authenticateAgent("Bearer expired")).toMatchObject({
      ok: false,
      status: 401,
      code: "AMBIT_E_CA_UNAUTHENTICATED",
      reason: expect.stringContaining("token has expired"),
    });
    expect(await auth.authenticateAgent("Bearer otherAudience")).toMatchObject({
      ok: false,
      status: 401,
      code: "AMBIT_E_CA_UNAUTHENTICATED",
      reason: expect.stringContaining("audience ambit-ca"),
    });
    expect(await auth.authenticateAgent("Bearer intruder")).toMatchObject({
      ok: false,
      status: 403,
      code: "AMBIT_E_CA_NOT_AN_AGENT",
      reason: expect.stringContaining("system:serviceaccount:demo:intruder"),
    });
  });

  it("accepts every configured agent service account", async () => {
    const f = fakeClient(() => ({
      authenticated: true,
      audiences: ["ambit-ca"],
      user: { username: "system:serviceaccount:mesh:other-agent", extra: { "authentication.kubernetes.io/node-name": ["node-9"] } },
    }));
    const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent", "mesh/other-agent"]);
    expect(await auth.authenticateAgent("Bearer t")).toMatchObject({ ok: true, node: "node-9" });
  });

  it("finds the node through the bound pod when the token names no node, and refuses a token bound to no node", async () => {
    const f = fakeClient(
      (t) =>
        bound(
          t === "pod-bound"
            ? { "authentication.kubernetes.io/pod-name": ["agent-1"], "authentication.kubernetes.io/pod-uid": ["u1"] }
            : t === "gone"
              ? { "authentication.kubernetes.io/pod-name": ["agent-x"] }
              : {},
        ),
      { "/api/v1/namespaces/ambit-system/pods/agent-1": { spec: { nodeName: "node-2" } } },
    );
    const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    expect(await auth.authenticateAgent("Bearer pod-bound")).toMatchObject({ ok: true, node: "node-2" });
    expect(f.gets).toEqual(["/api/v1/namespaces/ambit-system/pods/agent-1"]);
    expect(await auth.authenticateAgent("Bearer gone")).toMatchObject({ ok: false, status: 403, code: "AMBIT_E_CA_NO_NODE" });
    expect(await auth.authenticateAgent("Bearer unbound")).toMatchObject({ ok: false, status: 403, code: "AMBIT_E_CA_NO_NODE" });
  });

  it("reuses a verdict for 10 s per token, then asks again", async () => {
    let now = 1_000_000;
    let node = "node-1";
    const f = fakeClient(() => bound({ "authentication.kubernetes.io/node-name": [node] }));
    const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent"], { now: () => now });
    expect(await auth.authenticateAgent("Bearer a")).toMatchObject({ node: "node-1" });
    node = "node-2";
    now += 9_999;
    expect(await auth.authenticateAgent("Bearer a")).toMatchObject({ node: "node-1" });
    expect(f.reviews).toHaveLength(1);
    // Another token is reviewed on its own.
    expect(await auth.authenticateAgent("Bearer b")).toMatchObject({ node: "node-2" });
    now += 2;
    expect(await auth.authenticateAgent("Bearer a")).toMatchObject({ node: "node-2" });
    expect(f.reviews).toHaveLength(3);
  });

  describe("a pod that is not an agent", () => {
    const WAYPOINT = "system:serviceaccount:shop:waypoint";
    const podToken = (username: string, extra: Record<string, string[]>): ReviewStatus => ({
      authenticated: true,
      audiences: ["ambit-ca"],
      user: { username, extra },
    });
    const boundTo = (pod: string, uid: string) => ({ "authentication.kubernetes.io/pod-name": [pod], "authentication.kubernetes.io/pod-uid": [uid] });
    const pod = (uid: string, extra: { sa?: string; deleting?: boolean; phase?: string } = {}) => ({
      metadata: { uid, ...(extra.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}) },
      spec: { serviceAccountName: extra.sa ?? "waypoint", nodeName: "node-1" },
      status: { phase: extra.phase ?? "Running" },
    });
    const path = (name: string) => `/api/v1/namespaces/shop/pods/${name}`;

    it("is the pod its bound token names, when that pod is live with that uid and runs the token's service account", async () => {
      const answers: Record<string, ReviewStatus> = {
        live: podToken(WAYPOINT, boundTo("waypoint-1", "u1")),
        unbound: podToken(WAYPOINT, {}),
        replaced: podToken(WAYPOINT, boundTo("waypoint-1", "old-uid")),
        gone: podToken(WAYPOINT, boundTo("waypoint-9", "u9")),
        terminating: podToken(WAYPOINT, boundTo("waypoint-2", "u2")),
        finished: podToken(WAYPOINT, boundTo("waypoint-3", "u3")),
        otherSa: podToken(WAYPOINT, boundTo("orders-1", "u4")),
        notSa: podToken("alice", boundTo("waypoint-1", "u1")),
      };
      const f = fakeClient((t) => answers[t]!, {
        [path("waypoint-1")]: pod("u1"),
        [path("waypoint-2")]: pod("u2", { deleting: true }),
        [path("waypoint-3")]: pod("u3", { phase: "Succeeded" }),
        [path("orders-1")]: pod("u4", { sa: "orders" }),
      });
      const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent"]);
      expect(await auth.authenticate("Bearer live")).toEqual({ ok: true, pod: { namespace: "shop", pod: "waypoint-1", serviceAccount: "waypoint" } });
      const refusals = Object.fromEntries(
        await Promise.all(
          Object.keys(answers)
            .filter((t) => t !== "live")
            .map(async (t) => [t, await auth.authenticate(`Bearer ${t}`)] as const),
        ),
      );
      expect(Object.fromEntries(Object.entries(refusals).map(([t, r]) => [t, r.ok ? "ok" : `${r.status} ${r.code}`]))).toEqual({
        unbound: "403 AMBIT_E_CA_TOKEN_NOT_POD_BOUND",
        replaced: "403 AMBIT_E_CA_POD_NOT_LIVE",
        gone: "403 AMBIT_E_CA_POD_NOT_LIVE",
        terminating: "403 AMBIT_E_CA_POD_NOT_LIVE",
        finished: "403 AMBIT_E_CA_POD_NOT_LIVE",
        otherSa: "403 AMBIT_E_CA_POD_SERVICE_ACCOUNT",
        notSa: "403 AMBIT_E_CA_NOT_AN_AGENT",
      });
      expect(refusals.terminating).toMatchObject({ reason: "pod shop/waypoint-2 is terminating: it gets no new identity" });
      expect(refusals.otherSa).toMatchObject({ reason: expect.stringContaining("runs as shop/orders") });
      // Never an agent: the node stream refuses it whatever its pod.
      expect(await auth.authenticateAgent("Bearer live")).toMatchObject({
        ok: false,
        status: 403,
        code: "AMBIT_E_CA_NOT_AN_AGENT",
        reason: expect.stringContaining(WAYPOINT),
      });
      expect(await auth.authenticateAgent("Bearer otherSa")).toMatchObject({ ok: false, code: "AMBIT_E_CA_NOT_AN_AGENT" });
    });

    it("reads the pod from the informer cache first, and from the API when the cache has not seen it (or has an older pod of that name)", async () => {
      const f = fakeClient(() => podToken(WAYPOINT, boundTo("waypoint-1", "u1")), { [path("waypoint-1")]: pod("u1") });
      let cached: unknown = pod("u1");
      const auth = new CallerAuthenticator(f.client, ["ambit-system/ambit-agent"], { cachedPod: () => cached as never, now: () => 0 });
      expect(await auth.authenticate("Bearer a")).toMatchObject({ ok: true });
      expect(f.gets).toEqual([]);
      cached = pod("u0");
      expect(await auth.authenticate("Bearer b")).toMatchObject({ ok: true });
      expect(f.gets).toEqual([path("waypoint-1")]);
    });
  });
});
