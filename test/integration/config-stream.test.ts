// Config stream between an in-process controller server and agent clients over real mTLS on loopback.
import http2 from "node:http2";
import net from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigStreamClient, type ConfigStreamClientOptions, type UpdateInfo } from "../../agent/config-client/index.ts";
import { type Credentials, type SpiffeId, formatSpiffeId } from "../../agent/identity/index.ts";
import { CONFIG_STREAM_PATH, type Resource, encodeMessage, parseAgentMessage, resourceId } from "../../contract/stream.ts";
import { type AuthenticationResult, ConfigStreamServer, type ConfigStreamServerOptions } from "../../controller/stream/index.ts";
import { TestCa } from "../support/test-ca.ts";

const id = (sa: string): SpiffeId => ({ trustDomain: "cluster.local", namespace: "ambit-system", serviceAccount: sa });
const CONTROLLER = formatSpiffeId(id("ambit-controller"));
const log = pino({ level: "silent" });

const workload = (name: string, value: unknown = { ip: `10.0.0.${name.length}` }): Resource => ({ type: "workload", key: `demo/${name}`, value });
const viewOf = (...resources: Resource[]) => new Map(resources.map((r) => [resourceId(r), r]));

async function waitFor(what: string, check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function counterValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

describe("config stream", () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let controllerCreds: Credentials;
  let agentCreds: Credentials;
  let strangerCreds: Credentials;
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    ca = TestCa.create();
    otherCa = TestCa.create("another-root");
    controllerCreds = ca.issue(id("ambit-controller"));
    agentCreds = ca.issue(id("ambit-agent"));
    strangerCreds = otherCa.issue(id("ambit-agent"));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** What the controller would compute per node; tests edit it and call changed(). */
  let views: Map<string, Map<string, Resource>>;
  let authCalls: number[];

  /** Tokens are "token-<node>"; the client certificate must carry a SPIFFE URI SAN. */
  const tokenAuth: ConfigStreamServerOptions["authenticate"] = async ({ peerCertificate, headers }): Promise<AuthenticationResult> => {
    authCalls.push(Date.now());
    if (!peerCertificate?.subjectAltName?.startsWith("URI:spiffe://")) return { error: "no SPIFFE client certificate" };
    const m = /^Bearer token-(.+)$/.exec(String(headers.authorization ?? ""));
    return m ? { node: m[1]! } : { error: "missing or unknown bearer token" };
  };

  async function startServer(opts: { port?: number; authenticate?: ConfigStreamServerOptions["authenticate"] } = {}) {
    const registry = new Registry();
    const server = new ConfigStreamServer({
      credentials: controllerCreds,
      trustBundlePem: ca.rootPem,
      authenticate: opts.authenticate ?? tokenAuth,
      viewFor: (node) => views.get(node) ?? new Map(),
      log,
      registry,
    });
    const { port } = await server.listen(opts.port ?? 0, "127.0.0.1");
    cleanups.push(() => server.close());
    return { server, registry, port };
  }

  function startClient(node: string, port: number, opts: Partial<ConfigStreamClientOptions> = {}) {
    const updates: Array<{ info: UpdateInfo; view: ReadonlyMap<string, Resource> }> = [];
    const registry = new Registry();
    const client = new ConfigStreamClient({
      url: `https://127.0.0.1:${port}`,
      ca: ca.rootPem,
      credentials: () => agentCreds,
      token: () => `token-${node}`,
      node,
      log,
      registry,
      serverIdentity: CONTROLLER,
      backoff: { initialMs: 50, maxMs: 500, jitter: 0 },
      onUpdate: (view, info) => void updates.push({ view, info }),
      ...opts,
    });
    client.start();
    cleanups.push(() => client.close());
    return { client, updates, registry };
  }

  /** A TCP relay in front of the server, so a test can cut established connections like a network fault would. */
  async function relay(targetPort: number) {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((down) => {
      const up = net.connect(targetPort, "127.0.0.1");
      for (const s of [down, up]) {
        sockets.add(s);
        s.on("error", () => undefined).once("close", () => sockets.delete(s));
      }
      down.pipe(up).pipe(down);
      down.once("close", () => up.destroy());
      up.once("close", () => down.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    return { port: (server.address() as net.AddressInfo).port, cut: () => sockets.forEach((s) => s.destroy()) };
  }

  const reset = () => {
    views = new Map([
      ["node-1", viewOf(workload("a"), workload("b"), workload("c"), { type: "authorization", key: "demo/allow-orders", value: { action: "ALLOW" } })],
      ["node-2", viewOf(workload("x"), workload("y"))],
    ]);
    authCalls = [];
  };

  it("sends each node a snapshot of only its own view, and records acks", async () => {
    reset();
    const { server, port } = await startServer();
    const one = startClient("node-1", port);
    const two = startClient("node-2", port);
    await waitFor("both snapshots", () => one.updates.length === 1 && two.updates.length === 1);
    expect(one.updates[0]!.info.kind).toBe("snapshot");
    expect([...one.updates[0]!.view.keys()].sort()).toEqual(["authorization/demo/allow-orders", "workload/demo/a", "workload/demo/b", "workload/demo/c"]);
    expect([...two.updates[0]!.view.keys()].sort()).toEqual(["workload/demo/x", "workload/demo/y"]);
    await waitFor("acks", () => server.status().every((s) => s.lastAckedVersion === s.lastSentVersion));
    expect(server.status().map((s) => [s.node, s.lag])).toEqual([
      ["node-1", 0],
      ["node-2", 0],
    ]);
    expect(one.client.staleness()).toMatchObject({ connected: true, version: 1, epoch: server.epoch });
  });

  it("pushes a delta with only what changed on node-1, and nothing to node-2", async () => {
    reset();
    const { server, registry, port } = await startServer();
    const one = startClient("node-1", port);
    const two = startClient("node-2", port);
    await waitFor("snapshots", () => one.updates.length === 1 && two.updates.length === 1);
    views.set(
      "node-1",
      viewOf(workload("a", { ip: "10.9.9.9" }), workload("c"), workload("d"), { type: "authorization", key: "demo/allow-orders", value: { action: "ALLOW" } }),
    );
    server.changed();
    await waitFor("the delta", () => one.updates.length === 2);
    const { info, view } = one.updates[1]!;
    expect(info.kind).toBe("delta");
    expect(info.upserts.map(resourceId).sort()).toEqual(["workload/demo/a", "workload/demo/d"]);
    expect(info.removes).toEqual([{ type: "workload", key: "demo/b" }]);
    expect(view.get("workload/demo/a")?.value).toEqual({ ip: "10.9.9.9" });
    expect(view.has("workload/demo/b")).toBe(false);
    await sleep(250);
    expect(two.updates).toHaveLength(1);
    expect(await counterValue(registry, "ambit_config_pushes_total", { type: "delta" })).toBe(1);
  });

  it("coalesces 50 rapid changes into one push", async () => {
    reset();
    const { server, registry, port } = await startServer();
    const one = startClient("node-1", port);
    await waitFor("snapshot", () => one.updates.length === 1);
    for (let i = 1; i <= 50; i++) {
      views.get("node-1")!.set("workload/demo/a", workload("a", { generation: i }));
      server.changed();
      await Promise.resolve();
    }
    await waitFor("the push", () => one.updates.length === 2);
    await sleep(300);
    expect(one.updates).toHaveLength(2);
    expect(one.updates[1]!.view.get("workload/demo/a")?.value).toEqual({ generation: 50 });
    expect(await counterValue(registry, "ambit_config_pushes_total", { type: "delta" })).toBe(1);
  });

  it("serves every agent of a node (two during an agent restart)", async () => {
    reset();
    const { server, port } = await startServer();
    const oldAgent = startClient("node-1", port);
    const newAgent = startClient("node-1", port);
    await waitFor("snapshots", () => oldAgent.updates.length === 1 && newAgent.updates.length === 1);
    views.get("node-1")!.delete("workload/demo/c");
    server.changed();
    await waitFor("both deltas", () => oldAgent.updates.length === 2 && newAgent.updates.length === 2);
    expect(server.status().filter((s) => s.node === "node-1")).toHaveLength(2);
  });

  it("resumes from the acked version with a delta after the connection is cut", async () => {
    reset();
    const { server, registry, port } = await startServer();
    const link = await relay(port);
    const one = startClient("node-1", link.port);
    await waitFor("snapshot acked", () => server.status()[0]?.lastAckedVersion === 1);
    link.cut();
    await waitFor("the client noticing", () => !one.client.staleness().connected);
    views.get("node-1")!.set("workload/demo/e", workload("e"));
    server.changed();
    await waitFor("the resumed update", () => one.updates.length === 2);
    expect(one.updates[1]!.info).toMatchObject({ kind: "delta", version: 2, removes: [] });
    expect(one.updates[1]!.info.upserts.map(resourceId)).toEqual(["workload/demo/e"]);
    expect(await counterValue(registry, "ambit_config_pushes_total", { type: "snapshot" })).toBe(1);
    expect(one.client.staleness()).toMatchObject({ connected: true, version: 2 });
  });

  it("keeps the view while the controller is down, then takes a snapshot from the restarted one", async () => {
    reset();
    const first = await startServer();
    const port = first.port;
    const one = startClient("node-1", port);
    await waitFor("snapshot", () => one.updates.length === 1);
    await first.server.close();
    await waitFor("disconnect", () => !one.client.staleness().connected);
    await sleep(300);
    const down = one.client.staleness();
    expect(down.disconnectedSince).toBeInstanceOf(Date);
    expect(down.version).toBe(1);
    expect(one.client.view.size).toBe(4);
    expect(await counterValue(one.registry, "ambit_config_stale_seconds")).toBeGreaterThan(0.2);
    expect(await counterValue(one.registry, "ambit_config_connected")).toBe(0);

    const second = await startServer({ port });
    await waitFor("the new controller's snapshot", () => one.updates.length === 2, 5_000);
    expect(second.server.epoch).not.toBe(first.server.epoch);
    expect(one.updates[1]!.info).toMatchObject({ kind: "snapshot", epoch: second.server.epoch });
    expect(one.client.staleness()).toMatchObject({ connected: true, disconnectedSince: undefined });
    expect(await counterValue(one.registry, "ambit_config_stale_seconds")).toBe(0);
  });

  it("refuses at TLS a client without a certificate or with one from another CA", async () => {
    reset();
    const { port } = await startServer();
    const noCert = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.rootPem, checkServerIdentity: () => undefined });
    cleanups.push(() => noCert.destroy());
    noCert.on("error", () => undefined);
    const req = noCert.request({ ":method": "POST", ":path": CONFIG_STREAM_PATH }, { endStream: false });
    let answered = false;
    req.on("response", () => (answered = true));
    req.write(encodeMessage({ kind: "hello", node: "node-1" }));
    const refusal = await new Promise<Error>((resolve) => req.once("error", resolve));
    expect(refusal.message).toMatch(/certificate required/);
    expect(answered).toBe(false);

    const stranger = startClient("node-1", port, { credentials: () => strangerCreds });
    await waitFor("a failed attempt", () => stranger.client.staleness().failures >= 1);
    expect(stranger.client.staleness()).toMatchObject({ connected: false, lastError: { code: "AMBIT_E_CONFIG_STREAM_CONNECT" } });
    expect(stranger.updates).toHaveLength(0);
    expect(authCalls).toHaveLength(0);
  });

  it("answers 401 when authenticate() refuses, and the client backs off", async () => {
    reset();
    const { port } = await startServer({
      authenticate: async () => {
        authCalls.push(Date.now());
        return { error: "token review failed" };
      },
    });
    const one = startClient("node-1", port, { backoff: { initialMs: 100, maxMs: 10_000, jitter: 0 } });
    await waitFor("three attempts", () => authCalls.length >= 3);
    expect(one.client.staleness()).toMatchObject({ connected: false, lastError: { code: "AMBIT_E_CONFIG_STREAM_UNAUTHENTICATED", status: 401 } });
    const [t0, t1, t2] = authCalls as [number, number, number];
    expect(t2 - t1).toBeGreaterThan(t1 - t0);
    expect(one.updates).toHaveLength(0);
  });

  it("answers 403 to an agent asking for another node's config", async () => {
    reset();
    const { port } = await startServer();
    const liar = startClient("node-2", port, { token: () => "token-node-1" });
    await waitFor("the refusal", () => liar.client.staleness().failures >= 1);
    expect(liar.client.staleness().lastError).toMatchObject({ code: "AMBIT_E_CONFIG_STREAM_FORBIDDEN", status: 403 });
    expect(liar.updates).toHaveLength(0);
  });

  it("leaves the acked version unchanged on a nack, and the client keeps its view", async () => {
    reset();
    const { server, port } = await startServer();
    const applied: number[] = [];
    const one = startClient("node-1", port, {
      onUpdate: (_view, info) => {
        if (info.version === 2) throw new Error("policy does not compile");
        applied.push(info.version);
      },
    });
    await waitFor("snapshot acked", () => server.status()[0]?.lastAckedVersion === 1);
    views.get("node-1")!.delete("workload/demo/a");
    server.changed();
    await waitFor("the nack", () => server.status()[0]?.lastNack !== undefined);
    expect(server.status()[0]).toMatchObject({ lastSentVersion: 2, lastAckedVersion: 1, lag: 1, lastNack: { version: 2, error: "policy does not compile" } });
    expect(one.client.staleness().version).toBe(1);
    expect(one.client.view.has("workload/demo/a")).toBe(true);
    expect(applied).toEqual([1]);
  });

  it("never applies a delta out of order: it reconnects asking for a snapshot", async () => {
    // A misbehaving controller: a snapshot at version 1, then a delta from version 3.
    const hellos: unknown[] = [];
    const fake = http2.createSecureServer({
      cert: controllerCreds.certChainPem,
      key: controllerCreds.keyPem,
      ca: ca.rootPem,
      requestCert: true,
      rejectUnauthorized: true,
    });
    fake.on("stream", (stream) => {
      stream.once("data", (chunk: Buffer) => {
        const hello = parseAgentMessage(chunk.toString().trim());
        hellos.push(hello);
        stream.respond({ ":status": 200 });
        if (hellos.length === 1) {
          stream.write(encodeMessage({ kind: "snapshot", epoch: "e1", version: 1, resources: [workload("a")] }));
          stream.write(
            encodeMessage({
              kind: "delta",
              epoch: "e1",
              version: 4,
              fromVersion: 3,
              upserts: [workload("evil")],
              removes: [{ type: "workload", key: "demo/a" }],
            }),
          );
        } else {
          stream.write(encodeMessage({ kind: "snapshot", epoch: "e1", version: 5, resources: [workload("a"), workload("b")] }));
        }
      });
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => fake.close(r)));
    const one = startClient("node-1", (fake.address() as net.AddressInfo).port);
    await waitFor("the second snapshot", () => one.updates.length === 2);
    expect(one.updates.map((u) => [u.info.kind, u.info.version])).toEqual([
      ["snapshot", 1],
      ["snapshot", 5],
    ]);
    expect(hellos).toEqual([
      { kind: "hello", node: "node-1" },
      { kind: "hello", node: "node-1" },
    ]);
    expect(one.updates.some((u) => u.view.has("workload/demo/evil"))).toBe(false);
  });
});
