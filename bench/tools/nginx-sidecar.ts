// The `nginx-sidecar` baseline: Debian's nginx with its stream module doing mutual TLS, one per pod, as a C proxy to read the mesh's numbers against.
import { spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { type ResultPromise, execa } from "execa";
import { formatSpiffeId } from "../../contract/spiffe.ts";
import { createRootCa, issueLeaf } from "../../pki/index.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { cpuTimes, rssKiB } from "./process-stats.ts";

/**
 * Two nginx processes per connection path, as a sidecar mesh has them: the client pod's nginx takes the app's
 * plaintext connection on loopback and opens mutual TLS (TLS 1.3, its own certificate) to the server pod's nginx,
 * which verifies the client's certificate and relays to its app on loopback. Layer 4 only (`stream {}`): bytes
 * in, bytes out, as the agent's L4 data plane.
 *
 * Identity is weaker than the mesh's. nginx's stream module checks a peer's chain against the CA but cannot read a
 * URI SAN: the server side accepts any certificate the mesh CA signed (no name check exists for client certificates
 * without njs), and the client side, which nginx always makes check a name once `proxy_ssl_verify` is on, checks a
 * DNS SAN (`expectedPeerSan`, through `proxy_ssl_name`). So `writeNginxSidecarCerts` gives each leaf a DNS SAN next
 * to its SPIFFE URI. This is a performance baseline, not an authorization model.
 *
 * Processes: a master and `workerProcesses` (1) workers, `daemon off` so the started PID is the master's. The worker
 * does all the proxying (TLS included; the master only loads the configuration, certificates included, and then
 * sleeps in sigsuspend), so CPU is read from the worker's PID. RSS is the worker's plus the master's: a pod pays
 * for both (`master_process off` would give one process, but nginx documents that mode as meant for its own
 * developers; deployed nginx runs a master). Started as root, the master runs its worker as `nobody` (nginx's
 * default `user`); certificates and keys are read by the master before that, so they stay root's, keys 0600.
 */

/** Where Debian's `libnginx-mod-stream` puts the module. */
export const DEBIAN_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
export const NGINX_APT_PACKAGES = ["nginx", "libnginx-mod-stream"] as const;
const INSTALL_HINT = `apt-get install -y --no-install-recommends ${NGINX_APT_PACKAGES.join(" ")} (scripts/setup.sh does this)`;

export interface NginxInstallation {
  /** Absolute path of the nginx binary. */
  binary: string;
  /** `load_module <path>;` when the stream module is a dynamic module (Debian's), "" when built in. */
  loadModule: string;
  /** e.g. "1.22.1". */
  version: string;
}

/** nginx with the stream module and its TLS, or an error naming the apt packages that provide them. */
export function findNginx(): NginxInstallation {
  const candidates = [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"];
  const binary = candidates.map((d) => path.join(d, "nginx")).find((p) => existsSync(p));
  if (!binary) throw new Error(`nginx is not installed: ${INSTALL_HINT}`);
  // `nginx -V` prints its version and configure arguments on stderr.
  const v = spawnSync(binary, ["-V"], { encoding: "utf8", timeout: 10_000 });
  if (v.status !== 0) throw new Error(`${binary} -V failed (${v.error?.message ?? `exit ${v.status}`}): ${v.stderr}`);
  const build = `${v.stdout}${v.stderr}`;
  const version = /nginx version: nginx\/(\S+)/.exec(build)?.[1] ?? "unknown";
  if (!build.includes("--with-stream_ssl_module")) throw new Error(`${binary} (nginx ${version}) was built without the stream SSL module: ${INSTALL_HINT}`);
  if (/--with-stream(\s|$)/.test(build)) return { binary, loadModule: "", version };
  if (!build.includes("--with-stream=dynamic")) throw new Error(`${binary} (nginx ${version}) was built without the stream module: ${INSTALL_HINT}`);
  const modulesDir = /--modules-path=(\S+)/.exec(build)?.[1];
  const module = [modulesDir && path.join(modulesDir, "ngx_stream_module.so"), DEBIAN_STREAM_MODULE].find((p): p is string => !!p && existsSync(p));
  if (!module) throw new Error(`nginx ${version} is installed but its stream module (ngx_stream_module.so) is not: ${INSTALL_HINT}`);
  return { binary, loadModule: `load_module ${module};`, version };
}

/** One sidecar's configuration: what `renderNginxSidecarConf` writes and `startNginxSidecar` runs. */
export interface NginxSidecarConf {
  /** client: plaintext from the app, mutual TLS to the peer's sidecar. server: mutual TLS from peers, plaintext to the app. */
  role: "client" | "server";
  /** `host:port` or `port`: client, where the app dials (e.g. 127.0.0.1:15001); server, where peers' sidecars dial (e.g. 15008). */
  listen: string;
  /** `host:port`: client, the peer's server sidecar; server, the app (e.g. 127.0.0.1:8080). */
  upstream: string;
  /** More listen/upstream pairs with the same role and certificates (a pod with several ports): one server block each. */
  extra?: Array<{ listen: string; upstream: string }>;
  /** This sidecar's certificate (PEM) and its key: the server's serving certificate, the client's client certificate. */
  certFile: string;
  keyFile: string;
  /** The mesh CA (PEM): peers must chain to it. */
  caFile: string;
  /**
   * client only, required there: the DNS SAN the server's certificate must carry (nginx's `proxy_ssl_name`; with
   * `proxy_ssl_verify on` nginx always checks one, and it cannot check a SPIFFE URI SAN). Not allowed for the server
   * role: nginx's stream module checks no name on a client certificate.
   */
  expectedPeerSan?: string;
  /** Default 1. */
  workerProcesses?: number;
  /** Per worker; each proxied connection takes two descriptors. Default 4,096. */
  workerConnections?: number;
  /** `worker_rlimit_nofile`, when given: the worker sets it after dropping root, so it must be within the hard limit nginx starts with. */
  rlimitNofile?: number;
  /** nginx's prefix (`-p`): every file nginx writes goes under it (the configuration file too, `nginx.conf`). */
  prefix: string;
  /** Default `<prefix>/nginx.pid`; must be under `prefix`. */
  pidFile?: string;
  /** Default `<prefix>/error.log`; must be under `prefix`. */
  errorLog?: string;
  /** Default "notice" (start and exit lines; failed upstream handshakes are "error"s, refused client certificates "info"). */
  errorLogLevel?: "debug" | "info" | "notice" | "warn" | "error" | "crit";
  /** `findNginx().loadModule`; "" or absent renders none (a stream module built in). */
  loadModule?: string;
}

/** A path written into nginx's configuration, quoted; only characters nginx reads literally (no `$`: it would be a variable). */
function quoted(what: string, value: string): string {
  if (!/^[A-Za-z0-9._/+@:,=-]+$/.test(value))
    throw new Error(`nginx sidecar: ${what} ${JSON.stringify(value)} must be a path of letters, digits and ._/+@:,=-`);
  return `"${value}"`;
}

function hostPort(what: string, value: string, portOnly: boolean): string {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535 || (!portOnly && !m[1])) {
    throw new Error(`nginx sidecar: ${what} ${JSON.stringify(value)} must be ${portOnly ? "[host:]port" : "host:port"} with a port in 1-65535`);
  }
  return value;
}

function under(prefix: string, what: string, file: string): string {
  const rel = path.relative(prefix, path.resolve(prefix, file));
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) throw new Error(`nginx sidecar: ${what} ${file} must be inside the prefix ${prefix}`);
  return path.resolve(prefix, file);
}

