// HBONE on loopback, in one process: new streams per second over a pooled connection, and throughput of one tunnel.
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { HboneConnectionPool, HboneServer } from "../agent/hbone/index.ts";
import { TestCa } from "../test/support/test-ca.ts";

const STREAMS = Number(process.env.STREAMS ?? 5000);
const MEGABYTES = Number(process.env.MEGABYTES ?? 256);
const CONCURRENCY = 50;

const id = (sa: string) => ({ trustDomain: "cluster.local", namespace: "bench", serviceAccount: sa });
const ca = TestCa.create();
const client = ca.issue(id("client"));
const server = ca.issue(id("server"));

// The "application": answers one byte and closes (stream rate), or swallows everything (throughput).
const app = net.createServer({ allowHalfOpen: true }, (s) => {
  let bytes = 0;
  s.on("data", (d: Buffer) => (bytes += d.length));
  s.on("end", () => s.end(String(bytes)));
});
await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
const appPort = (app.address() as net.AddressInfo).port;
const hbone = new HboneServer({
  trustBundlePem: ca.rootPem,
  authorize: () => ({ allow: true }),
  connectUpstream: (d) =>
    new Promise((resolve, reject) => {
      const s = net.connect({ port: d.port, host: "127.0.0.1", allowHalfOpen: true });
      s.once("connect", () => resolve(s)).once("error", reject);
    }),
  log: pino({ level: "silent" }),
});
const listener = net.createServer((s) => hbone.acceptConnection(s, server));
await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
const port = (listener.address() as net.AddressInfo).port;
const pool = new HboneConnectionPool({ getClientCredentials: () => client, trustBundlePem: ca.rootPem });
const req = { source: id("client"), destination: { ip: "10.0.0.1", port: appPort }, dial: { host: "127.0.0.1", port }, expectedIdentity: id("server") };

async function oneStream(payload: Buffer | string): Promise<string> {
  const stream = await pool.openStream(req);
  return new Promise((resolve, reject) => {
    let reply = "";
    stream.on("data", (d: Buffer) => (reply += d));
    stream.on("end", () => resolve(reply));
    stream.on("error", reject);
    stream.end(payload);
  });
}

await oneStream("warm-up");
let started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < STREAMS) {
      next++;
      await oneStream("x");
    }
  }),
);
const streamsPerSecond = STREAMS / ((performance.now() - started) / 1000);

const chunk = Buffer.alloc(64 * 1024, 7);
started = performance.now();
const stream = await pool.openStream(req);
const reply = new Promise<string>((resolve) => {
  let r = "";
  stream.on("data", (d: Buffer) => (r += d));
  stream.on("end", () => resolve(r));
});
for (let sent = 0; sent < MEGABYTES * 1024 * 1024; sent += chunk.length) {
  if (!stream.write(chunk)) await new Promise((r) => stream.once("drain", r));
}
stream.end();
const received = Number(await reply);
const mbPerSecond = received / 2 ** 20 / ((performance.now() - started) / 1000);

const result = {
  streams: STREAMS,
  concurrency: CONCURRENCY,
  pooledConnections: pool.stats().connections,
  streamsPerSecond: Math.round(streamsPerSecond),
  tunnelMiB: MEGABYTES,
  tunnelMiBPerSecond: Math.round(mbPerSecond),
  rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
};
console.log("| metric | value |\n|---|---|");
for (const [k, v] of Object.entries(result)) console.log(`| ${k} | ${v} |`);
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");
await fs.mkdir(out, { recursive: true });
await fs.writeFile(path.join(out, "hbone-loopback.json"), JSON.stringify(result, null, 2) + "\n");
pool.close();
hbone.close();
listener.close();
app.close();
