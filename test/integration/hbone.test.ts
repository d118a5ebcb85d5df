// HBONE between two in-process agents on loopback: mTLS identities, CONNECT semantics, pooling, refusals.
import { X509Certificate } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import http2 from "node:http2";
import pino from "pino";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Authorization, HboneConnectionPool, HboneServer, type StreamEvent } from "../../agent/hbone/index.ts";
import type { Credentials, SpiffeId } from "../../agent/identity/index.ts";
import { TestCa } from "../support/test-ca.ts";

const id = (ns: string, sa: string): SpiffeId => ({ trustDomain: "cluster.local", namespace: ns, serviceAccount: sa });
const ORDERS = id("demo", "orders");
const PAYMENTS = id("demo", "payments");
const log = pino({ level: "silent" });

describe("HBONE", () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let orders: Credentials;
  let payments: Credentials;
  const cleanups: Array<() => void | Promise<void>> = [];

  beforeAll(async () => {
    ca = TestCa.create();
    otherCa = TestCa.create("another-root");
    orders = ca.issue(ORDERS);
    payments = ca.issue(PAYMENTS);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** An app server (echo with a prefix, half-close aware) and an HBONE server in front of it, presenting `identity`. */
  async function destination(
    opts: {
      identity?: Credentials;
      authorize?: (req: { sourceAddress?: string }) => Authorization;
      upstreamPort?: number;
      refuseDestination?: (d: { port: number }) => string | undefined;
    } = {},
  ) {
    const app = net.createServer({ allowHalfOpen: true }, (s) => {
      let got = "";
      s.on("data", (d) => (got += d));
      s.on("end", () => s.end(`echo:${got}`));
    });
    await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
    const appPort = (app.address() as net.AddressInfo).port;
    const events: StreamEvent[] = [];
    const authorizeCalls: unknown[] = [];
    const hbone = new HboneServer({
      trustBundlePem: ca.rootPem,
      authorize: (req) => {
        authorizeCalls.push(req);
        return opts.authorize ? opts.authorize(req) : { allow: true };
      },
      ...(opts.refuseDestination ? { refuseDestination: opts.refuseDestination } : {}),
      connectUpstream: (dst) =>
        new Promise((resolve, reject) => {
          const s = net.connect({ host: "127.0.0.1", port: opts.upstreamPort ?? dst.port, allowHalfOpen: true });
          s.once("connect", () => resolve(s)).once("error", reject);
        }),
      onStream: (e) => events.push(e),
      log,
    });
    let identity = opts.identity ?? payments;
    // Half-open like the agent's in-pod listeners. Which HBONE server new connections go to: a restart hands
    // the listener over to the next agent's.
    let serving = hbone;
    const listener = net.createServer({ allowHalfOpen: true }, (socket) => serving.acceptConnection(socket, identity));
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    const port = (listener.address() as net.AddressInfo).port;
    cleanups.push(() => {
      hbone.close();
      listener.close();
      app.close();
    });
    return { port, appPort, events, authorizeCalls, hbone, setIdentity: (c: Credentials) => (identity = c), takeOver: (next: HboneServer) => (serving = next) };
  }

  function pool(opts: { maxStreamsPerConnection?: number; idleTimeoutMs?: number; credentials?: Credentials } = {}) {
    const p = new HboneConnectionPool({ getClientCredentials: () => opts.credentials ?? orders, trustBundlePem: ca.rootPem, ...opts });
    cleanups.push(() => p.close());
    return p;
  }

  const roundTrip = async (stream: NodeJS.ReadWriteStream & { end(d?: string): void }, payload: string) => {
    let reply = "";
    stream.on("data", (d: Buffer) => (reply += d));
    const ended = new Promise((r) => stream.on("end", r));
    stream.end(payload);
    await ended;
    return reply;
  };

  it("tunnels bytes both ways with half-close, and the server sees the client's identity", async () => {
    const dst = await destination();
    const p = pool();
    const stream = await p.openStream({
      source: ORDERS,
      destination: { ip: "10.244.2.2", port: dst.appPort },
      dial: { host: "127.0.0.1", port: dst.port },
      expectedIdentity: PAYMENTS,
    });
    // The app only answers after the client's half-close arrives: this proves END_STREAM -> FIN.
    expect(await roundTrip(stream, "marker-1234")).toBe("echo:marker-1234");
    // The client's address is the connection's own peer address.
    expect(dst.authorizeCalls).toEqual([{ source: ORDERS, destination: { ip: "10.244.2.2", port: dst.appPort }, sourceAddress: "127.0.0.1" }]);
    await expect.poll(() => dst.events.find((e) => e.phase === "close")).toMatchObject({ source: ORDERS, status: 200, bytesReceived: 11, bytesSent: 16 });
  });

  it("carries many streams on one pooled connection, opens another past the stream limit, and closes idle ones", async () => {
    const dst = await destination();
    const p = pool({ maxStreamsPerConnection: 5, idleTimeoutMs: 200 });
    const open = () =>
      p.openStream({
        source: ORDERS,
        destination: { ip: "10.244.2.2", port: dst.appPort },
        dial: { host: "127.0.0.1", port: dst.port },
        expectedIdentity: PAYMENTS,
      });
    const first = await Promise.all(Array.from({ length: 5 }, open));
    expect(p.stats()).toEqual({ connections: 1, streams: 5 });
    expect(dst.hbone.connectionCount).toBe(1);
    const sixth = await open();
    expect(p.stats().connections).toBe(2);
    await Promise.all([...first, sixth].map((s, i) => roundTrip(s as never, `s${i}`)));
    await expect.poll(() => p.stats().connections, { timeout: 3000 }).toBe(0);
  });

  it("spreads a burst of first streams over connections without passing the stream limit", async () => {
    // All 300 opens start before the first connection is up: each must take its own slot, so exactly 10
    // connections of 30 streams carry them (a racy pool once stacked a whole burst on one connection).
    const dst = await destination();
    const p = pool({ maxStreamsPerConnection: 30 });
    const streams = await Promise.all(
      Array.from({ length: 300 }, () =>
        p.openStream({
          source: ORDERS,
          destination: { ip: "10.244.2.2", port: dst.appPort },
          dial: { host: "127.0.0.1", port: dst.port },
          expectedIdentity: PAYMENTS,
        }),
      ),
    );
    expect(p.stats()).toEqual({ connections: 10, streams: 300 });
    expect(dst.hbone.connectionCount).toBe(10);
    const replies = await Promise.all(streams.map((s, i) => roundTrip(s as never, `b${i}`)));
    expect(replies.filter((r, i) => r === `echo:b${i}`)).toHaveLength(300);
  });

  it("moves a stream that crosses a draining agent's GOAWAY to the next agent, and leaves the old one", async () => {
    // An agent being replaced drains while the listener already hands new connections to its successor. Its
    // GOAWAY and a stream the peer sends at that moment cross on the wire: that stream must be sent again on a
    // connection to the new agent, a stream in flight on the old one must finish, and the client must close
    // the old connection by itself so the old agent can exit before its deadline.
    const dst = await destination();
    const successor = await destination();
    const p = pool();
    const open = () =>
      p.openStream({
        source: ORDERS,
        destination: { ip: "10.244.2.2", port: dst.appPort },
        dial: { host: "127.0.0.1", port: dst.port },
        expectedIdentity: PAYMENTS,
      });
    expect(await roundTrip((await open()) as never, "before")).toBe("echo:before");
    const inFlight = await open();
    expect(dst.hbone.sessionCount).toBe(1);
    dst.takeOver(successor.hbone);
    dst.hbone.drain();
    const crossing = await open();
    expect(await roundTrip(crossing as never, "crossing")).toBe("echo:crossing");
    expect(successor.hbone.sessionCount).toBe(1);
    expect(await roundTrip(inFlight as never, "in-flight")).toBe("echo:in-flight");
    // The client left the old connection (only the successor's is pooled); the old agent closes what is left.
    expect(p.stats().connections).toBe(1);
    dst.hbone.closeSessions();
    await expect.poll(() => dst.hbone.connectionCount, { timeout: 3000 }).toBe(0);
  });

  it("forgets a client connection once the client is gone (the listener accepts half-open sockets)", async () => {
    const dst = await destination();
    const sockets: net.Socket[] = [];
    const p = new HboneConnectionPool({
      getClientCredentials: () => orders,
      trustBundlePem: ca.rootPem,
      connect: (host, port) => new Promise((resolve) => sockets.push(net.connect({ host, port }, () => resolve(sockets.at(-1)!)))),
    });
    cleanups.push(() => p.close());
    expect(
      await roundTrip(
        (await p.openStream({
          source: ORDERS,
          destination: { ip: "10.244.2.2", port: dst.appPort },
          dial: { host: "127.0.0.1", port: dst.port },
          expectedIdentity: PAYMENTS,
        })) as never,
        "x",
      ),
    ).toBe("echo:x");
    expect([dst.hbone.sessionCount, dst.hbone.connectionCount]).toEqual([1, 1]);
    // The peer agent's process ends: its kernel closes the socket (a FIN, no TLS close_notify).
    sockets[0]!.destroy();
    await expect.poll(() => [dst.hbone.sessionCount, dst.hbone.connectionCount], { timeout: 3000 }).toEqual([0, 0]);
  });

  it("refuses a server whose identity is not the expected one, before any stream", async () => {
    const dst = await destination({ identity: orders });
    const p = pool();
    await expect(
      p.openStream({
        source: ORDERS,
        destination: { ip: "10.244.2.2", port: dst.appPort },
        dial: { host: "127.0.0.1", port: dst.port },
        expectedIdentity: PAYMENTS,
      }),
    ).rejects.toMatchObject({
      code: "AMBIT_E_HBONE_IDENTITY",
      message: expect.stringContaining("is spiffe://cluster.local/ns/demo/sa/orders, expected spiffe://cluster.local/ns/demo/sa/payments"),
    });
    expect(dst.authorizeCalls).toEqual([]);
  });

  it("answers 401 when policy denies and 503 when the upstream is unreachable", async () => {
    const denied = await destination({ authorize: () => ({ allow: false, reason: "no ALLOW policy matches" }) });
    const p = pool();
    const req = (port: number) => ({
      source: ORDERS,
      destination: { ip: "10.244.2.2", port: 1 },
      dial: { host: "127.0.0.1", port },
      expectedIdentity: PAYMENTS,
    });
    await expect(p.openStream(req(denied.port))).rejects.toMatchObject({
      code: "AMBIT_E_HBONE_REJECTED",
      status: 401,
      message: expect.stringContaining("no ALLOW policy matches"),
    });
    const closed = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => r(port));
      });
    });
    const unreachable = await destination({ upstreamPort: closed });
    await expect(p.openStream(req(unreachable.port))).rejects.toMatchObject({ status: 503 });
  });

  it("believes no claimed source address but the connection's own: a certificate holder cannot pass an ipBlocks rule by naming another pod", async () => {
    // The destination allows only 10.244.1.5, as an ALLOW with ipBlocks would. A client with a valid mesh
    // certificate connecting from 127.0.0.1 claims that address in a forwarded header: refused with 400, counted,
    // and policy never sees the claim (this stream was answered 200 when claims were believed).
    const dst = await destination({ authorize: (req) => (req.sourceAddress === "10.244.1.5" ? { allow: true } : { allow: false, reason: "not 10.244.1.5" }) });
    const p = pool();
    const req = {
      source: ORDERS,
      destination: { ip: "10.244.2.2", port: dst.appPort },
      dial: { host: "127.0.0.1", port: dst.port },
      expectedIdentity: PAYMENTS,
    };
    await expect(p.openStream({ ...req, forwardedFor: "10.244.1.5" })).rejects.toMatchObject({
      code: "AMBIT_E_HBONE_REJECTED",
      status: 400,
      message: expect.stringContaining("claims source address 10.244.1.5 but connects from 127.0.0.1"),
    });
    expect(dst.authorizeCalls).toEqual([]);
    await expect.poll(() => dst.events.find((e) => e.status === 400)).toMatchObject({ refused: "source_address", sourceAddress: "127.0.0.1" });
    // Claiming its own address is fine; policy then decides on that address (and denies it here).
    await expect(p.openStream({ ...req, forwardedFor: "127.0.0.1" })).rejects.toMatchObject({ status: 401 });
    expect(dst.authorizeCalls).toEqual([{ source: ORDERS, destination: req.destination, sourceAddress: "127.0.0.1" }]);
  });

  it("refuses with 400, before policy, a destination the server must never connect to", async () => {
    const dst = await destination({ refuseDestination: (d) => (d.port === 15006 ? "port 15006 is the agent's own" : undefined) });
    const p = pool();
    await expect(
      p.openStream({ source: ORDERS, destination: { ip: "10.244.2.2", port: 15006 }, dial: { host: "127.0.0.1", port: dst.port }, expectedIdentity: PAYMENTS }),
    ).rejects.toMatchObject({ status: 400, message: expect.stringContaining("agent's own") });
    expect(dst.authorizeCalls).toEqual([]);
    expect(dst.events.at(-1)).toMatchObject({ refused: "agent_port", status: 400 });
  });

  it("answers 400 to a non-CONNECT request and to a bad authority", async () => {
    const dst = await destination();
    const secured = tls.connect({
      host: "127.0.0.1",
      port: dst.port,
      ca: ca.rootPem,
      cert: orders.certChainPem,
      key: orders.keyPem,
      ALPNProtocols: ["h2"],
      checkServerIdentity: () => undefined,
    });
    const session = http2.connect(`https://127.0.0.1:${dst.port}`, { createConnection: () => secured });
    cleanups.push(() => void session.destroy());
    const status = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<number>((resolve) => {
        const s = session.request(headers);
        s.on("response", (h) => resolve(Number(h[":status"])));
        s.on("error", () => resolve(-1));
        s.end();
      });
    expect(await status({ ":method": "GET", ":path": "/" })).toBe(400);
    expect(await status({ ":method": "CONNECT", ":authority": "payments.demo:80" })).toBe(400);
  });

  it("lets no one in without a certificate of the trust bundle, and survives garbage", async () => {
    const dst = await destination();
    const noCert = new HboneConnectionPool({ getClientCredentials: () => ({ certChainPem: "", keyPem: "" }), trustBundlePem: ca.rootPem });
    cleanups.push(() => noCert.close());
    await expect(
      noCert.openStream({
        source: ORDERS,
        destination: { ip: "10.244.2.2", port: dst.appPort },
        dial: { host: "127.0.0.1", port: dst.port },
        expectedIdentity: PAYMENTS,
      }),
    ).rejects.toMatchObject({ code: "AMBIT_E_HBONE_CONNECT" });
    const foreign = otherCa.issue(ORDERS);
    const wrongCa = new HboneConnectionPool({ getClientCredentials: () => foreign, trustBundlePem: ca.rootPem });
    cleanups.push(() => wrongCa.close());
    await expect(
      wrongCa.openStream({
        source: ORDERS,
        destination: { ip: "10.244.2.2", port: dst.appPort },
        dial: { host: "127.0.0.1", port: dst.port },
        expectedIdentity: PAYMENTS,
      }),
    ).rejects.toMatchObject({ code: "AMBIT_E_HBONE_CONNECT" });
    for (const garbage of ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256))]) {
      await new Promise<void>((resolve) => {
        const s = net.connect(dst.port, "127.0.0.1", () => s.end(garbage));
        s.on("close", () => resolve()).on("error", () => resolve());
        s.resume();
      });
    }
    expect(dst.authorizeCalls).toEqual([]);
    // Still serving good clients.
    const stream = await pool().openStream({
      source: ORDERS,
      destination: { ip: "10.244.2.2", port: dst.appPort },
      dial: { host: "127.0.0.1", port: dst.port },
      expectedIdentity: PAYMENTS,
    });
    expect(await roundTrip(stream, "after-garbage")).toBe("echo:after-garbage");
  });

  it("rotates the server certificate for new connections while live tunnels continue", async () => {
    const dst = await destination();
    const p = pool({ idleTimeoutMs: 60_000 });
    const req = {
      source: ORDERS,
      destination: { ip: "10.244.2.2", port: dst.appPort },
      dial: { host: "127.0.0.1", port: dst.port },
      expectedIdentity: PAYMENTS,
    };
    /** The serial number of the certificate the server presented on the stream's connection. */
    const servedSerial = (stream: unknown) => ((stream as http2.ClientHttp2Stream).session!.socket as tls.TLSSocket).getPeerX509Certificate()!.serialNumber;
    const live = await p.openStream(req);
    const original = new X509Certificate(payments.certChainPem).serialNumber;
    // Read once per connection (Node answers it only once for a socket that HTTP/2 has taken over).
    expect(servedSerial(live)).toBe(original);
    const renewed = ca.issue(PAYMENTS);
    dst.setIdentity(renewed);
    const fresh = new HboneConnectionPool({ getClientCredentials: () => orders, trustBundlePem: ca.rootPem });
    cleanups.push(() => fresh.close());
    const second = await fresh.openStream(req);
    // The new connection got the renewed certificate; the live one kept the one it was set up with (above).
    const renewedSerial = servedSerial(second);
    expect(renewedSerial).toBe(new X509Certificate(renewed.certChainPem).serialNumber);
    expect(renewedSerial).not.toBe(original);
    expect(await roundTrip(second, "new")).toBe("echo:new");
    expect(await roundTrip(live, "old")).toBe("echo:old");
  });

  it("tracks each connection on both sides: identities, TLS, streams open and total, bytes summed over its streams", async () => {
    const dst = await destination();
    const p = pool();
    const req = {
      source: ORDERS,
      destination: { ip: "10.244.2.2", port: dst.appPort },
      dial: { host: "127.0.0.1", port: dst.port },
      expectedIdentity: PAYMENTS,
    };
    const first = await p.openStream(req);
    // The agent hands the pool the relay that carries each stream; its live counts are the stream's bytes.
    const counts = { aToB: 0, bToA: 0 };
    p.countBytes(first, counts);
    const second = await p.openStream(req);
    counts.aToB = 7;
    counts.bToA = 3;
    const [out] = p.connections();
    expect(out).toMatchObject({
      direction: "outbound",
      localIdentity: "spiffe://cluster.local/ns/demo/sa/orders",
      peerIdentity: "spiffe://cluster.local/ns/demo/sa/payments",
      peerAddress: `127.0.0.1:${dst.port}`,
      tlsVersion: "TLSv1.3",
      streamsOpen: 2,
      streamsTotal: 2,
      bytesSent: 7,
      bytesReceived: 3,
    });
    expect(out!.cipher).toMatch(/^TLS_/);
    expect(out!.streams).toContainEqual(
      expect.objectContaining({
        sourceIdentity: "spiffe://cluster.local/ns/demo/sa/orders",
        destinationIdentity: "spiffe://cluster.local/ns/demo/sa/payments",
        destinationAddress: `10.244.2.2:${dst.appPort}`,
        bytesSent: 7,
      }),
    );
    // The server's side of the same connection: its relay counts what came out of the tunnel (11 bytes asked).
    expect(await roundTrip(first, "marker-1234")).toBe("echo:marker-1234");
    await expect.poll(() => dst.hbone.connections()[0]?.bytesReceived).toBe(11);
    expect(dst.hbone.connections()[0]).toMatchObject({
      direction: "inbound",
      localIdentity: "spiffe://cluster.local/ns/demo/sa/payments",
      peerIdentity: "spiffe://cluster.local/ns/demo/sa/orders",
      tlsVersion: "TLSv1.3",
      streamsOpen: 1,
      streamsTotal: 2,
      bytesSent: 16,
    });
    // A closed stream's bytes stay in the connection's totals; only open streams are listed.
    await expect.poll(() => p.connections()[0]?.streamsOpen).toBe(1);
    expect(p.connections()[0]).toMatchObject({ streamsTotal: 2, bytesSent: 7, bytesReceived: 3 });
    expect(p.connections(false)[0]!.streams).toBeUndefined();
    expect(await roundTrip(second, "x")).toBe("echo:x");
  });
});
