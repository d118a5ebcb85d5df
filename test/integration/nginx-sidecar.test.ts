// The nginx-sidecar bench baseline on loopback: app <- server nginx (mTLS) <- client nginx <- request; a foreign client certificate, a foreign server CA and a wrong server name are refused.
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  type NginxInstallation,
  type NginxSidecar,
  type NginxSidecarConf,
  type SidecarCertFiles,
  findNginx,
  freePort,
  startNginxSidecar,
  writeNginxSidecarCerts,
} from "../../bench/tools/nginx-sidecar.ts";
import { describeTier } from "../support/tiers.ts";

let nginx: NginxInstallation | undefined;
let missing = "";
try {
  nginx = findNginx();
} catch (err) {
  missing = (err as Error).message;
}

describeTier(nginx !== undefined, missing)("nginx sidecar (bench baseline) on loopback", () => {
  const dirs: string[] = [];
  const sidecars: NginxSidecar[] = [];
  let app: http.Server;
  const seen = { connections: 0, requests: 0 };
  let appPort: number;
  let serverPort: number;
  let mesh: SidecarCertFiles;
  let foreign: SidecarCertFiles;
  let root: string;

  /** A sidecar under `root/<name>`, stopped by afterAll even if the test fails. */
  async function start(name: string, conf: Omit<NginxSidecarConf, "prefix">): Promise<{ port: number; sidecar: NginxSidecar }> {
    const sidecar = await startNginxSidecar({ ...conf, prefix: path.join(root, name) }, { nginx: nginx!, timeoutMs: 10_000 });
    sidecars.push(sidecar);
    return { port: Number(conf.listen.split(":").at(-1)), sidecar };
  }

  /** A client-role sidecar to the server sidecar on a port of its own. */
  const client = async (name: string, certs: { certFile: string; keyFile: string; caFile: string; expectedPeerSan?: string }) =>
    start(name, {
      role: "client",
      listen: `127.0.0.1:${await freePort()}`,
      upstream: `127.0.0.1:${serverPort}`,
      expectedPeerSan: mesh.server.dnsName,
      errorLogLevel: "info",
      ...certs,
    });

  /** POSTs `body` through `port`; the app echoes it. Resolves with status and body, or rejects (connection closed, reset, 5 s timeout). */
  const post = (port: number, body: Buffer) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port, method: "POST", path: "/echo", agent: false, timeout: 5000, headers: { "content-length": body.length } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", reject);
      req.end(body);
    });

  /** The sidecar's error log once it holds `text` (nginx writes it right after the event; bounded wait). */
  async function logged(sidecar: NginxSidecar, text: string): Promise<string> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const log = await fs.readFile(sidecar.errorLog, "utf8");
      if (log.includes(text) || Date.now() > deadline) return log;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-nginx-sidecar-test-"));
    dirs.push(root);
    mesh = await writeNginxSidecarCerts(path.join(root, "mesh-certs"), { caName: "mesh" });
    foreign = await writeNginxSidecarCerts(path.join(root, "foreign-certs"), { caName: "foreign" });
    app = http.createServer((req, res) => {
      seen.requests++;
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
        res.end(body);
      });
    });
    app.on("connection", () => seen.connections++);
    await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
    appPort = (app.address() as { port: number }).port;
    serverPort = await freePort();
    await start("server", {
      role: "server",
      listen: `127.0.0.1:${serverPort}`,
      upstream: `127.0.0.1:${appPort}`,
      certFile: mesh.server.certFile,
      keyFile: mesh.server.keyFile,
      caFile: mesh.caFile,
      // Refused client certificates are logged at info.
      errorLogLevel: "info",
    });
  });

  afterAll(async () => {
    for (const s of sidecars.splice(0)) await s.stop();
    await new Promise((r) => (app ? app.close(r) : r(undefined)));
    for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
  });

  it("carries a request and its 1 KiB body both ways through client nginx -> mTLS -> server nginx -> app, with one master and one worker each", async () => {
    const { port, sidecar } = await client("client", { certFile: mesh.client.certFile, keyFile: mesh.client.keyFile, caFile: mesh.caFile });
    const body = randomBytes(1024);
    const before = seen.requests;
    const res = await post(port, body);
    expect(res.status).toBe(200);
    expect(res.body.equals(body)).toBe(true);
    expect(seen.requests).toBe(before + 1);
    expect(await sidecar.workerPids()).toHaveLength(1);
    expect(sidecar.pid).toBeGreaterThan(0);
  });

  it("the server nginx refuses a client certificate from another CA: the connection closes and the app sees no connection at all", async () => {
    // Its own certificate is foreign; it trusts the mesh CA, so it does accept the server.
    const { port } = await client("client-foreign-cert", { certFile: foreign.client.certFile, keyFile: foreign.client.keyFile, caFile: mesh.caFile });
    const before = { ...seen };
    await expect(post(port, randomBytes(1024))).rejects.toThrow();
    const server = sidecars[0]!;
    expect(await logged(server, "client SSL certificate verify error")).toContain("client SSL certificate verify error");
    expect(seen).toEqual(before);
  });

  it("a client nginx that trusts another CA refuses the server's certificate: the app sees no request", async () => {
    const { port, sidecar } = await client("client-foreign-ca", { certFile: mesh.client.certFile, keyFile: mesh.client.keyFile, caFile: foreign.caFile });
    const before = seen.requests;
    await expect(post(port, randomBytes(1024))).rejects.toThrow();
    expect(await logged(sidecar, "upstream SSL certificate verify error")).toContain("upstream SSL certificate verify error");
    // The server side accepted this client's (mesh) certificate and may have opened its app connection; no request came through it.
    expect(seen.requests).toBe(before);
  });

  it("a client nginx expecting another server name refuses the server's certificate (the DNS SAN is the only name nginx checks)", async () => {
    const { port, sidecar } = await client("client-other-name", {
      certFile: mesh.client.certFile,
      keyFile: mesh.client.keyFile,
      caFile: mesh.caFile,
      expectedPeerSan: mesh.client.dnsName,
    });
    const before = seen.requests;
    await expect(post(port, randomBytes(1024))).rejects.toThrow();
    expect(await logged(sidecar, "upstream SSL certificate does not match")).toContain(`upstream SSL certificate does not match "${mesh.client.dnsName}"`);
    expect(seen.requests).toBe(before);
  });

  it("stop() ends the master and its worker by PID", async () => {
    const { sidecar } = await client("client-stopped", { certFile: mesh.client.certFile, keyFile: mesh.client.keyFile, caFile: mesh.caFile });
    const pids = [sidecar.pid, ...(await sidecar.workerPids())];
    await sidecar.stop();
    const alive = await Promise.all(
      pids.map((p) =>
        fs.access(`/proc/${p}`).then(
          () =>
            fs.readFile(`/proc/${p}/status`, "utf8").then(
              (s) => !/^State:\s+Z/m.test(s),
              () => false,
            ),
          () => false,
        ),
      ),
    );
    expect(alive).toEqual([false, false]);
  });
});