/** Defaults filled in: what the renderer and the runner agree on. */
function resolved(conf: NginxSidecarConf) {
  if (!path.isAbsolute(conf.prefix)) throw new Error(`nginx sidecar: prefix ${conf.prefix} must be an absolute path`);
  const prefix = path.resolve(conf.prefix);
  return {
    prefix,
    confFile: path.join(prefix, "nginx.conf"),
    pidFile: under(prefix, "pidFile", conf.pidFile ?? "nginx.pid"),
    errorLog: under(prefix, "errorLog", conf.errorLog ?? "error.log"),
  };
}

/** The whole nginx.conf for one sidecar: pure, throws on a value that cannot be rendered safely. */
export function renderNginxSidecarConf(conf: NginxSidecarConf): string {
  const { prefix, pidFile, errorLog } = resolved(conf);
  const workers = conf.workerProcesses ?? 1;
  const connections = conf.workerConnections ?? 4096;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`nginx sidecar: workerProcesses ${workers} must be a positive integer`);
  if (!Number.isInteger(connections) || connections < 16) throw new Error(`nginx sidecar: workerConnections ${connections} must be an integer >= 16`);
  if (conf.rlimitNofile !== undefined && (!Number.isInteger(conf.rlimitNofile) || conf.rlimitNofile < 64)) {
    throw new Error(`nginx sidecar: rlimitNofile ${conf.rlimitNofile} must be an integer >= 64`);
  }
  if (conf.loadModule && !/^load_module [^\s;"$]+;$/.test(conf.loadModule))
    throw new Error(`nginx sidecar: loadModule ${JSON.stringify(conf.loadModule)} is not one load_module line`);
  const file = (what: keyof NginxSidecarConf) => quoted(what, String(conf[what]));

  let serverBlock: (listen: string, upstream: string) => string[];
  if (conf.role === "client") {
    if (!conf.expectedPeerSan) {
      throw new Error(
        "nginx sidecar: the client role needs expectedPeerSan, the DNS SAN the server's certificate must carry (nginx checks one whenever it verifies)",
      );
    }
    if (!/^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(conf.expectedPeerSan)) {
      throw new Error(
        `nginx sidecar: expectedPeerSan ${JSON.stringify(conf.expectedPeerSan)} must be a DNS name: nginx's stream module cannot check a URI (SPIFFE) SAN`,
      );
    }
    serverBlock = (listen, upstream) => [
      `listen ${listen};`,
      `proxy_pass ${upstream};`,
      "proxy_ssl on;",
      `proxy_ssl_certificate ${file("certFile")};`,
      `proxy_ssl_certificate_key ${file("keyFile")};`,
      "proxy_ssl_verify on;",
      `proxy_ssl_trusted_certificate ${file("caFile")};`,
      "proxy_ssl_verify_depth 1;",
      `proxy_ssl_name ${conf.expectedPeerSan};`,
      "proxy_ssl_protocols TLSv1.3;",
      "proxy_ssl_session_reuse on;",
    ];
  } else if (conf.role === "server") {
    if (conf.expectedPeerSan !== undefined) {
      throw new Error(
        "nginx sidecar: the server role cannot check a client certificate's names (nginx's stream module has no such check); leave expectedPeerSan out",
      );
    }
    serverBlock = (listen, upstream) => [
      `listen ${listen} ssl;`,
      `proxy_pass ${upstream};`,
      `ssl_certificate ${file("certFile")};`,
      `ssl_certificate_key ${file("keyFile")};`,
      "ssl_protocols TLSv1.3;",
      "ssl_verify_client on;",
      `ssl_client_certificate ${file("caFile")};`,
      "ssl_verify_depth 1;",
    ];
  } else {
    throw new Error(`nginx sidecar: role ${JSON.stringify((conf as { role: unknown }).role)} must be "client" or "server"`);
  }

  return [
    `# Ambit bench: nginx-sidecar, ${conf.role} role (rendered by bench/tools/nginx-sidecar.ts).`,
    ...(conf.loadModule ? [conf.loadModule] : []),
    "daemon off;",
    "master_process on;",
    `worker_processes ${workers};`,
    ...(conf.rlimitNofile === undefined ? [] : [`worker_rlimit_nofile ${conf.rlimitNofile};`]),
    `pid ${quoted("pidFile", pidFile)};`,
    `lock_file ${quoted("lock file", path.join(prefix, "nginx.lock"))};`,
    `error_log ${quoted("errorLog", errorLog)} ${conf.errorLogLevel ?? "notice"};`,
    "",
    "events {",
    `    worker_connections ${connections};`,
    "    multi_accept on;",
    "}",
    "",
    "stream {",
    "    # No access log: one line per connection would be the sidecar's main cost at these rates.",
    "    access_log off;",
    "    proxy_connect_timeout 5s;",
    "    # A client that ends its side still gets the answer (without it nginx closes both ways at the first FIN).",
    "    proxy_half_close on;",
    "    tcp_nodelay on;",
    ...[{ listen: conf.listen, upstream: conf.upstream }, ...(conf.extra ?? [])].flatMap((pair) => [
      "    server {",
      ...serverBlock(hostPort("listen", pair.listen, true), hostPort("upstream", pair.upstream, false)).map((l) => `        ${l}`),
      "    }",
    ]),
    "}",
    "",
  ].join("\n");
}

export interface NginxSidecar {
  /** The master's PID (nsenter execs, so it is also the started process's). */
  pid: number;
  confFile: string;
  errorLog: string;
  /** The master's children: the workers, which do all the proxying; measure CPU here. */
  workerPids(): Promise<number[]>;
  /** SIGTERM to the master (fast shutdown), then SIGKILL to it and its workers by PID if they are still there after 5 s; resolves once they are gone. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Still running: there, and not a zombie waiting for its parent. */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Children of `pid`, from every process's /proc/<pid>/stat (its 4th field, after the command in parentheses). */
export async function childPids(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) out.push(Number(entry));
  }
  return out.sort((a, b) => a - b);
}

