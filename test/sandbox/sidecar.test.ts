// End to end on the sandbox: sidecar mode (issue 14) passes what ambient passes: mTLS between nodes by capture, identity attribution, a policy refusal, an HTTPRoute split, and HBONE both ways with ambient pods.
import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { sniff } from "../support/netns.ts";
import { ROOT_REQUIRED, TEST_SANDBOX_ENV, ambit, freshSandboxWithMesh, fromAgent, isRoot, kubectl } from "../support/sandbox.ts";
import { describeTier } from "../support/tiers.ts";
import { APPS, NODE, apply, echoDeployment, serviceAccount } from "../support/waypoint.ts";

const PREFIX = TEST_SANDBOX_ENV.AMBIT_DEV_NAME_PREFIX;

interface Pod {
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { nodeName: string; containers: Array<{ name: string }>; initContainers?: Array<{ name: string }> };
  status: { podIP: string; conditions?: Array<{ type: string; status: string }> };
}

const pods = async (namespace: string): Promise<Pod[]> => JSON.parse((await kubectl(["get", "pods", "-n", namespace, "-o", "json"])).stdout).items as Pod[];
const ready = (p: Pod) => p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** A toolbox Deployment `<name>` (sleeps; tests exec curl in it) running as ServiceAccount `<name>`. */
const toolbox = (name: string, namespace: string) => `
${serviceAccount(name, namespace)}---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      serviceAccountName: ${name}
      containers: [{name: app, image: ambit.dev/toolbox}]
`;

const service = (name: string, namespace: string, selector: string) => `
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  selector: ${selector}
  ports: [{name: http, port: 80, targetPort: 8080}]
`;

/** One request with curl from `from` (`<namespace>/<deployment>`): curl's exit code, the status and the body. */
async function get(from: string, url: string, args: string[] = []): Promise<{ exit: number; status: number; body: string }> {
  const r = await ambit(["dev", "exec", from, "--", "curl", "-s", "--max-time", "5", "-w", "\n%{http_code}", ...args, url]);
  const lines = r.stdout.split("\n");
  return { exit: r.exitCode, status: Number(lines.at(-1)), body: lines.slice(0, -1).join("\n") };
}

/** The request metrics a sidecar holds (its :15020, read from inside its pod). */
async function sidecarMetrics(namespace: string, pod: string): Promise<string[]> {
  const r = await ambit(["dev", "exec", `${namespace}/${pod}`, "--", "curl", "-s", "--max-time", "5", "http://127.0.0.1:15020/metrics"]);
  return r.stdout.split("\n").filter((l) => l.startsWith("istio_requests_total{"));
}

const count = (lines: string[], ...parts: string[]) =>
  lines.filter((l) => parts.every((p) => l.includes(p))).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);

