// AgentAuthenticator's verdicts on TokenReview answers: audience, agent service account, node from the token or its pod, caching.
import { describe, expect, it } from "vitest";
import { AgentAuthenticator } from "../../controller/identity/index.ts";
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
function fakeClient(answer: (token: string) => ReviewStatus, pods: Record<string, { spec: { nodeName?: string } }> = {}) {
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

describe("AgentAuthenticator", () => {
  it("refuses a request without a bearer token before asking the API", async () => {
    const f = fakeClient(() => bound({ "authentication.kubernetes.io/node-name": ["node-1"] }));
    const auth = new AgentAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    for (const header of [undefined, "", "Basic abc", "Bearer"]) {
      expect(await auth.authenticate(header)).toMatchObject({ ok: false, status: 401, code: "AMBIT_E_CA_UNAUTHENTICATED" });
    }
    expect(f.reviews).toHaveLength(0);
  });

  it("asks TokenReview for audience ambit-ca and takes the node from the token", async () => {
    const f = fakeClient(() => bound({ "authentication.kubernetes.io/node-name": ["node-1"] }));
    const auth = new AgentAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    expect(await auth.authenticate("Bearer tok-1")).toEqual({ ok: true, node: "node-1", serviceAccount: AGENT });
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
    const auth = new AgentAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    expect(await auth.authenticate("Bearer expired")).toMatchObject({
      ok: false,
      status: 401,
      code: "AMBIT_E_CA_UNAUTHENTICATED",
      reason: expect.stringContaining("token has expired"),
    });
    expect(await auth.authenticate("Bearer otherAudience")).toMatchObject({
      ok: false,
      status: 401,
      code: "AMBIT_E_CA_UNAUTHENTICATED",
      reason: expect.stringContaining("audience ambit-ca"),
    });
    expect(await auth.authenticate("Bearer intruder")).toMatchObject({
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
    const auth = new AgentAuthenticator(f.client, ["ambit-system/ambit-agent", "mesh/other-agent"]);
    expect(await auth.authenticate("Bearer t")).toMatchObject({ ok: true, node: "node-9" });
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
    const auth = new AgentAuthenticator(f.client, ["ambit-system/ambit-agent"]);
    expect(await auth.authenticate("Bearer pod-bound")).toMatchObject({ ok: true, node: "node-2" });
    expect(f.gets).toEqual(["/api/v1/namespaces/ambit-system/pods/agent-1"]);
    expect(await auth.authenticate("Bearer gone")).toMatchObject({ ok: false, status: 403, code: "AMBIT_E_CA_NO_NODE" });
    expect(await auth.authenticate("Bearer unbound")).toMatchObject({ ok: false, status: 403, code: "AMBIT_E_CA_NO_NODE" });
  });

  it("reuses a verdict for 10 s per token, then asks again", async () => {
    let now = 1_000_000;
    let node = "node-1";
    const f = fakeClient(() => bound({ "authentication.kubernetes.io/node-name": [node] }));
    const auth = new AgentAuthenticator(f.client, ["ambit-system/ambit-agent"], () => now);
    expect(await auth.authenticate("Bearer a")).toMatchObject({ node: "node-1" });
    node = "node-2";
    now += 9_999;
    expect(await auth.authenticate("Bearer a")).toMatchObject({ node: "node-1" });
    expect(f.reviews).toHaveLength(1);
    // Another token is reviewed on its own.
    expect(await auth.authenticate("Bearer b")).toMatchObject({ node: "node-2" });
    now += 2;
    expect(await auth.authenticate("Bearer a")).toMatchObject({ node: "node-2" });
    expect(f.reviews).toHaveLength(3);
  });
});