/** Whether `pid` holds a listening TCP socket on `port`, in its own network namespace (/proc/<pid>/net is that netns's). */
async function listensOn(pid: number, port: number): Promise<boolean> {
  const inodes = new Set<string>();
  for (const table of ["tcp", "tcp6"]) {
    const text = await fs.readFile(`/proc/${pid}/net/${table}`, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the 10th field.
      if (f.length > 9 && f[3] === "0A" && parseInt(f[1]!.split(":").at(-1)!, 16) === port) inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return false;
  const fds = await fs.readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const link = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    if (inodes.has(/^socket:\[(\d+)\]$/.exec(link)?.[1] ?? "")) return true;
  }
  return false;
}

/**
 * Writes `<prefix>/nginx.conf` and runs nginx in the foreground, in network namespace `netns` when given (a name
 * under /run/netns or a path, entered with nsenter, as the sandbox's kubelet enters pods). Resolves once nginx's
 * master holds the listening socket and its workers are up, within `timeoutMs` (10 s); otherwise stops it and
 * throws with its error log.
 */
export async function startNginxSidecar(
  conf: NginxSidecarConf,
  opts: { netns?: string; timeoutMs?: number; nginx?: NginxInstallation } = {},
): Promise<NginxSidecar> {
  const nginx = opts.nginx ?? findNginx();
  const full: NginxSidecarConf = { ...conf, loadModule: conf.loadModule ?? nginx.loadModule };
  const { prefix, confFile, errorLog } = resolved(full);
  const text = renderNginxSidecarConf(full);
  await fs.mkdir(prefix, { recursive: true, mode: 0o700 });
  await fs.writeFile(confFile, text);
  const port = Number(conf.listen.split(":").at(-1));
  const args = ["-p", `${prefix}/`, "-c", confFile, "-e", errorLog];
  const netnsPath = opts.netns === undefined ? undefined : opts.netns.includes("/") ? opts.netns : `/run/netns/${opts.netns}`;
  const child: ResultPromise = netnsPath
    ? execa("nsenter", [`--net=${netnsPath}`, "--", nginx.binary, ...args], { reject: false, stdin: "ignore" })
    : execa(nginx.binary, args, { reject: false, stdin: "ignore" });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`nginx sidecar: could not start ${nginx.binary}: ${(await child).stderr}`);
  let exited = false;
  void child.then(() => (exited = true));

  const workerPids = () => childPids(pid);
  const stop = async () => {
    const workers = await workerPids();
    try {
      if (!exited) process.kill(pid, "SIGTERM");
    } catch {
      // Gone already.
    }
    const deadline = Date.now() + 5000;
    while (!exited && Date.now() < deadline) await sleep(20);
    for (const p of [pid, ...workers]) {
      if (p === pid ? !exited : alive(p)) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }
    }
    await child;
    const late = Date.now() + 5000;
    while (workers.some(alive) && Date.now() < late) await sleep(20);
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const want = conf.workerProcesses ?? 1;
  for (;;) {
    if (exited) break;
    if ((await listensOn(pid, port)) && (await workerPids()).length >= want) return { pid, confFile, errorLog, workerPids, stop };
    if (Date.now() > deadline) break;
    await sleep(25);
  }
  const timedOut = !exited;
  await stop();
  const log = await fs.readFile(errorLog, "utf8").catch(() => "");
  const { stderr } = await child;
  throw new Error(
    `nginx sidecar (${conf.role}, ${conf.listen}) ${timedOut ? `was not listening within ${opts.timeoutMs ?? 10_000} ms` : "exited at start"}: ${`${stderr}\n${log}`.trim()}`,
  );
}