describeTier(isRoot, ROOT_REQUIRED)("sidecar mode on the sandbox", () => {
  let client: Pod;
  /** reviews pods of namespace side (v1 and v2), and the one on the other node than the client. */
  let reviews: Pod[];
  let remoteReview: Pod;

  beforeAll(async () => {
    await freshSandboxWithMesh({}, { gatewayApi: true });
    expect((await kubectl(["create", "namespace", "side"])).exitCode).toBe(0);
    expect((await kubectl(["label", "namespace", "side", "ambit.dev/dataplane-mode=sidecar"])).exitCode).toBe(0);
    expect((await kubectl(["create", "namespace", "amb"])).exitCode).toBe(0);
    expect((await kubectl(["label", "namespace", "amb", "ambit.dev/dataplane-mode=ambient"])).exitCode).toBe(0);
    await apply(
      [
        toolbox("client", "side"),
        serviceAccount("reviews", "side"),
        echoDeployment("reviews", "v1", "reviews", {}, "side"),
        echoDeployment("reviews", "v2", "reviews", {}, "side"),
        service("reviews", "side", "{app: reviews}"),
        service("reviews-v1", "side", "{app: reviews, version: v1}"),
        service("reviews-v2", "side", "{app: reviews, version: v2}"),
        toolbox("shopper", "amb"),
        serviceAccount("store", "amb"),
        echoDeployment("store", "v1", "store", {}, "amb"),
        service("store", "amb", "{app: store}"),
      ].join("---\n"),
    );
    // Bounded: every pod ready within 90 s (the sidecars need their certificates and first config).
    const deadline = Date.now() + 90_000;
    while ([...(await pods("side")), ...(await pods("amb"))].filter(ready).length !== 5) {
      if (Date.now() > deadline) throw new Error(`pods not ready after 90 s:\n${(await kubectl(["get", "pods", "-A", "-o", "wide"])).stdout}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const side = await pods("side");
    client = side.find((p) => p.metadata.labels.app === "client")!;
    reviews = side.filter((p) => p.metadata.labels.app === "reviews");
    const remote = reviews.find((p) => p.spec.nodeName !== client.spec.nodeName);
    if (!remote) throw new Error(`every reviews pod is on the client's node ${client.spec.nodeName}; this test needs one on the other node`);
    remoteReview = remote;
  }, 240_000);

  afterAll(async () => {
    await ambit(["dev", "down"]);
  }, 60_000);

  it("injects the sidecar into pods of a sidecar-mode namespace, and the controller publishes the roots it mounts", async () => {
    for (const p of await pods("side")) {
      expect(p.spec.initContainers?.map((c) => c.name)).toEqual(["ambit-init"]);
      expect(p.spec.containers.map((c) => c.name)).toEqual(["ambit-proxy", "app"]);
      expect(JSON.parse(p.metadata.annotations?.["ambit.dev/sidecar-status"] ?? "{}")).toMatchObject({ containers: ["ambit-proxy"] });
      // A node agent never captures a pod that has its own proxy.
      expect(p.metadata.annotations?.["ambit.dev/redirection"]).not.toBe("enabled");
    }
    const roots = await kubectl(["get", "configmap", "ambit-ca-root", "-n", "side", "-o", "jsonpath={.data.root-cert\\.pem}"]);
    expect(roots.stdout).toContain("BEGIN CERTIFICATE");
    // The capture rules the init container installed, in the pod's own netns.
    const rules = await ambit(["dev", "exec", "side/client", "--", "iptables-save", "-t", "nat"]);
    expect(rules.stdout).toMatch(/-A AMBIT-SIDECAR-OUTBOUND -m owner --uid-owner 1337 -j RETURN/);
    expect(rules.stdout).toMatch(/-A AMBIT-SIDECAR-INBOUND -p tcp -m tcp --syn -j REDIRECT --to-ports 15006|REDIRECT --to-ports 15006/);
  });

  it("carries a sidecar pod's traffic to another node only inside mutual TLS, by capture", async () => {
    const marker = "MARKER-sidecar-4e7";
    let answer = { exit: -1, status: 0, body: "" };
    const nodeNetns = `${PREFIX}-${client.spec.nodeName}`;
    const dump = await sniff(nodeNetns, "eth0", "tcp", async () => (answer = await get("side/client", `http://${remoteReview.status.podIP}:8080/${marker}`)));
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ pod: remoteReview.metadata.name, path: `/${marker}` });
    expect(dump).not.toContain(marker);
    expect(dump).toMatch(/\.15008: Flags/);
  });

  it("attributes each request to the caller's identity at both ends, as Istio's sidecars report it", async () => {
    const sent = 3;
    for (let i = 0; i < sent; i++) expect((await get("side/client", `http://${remoteReview.status.podIP}:8080/attributed`)).status).toBe(200);
    const principal = 'source_principal="spiffe://cluster.local/ns/side/sa/client"';
    const server = await sidecarMetrics("side", remoteReview.metadata.name);
    expect(
      count(
        server,
        'reporter="destination"',
        principal,
        `destination_workload="${remoteReview.metadata.name.replace(/-[a-z0-9]+-[a-z0-9]+$/, "")}"`,
        'response_code="200"',
      ),
    ).toBeGreaterThanOrEqual(sent);
    expect(count(server, 'reporter="destination"', principal, 'connection_security_policy="mutual_tls"')).toBeGreaterThanOrEqual(sent);
    const clientSide = await sidecarMetrics("side", client.metadata.name);
    expect(count(clientSide, 'reporter="source"', principal, 'destination_principal="spiffe://cluster.local/ns/side/sa/reviews"')).toBeGreaterThanOrEqual(sent);
  });

  it("interoperates with ambient pods over HBONE both ways, each end proving its identity", async () => {
    // Ambient client -> sidecar server: the source agent tunnels to the pod's 15008, where the sidecar terminates it.
    const toSidecar = await get("amb/shopper", `http://${remoteReview.status.podIP}:8080/from-ambient`);
    expect(toSidecar.status).toBe(200);
    const server = await sidecarMetrics("side", remoteReview.metadata.name);
    expect(count(server, 'reporter="destination"', 'source_principal="spiffe://cluster.local/ns/amb/sa/shopper"')).toBeGreaterThanOrEqual(1);
    // Sidecar client -> ambient server: the destination agent sees the sidecar's identity.
    const store = (await pods("amb")).find((p) => p.metadata.labels.app === "store")!;
    const toAmbient = await get("side/client", `http://${store.status.podIP}:8080/from-sidecar`);
    expect(toAmbient.status).toBe(200);
    const agentMetrics = await fromAgent(store.spec.nodeName, (ip) => `http://${ip}:15020/metrics`);
    const opened = agentMetrics
      .split("\n")
      .filter(
        (l) =>
          l.startsWith("istio_tcp_connections_opened_total{") &&
          l.includes('reporter="destination"') &&
          l.includes('source_principal="spiffe://cluster.local/ns/side/sa/client"') &&
          l.includes('connection_security_policy="mutual_tls"'),
      );
    expect(opened.length).toBeGreaterThan(0);
  });

  it("refuses connections to a sidecar's own ports at once, from other pods and from its own app, so nothing loops", async () => {
    // The proxy's own connections are never captured, so a connection to its capture port that it passed on would
    // come straight back to it: each attempt must end at the first hop.
    const proxyPid = async () => {
      const statuses = JSON.parse(
        (await kubectl(["get", "pod", "-n", "side", remoteReview.metadata.name, "-o", "jsonpath={.status.containerStatuses}"])).stdout,
      ) as Array<{
        name: string;
        containerID?: string;
      }>;
      return Number(statuses.find((c) => c.name === "ambit-proxy")?.containerID?.replace("sandbox://", ""));
    };
    const pid = await proxyPid();
    const fds = async () => (await fs.readdir(`/proc/${pid}/fd`)).length;
    const before = await fds();
    const ip = remoteReview.status.podIP;
    // Refused or closed without an answer (curl 7 reset during connect, 52 empty reply, 56 reset), never left hanging
    // (28); a sidecar client speaks HTTP to its app, so its own sidecar answers the refusal upstream as 503 (Envoy's UF).
    const refused = { exit: expect.toBeOneOf([7, 52, 56]), answered: "000" };
    const upstreamRefused = { exit: 0, answered: "503" };
    const attempts: Array<[string, string, object]> = [
      ["legacy/client", `http://${ip}:15006/`, refused],
      ["legacy/client", `http://${ip}:15001/`, refused],
      ["amb/shopper", `http://${ip}:15006/`, refused],
      ["side/client", `http://${ip}:15001/`, upstreamRefused],
      ["side/client", `http://${ip}:15006/`, upstreamRefused],
      [`side/${remoteReview.metadata.name}`, "http://127.0.0.1:15001/", refused],
      [`side/${remoteReview.metadata.name}`, `http://${ip}:15006/`, refused],
    ];
    for (const [from, url, expected] of attempts) {
      const r = await ambit(["dev", "exec", from, "--", "curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", url]);
      expect({ from, url, exit: r.exitCode, answered: r.stdout }).toMatchObject(expected);
    }
    await expect.poll(async () => (await fds()) - before, { timeout: 5_000, interval: 250 }).toBeLessThanOrEqual(10);
    expect(await proxyPid()).toBe(pid);
  });

  it("refuses what an AuthorizationPolicy on the sidecar's pod denies, and serves the rest", async () => {
    await apply(`
apiVersion: security.ambit.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-ambient-shoppers, namespace: side}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/amb/sa/shopper"]}}]}]
`);
    // Denied by the destination sidecar before any byte reaches the app: the client's connection is reset.
    await expect
      .poll(async () => (await get("amb/shopper", `http://${remoteReview.status.podIP}:8080/denied`)).exit, { timeout: 15_000, interval: 500 })
      .toBeOneOf([52, 56]);
    expect((await get("side/client", `http://${remoteReview.status.podIP}:8080/allowed`)).status).toBe(200);
    expect((await kubectl(["delete", "authorizationpolicy", "no-ambient-shoppers", "-n", "side"])).exitCode).toBe(0);
    await expect
      .poll(async () => (await get("amb/shopper", `http://${remoteReview.status.podIP}:8080/again`)).status, { timeout: 15_000, interval: 500 })
      .toBe(200);
  });

  it("closes a connection that is already open when a new policy denies it, as the agent does", async () => {
    // One keep-alive connection from the client's app, a request every 100 ms; its sidecar keeps one upstream HBONE
    // stream to the server's sidecar. Once the DENY applies, the server's sidecar closes that stream, and the client's
    // sidecar, refused a new one (401), answers 503. Left open, the stream would keep carrying requests with 200.
    const live = ambit(
      [
        "dev",
        "exec",
        "side/client",
        "--",
        NODE,
        path.join(APPS, "http-load.ts"),
        `http://${remoteReview.status.podIP}:8080/live`,
        "--until-status",
        "503",
        "--interval-ms",
        "100",
        "--timeout-ms",
        "20000",
      ],
      { timeout: 60_000 },
    );
    const server = async () => (await kubectl(["logs", "-n", "side", remoteReview.metadata.name, "-c", "ambit-proxy", "--tail", "50"])).stdout;
    await expect.poll(async () => (await server()).includes('"path":"/live"'), { timeout: 15_000 }).toBe(true);
    await apply(`
apiVersion: security.ambit.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-live-client, namespace: side}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{from: [{source: {principals: ["cluster.local/ns/side/sa/client"]}}]}]
`);
    const run = JSON.parse((await live).stdout.trim().split("\n").at(-1)!) as { sequence: number[]; connections: number };
    expect(run.sequence.at(-1)).toBe(503);
    expect(run.sequence.filter((code) => code === 200).length).toBeGreaterThan(0);
    expect(run.connections).toBe(1);
    expect(await server()).toContain("closed connections the new policy denies");
    expect((await kubectl(["delete", "authorizationpolicy", "no-live-client", "-n", "side"])).exitCode).toBe(0);
  });

  it("applies an HTTPRoute at the client's sidecar: a header match and a weighted split", async () => {
    await apply(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-split, namespace: side}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 80}]
  rules:
  - matches: [{headers: [{name: x-version, value: v2}]}]
    backendRefs: [{name: reviews-v2, port: 80}]
  - backendRefs: [{name: reviews-v1, port: 80, weight: 80}, {name: reviews-v2, port: 80, weight: 20}]
`);
    const version = async (args: string[] = []) =>
      (JSON.parse((await get("side/client", "http://reviews.side/", args)).body || "{}") as { version?: string }).version;
    // The header rule routes every request once the sidecar holds the route.
    await expect
      .poll(async () => [await version(["-H", "x-version: v2"]), await version(["-H", "x-version: v2"])], { timeout: 15_000, interval: 500 })
      .toEqual(["v2", "v2"]);
    const n = 300;
    const r = await ambit(["dev", "exec", "side/client", "--", "sh", "-c", `for i in $(seq ${n}); do curl -s --max-time 5 http://reviews.side/; echo; done`], {
      timeout: 120_000,
    });
    const versions = r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => (JSON.parse(l) as { version: string }).version);
    expect(versions.length).toBe(n);
    const v2 = versions.filter((v) => v === "v2").length / n;
    // 20 % of 300: a standard deviation of 2.3 points; 10-30 % is more than four either way.
    expect(v2).toBeGreaterThan(0.1);
    expect(v2).toBeLessThan(0.3);
  });
});
