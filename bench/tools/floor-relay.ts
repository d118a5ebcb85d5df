// Benchmark floor: the agent's relay with nothing else of the agent (no capture, policy, metrics or logs), as plain TCP or as minimal HBONE.
import fs from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { HBONE_SETTINGS } from "../../agent/hbone/protocol.ts";
import { releaseUnusedMemory } from "../../agent/admin/index.ts";
import { relay } from "../../agent/relay/index.ts";

/**
 * --kind tcp: accept, dial --to, relay. --kind hbone --role source: accept, open an HTTP/2 CONNECT stream to
 * --to over mutual-TLS sessions of at most 100 streams (the agent's windows and pool size), relay. --kind hbone --role dest: the TLS HTTP/2 server
 * that dials each stream's :authority and relays. --certs names a directory with ca.pem, cert.pem, key.pem.
 */
const arg = (name: string, fallback?: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
};
const kind = arg("kind");
const role = arg("role", "source");
const listenPort = Number(arg("listen"));
const [toHost, toPort] = arg("to", "127.0.0.1:0").split(":") as [string, string];
const certs = (f: string) => fs.readFileSync(`${arg("certs", "")}/${f}`);
const dial = (host: string, port: number) => net.connect({ host, port, allowHalfOpen: true, noDelay: true });
const done = () => {};

if (kind === "tcp") {
  net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => relay(s, dial(toHost, Number(toPort)), done)).listen(listenPort, "127.0.0.1", ready);
} else if (kind === "hbone" && role === "source") {
  const tls = { ca: certs("ca.pem"), cert: certs("cert.pem"), key: certs("key.pem"), checkServerIdentity: () => undefined };
  const target = arg("target");
  // As the agent's pool: at most 100 streams per connection, a new connection when all are full.
  const sessions: Array<{ session: http2.ClientHttp2Session; streams: number }> = [];
  const sessionWithRoom = () => {
    let s = sessions.find((x) => x.streams < 100);
    if (!s) {
      const session = http2.connect(`https://${toHost}:${toPort}`, { ...tls, settings: HBONE_SETTINGS.settings });
      session.once("connect", () => session.setLocalWindowSize(HBONE_SETTINGS.connectionWindow));
      s = { session, streams: 0 };
      sessions.push(s);
    }
    return s;
  };
  net
    .createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      const s = sessionWithRoom();
      s.streams++;
      const stream = s.session.request({ ":method": "CONNECT", ":authority": target }, { endStream: false });
      stream.once("close", () => s.streams--);
      relay(socket, stream, done);
    })
    .listen(listenPort, "127.0.0.1", ready);
} else if (kind === "hbone" && role === "dest") {
  const server = http2.createSecureServer({
    ca: certs("ca.pem"),
    cert: certs("cert.pem"),
    key: certs("key.pem"),
    requestCert: true,
    rejectUnauthorized: true,
    settings: HBONE_SETTINGS.settings,
  });
  server.on("session", (s) => s.once("connect", () => s.setLocalWindowSize(HBONE_SETTINGS.connectionWindow)));
  server.on("stream", (stream, headers) => {
    const [host, port] = String(headers[":authority"]).split(":") as [string, string];
    const upstream = dial(host, Number(port));
    upstream.once("connect", () => {
      stream.respond({ ":status": 200 });
      relay(stream, upstream, done);
    });
    upstream.once("error", () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
  });
  server.listen(listenPort, "127.0.0.1", ready);
} else {
  throw new Error(`unknown --kind ${kind} --role ${role}`);
}

function ready(): void {
  console.log(JSON.stringify({ msg: "listening", kind, role, port: listenPort }));
}
process.on("SIGTERM", () => process.exit(0));
// The bench reads memory after the same collection as the agent's admin POST /memory/gc.
process.on("SIGUSR2", () => {
  releaseUnusedMemory();
  const m = process.memoryUsage();
  console.log(JSON.stringify({ memory: { rssKiB: m.rss / 1024, heapUsedKiB: m.heapUsed / 1024, externalKiB: m.external / 1024 } }));
});