export interface SidecarLeafFiles {
  certFile: string;
  keyFile: string;
  /** spiffe://<td>/ns/<ns>/sa/<name>, the certificate's URI SAN (nginx does not check it). */
  spiffeId: string;
  /** <name>.<ns>.svc.<td>, its DNS SAN: what a client sidecar checks (`expectedPeerSan`). */
  dnsName: string;
}

export interface SidecarCertFiles {
  caFile: string;
  client: SidecarLeafFiles;
  server: SidecarLeafFiles;
}

/**
 * A fresh P-256 CA and two leaves it signed (P-256, client and server usage, as the mesh CA issues), written under
 * `dir` (created 0700): ca.pem, client.pem, client-key.pem, server.pem, server-key.pem, keys 0600. Each leaf carries
 * the SPIFFE URI SAN spiffe://<trustDomain>/ns/<namespace>/sa/<client|server> and a DNS SAN
 * <client|server>.<namespace>.svc.<trustDomain>. Two calls make two unrelated CAs.
 */
export async function writeNginxSidecarCerts(
  dir: string,
  opts: { trustDomain?: string; namespace?: string; caName?: string; ttlSeconds?: number } = {},
): Promise<SidecarCertFiles> {
  const trustDomain = opts.trustDomain ?? "cluster.local";
  const namespace = opts.namespace ?? "bench";
  const ttlSeconds = opts.ttlSeconds ?? 24 * 3600;
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = createRootCa({ commonName: opts.caName ?? "ambit-bench-nginx-sidecar", ttlSeconds, pathLength: 0 });
  const caFile = path.join(dir, "ca.pem");
  await fs.writeFile(caFile, ca.certPem);
  const leaf = async (name: "client" | "server"): Promise<SidecarLeafFiles> => {
    const spiffeId = formatSpiffeId({ trustDomain, namespace, serviceAccount: name });
    const dnsName = `${name}.${namespace}.svc.${trustDomain}`;
    const issued = issueLeaf(ca, { uris: [spiffeId], dnsNames: [dnsName], usage: "client-and-server", ttlSeconds });
    const certFile = path.join(dir, `${name}.pem`);
    const keyFile = path.join(dir, `${name}-key.pem`);
    await fs.writeFile(certFile, issued.certPem);
    await fs.writeFile(keyFile, issued.keyPem, { mode: 0o600 });
    // The mode above applies only to a file created now.
    await fs.chmod(keyFile, 0o600);
    return { certFile, keyFile, spiffeId, dnsName };
  };
  return { caFile, client: await leaf("client"), server: await leaf("server") };
}

const handedOut = new Set<number>();

/**
 * A TCP port free on 127.0.0.1 right now, below the kernel's ephemeral range (so no outgoing connection takes it
 * before nginx binds it) and not handed out before by this process: for loopback runs and tests.
 */
export async function freePort(): Promise<number> {
  const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
  const from = Math.min(20_000, low - 1000);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if (handedOut.has(port)) continue;
    const server = net.createServer();
    const ok = await new Promise<boolean>((resolve) => server.once("error", () => resolve(false)).listen(port, "127.0.0.1", () => resolve(true)));
    if (!ok) continue;
    await new Promise((r) => server.close(r));
    handedOut.add(port);
    return port;
  }
  throw new Error("no free TCP port found on 127.0.0.1");
}

/**
 * `node bench/tools/nginx-sidecar.ts`: one loopback measurement. App (tools/http-server.ts, 1 KiB) <- server nginx
 * <- client nginx <- tools/http-load.ts at RATE (1,000) req/s keep-alive over 16 connections for SECONDS (10).
 * Prints each nginx's worker and master RSS idle and after the load, the workers' CPU over the load, and p50/p99
 * (direct to the app first, for comparison).
 */
async function measureLoopback(): Promise<void> {
  const RATE = Number(process.env.RATE ?? 1000);
  const SECONDS = Number(process.env.SECONDS ?? 10);
  const NODE = path.join(REPO_ROOT, "node_modules", "node", "bin", "node");
  const TOOLS = path.join(REPO_ROOT, "bench", "tools");
  const nginx = findNginx();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-nginx-sidecar-"));
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const certs = await writeNginxSidecarCerts(path.join(dir, "certs"));
    const [appPort, serverPort, clientPort] = [await freePort(), await freePort(), await freePort()];
    const app = execa(NODE, [path.join(TOOLS, "http-server.ts")], { env: { PORT: String(appPort) }, reject: false });
    stops.push(async () => {
      if (app.exitCode === null) process.kill(app.pid!, "SIGTERM");
      return app;
    });
    let appOut = "";
    app.stdout?.on("data", (d: Buffer) => (appOut += d.toString()));
    const appUp = Date.now() + 10_000;
    while (!appOut.includes('"listening"')) {
      if (app.exitCode !== null || Date.now() > appUp) throw new Error(`the app did not start: ${appOut}`);
      await sleep(50);
    }
    const server = await startNginxSidecar(
      {
        role: "server",
        listen: `127.0.0.1:${serverPort}`,
        upstream: `127.0.0.1:${appPort}`,
        ...certs.server,
        caFile: certs.caFile,
        prefix: path.join(dir, "server"),
      },
      { nginx },
    );
    stops.push(server.stop);
    const client = await startNginxSidecar(
      {
        role: "client",
        listen: `127.0.0.1:${clientPort}`,
        upstream: `127.0.0.1:${serverPort}`,
        ...certs.client,
        caFile: certs.caFile,
        expectedPeerSan: certs.server.dnsName,
        prefix: path.join(dir, "client"),
      },
      { nginx },
    );
    stops.push(client.stop);
    const load = async (port: number, extra: string[]) =>
      JSON.parse(
        (await execa(NODE, [path.join(TOOLS, "http-load.ts"), "--target", `127.0.0.1:${port}`, ...extra], { timeout: 120_000 })).stdout
          .trim()
          .split("\n")
          .at(-1)!,
      ) as Record<string, number>;
    const sidecars = { client, server };
    // RSS counts the pages master and worker share (libssl, libcrypto, nginx itself) in each; PSS splits them, private is the instance's own.
    const mem = async (pid: number) => {
      const rollup = await fs.readFile(`/proc/${pid}/smaps_rollup`, "utf8");
      const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(rollup)?.[1]);
      return { rssKiB: await rssKiB(pid), pssKiB: kib("Pss"), privateKiB: kib("Private_Clean") + kib("Private_Dirty") };
    };
    const memory = async () =>
      Object.fromEntries(
        await Promise.all(
          Object.entries(sidecars).map(async ([name, s]) => [name, { worker: await mem((await s.workerPids())[0]!), master: await mem(s.pid) }]),
        ),
      ) as Record<string, { worker: Awaited<ReturnType<typeof mem>>; master: Awaited<ReturnType<typeof mem>> }>;
    await sleep(1000);
    const idle = await memory();
    const rateArgs = ["--mode", "rate", "--rate", String(RATE), "--seconds", String(SECONDS), "--connections", "16"];
    const direct = await load(appPort, rateArgs);
    const workers = { client: (await client.workerPids())[0]!, server: (await server.workerPids())[0]! };
    const masters = { client: client.pid, server: server.pid };
    const before = await Promise.all([...Object.values(workers), ...Object.values(masters)].map(cpuTimes));
    const t0 = performance.now();
    const through = await load(clientPort, rateArgs);
    const wall = (performance.now() - t0) / 1000;
    const after = await Promise.all([...Object.values(workers), ...Object.values(masters)].map(cpuTimes));
    const loaded = await memory();
    const cpu = (i: number) => {
      const user = after[i]!.user - before[i]!.user;
      const kernel = after[i]!.kernel - before[i]!.kernel;
      return {
        cpuSeconds: Number((user + kernel).toFixed(2)),
        vCpuPer1kRps: Number(((user + kernel) / wall / (through.achievedRate! / 1000)).toFixed(4)),
        kernel: Number(kernel.toFixed(2)),
      };
    };
    const result = {
      date: new Date().toISOString(),
      nginx: nginx.version,
      rate: RATE,
      seconds: SECONDS,
      direct: { p50Ms: direct.p50Ms, p99Ms: direct.p99Ms, achievedRate: direct.achievedRate },
      throughBoth: { p50Ms: through.p50Ms, p99Ms: through.p99Ms, achievedRate: through.achievedRate, errors: through.errors, dropped: through.dropped },
      client: { idle: idle.client, afterLoad: loaded.client, worker: cpu(0), master: cpu(2) },
      server: { idle: idle.server, afterLoad: loaded.server, worker: cpu(1), master: cpu(3) },
    };
    console.log(JSON.stringify(result, null, 2));
    const out = path.join(REPO_ROOT, "bench", "results", "nginx-sidecar-loopback.json");
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, JSON.stringify(result, null, 2) + "\n");
    console.log(`written to ${path.relative(REPO_ROOT, out)}`);
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await measureLoopback();
