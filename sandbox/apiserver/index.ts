// Public surface of the sandbox API server: start it, get its URL, CA and an admin kubeconfig.
import fs from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { stringify } from "yaml";
import { ServiceAccountTokenSigner } from "./tokens.ts";
import { loadOrCreateServingPki } from "./pki.ts";
import { ApiCore, listen } from "./server.ts";
import type { PodStreams } from "./streams.ts";

export type { LogOptions, PodRef, PodStreams, ProcessOptions, ProcessResult, ProcessSession, TerminalSize } from "./streams.ts";
export { ApiError } from "./types.ts";

export interface ApiServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Also serve the API on this unix socket; node-netns forwarders connect to it. */
  unixSocketPath?: string;
  /** CA, serving certificate and the service-account signing key live here (keys mode 0600). */
  pkiDir: string;
  serviceCidr: string;
  clusterDomain?: string;
  adminToken?: string;
  /** IPs and DNS names added to the serving certificate. */
  extraSans?: string[];
  /** Events kept for watch resumption; older resourceVersions answer 410 Gone. */
  watchHistorySize?: number;
  bookmarkIntervalMs?: number;
  /** Caps the lifetime of issued service-account tokens (kube-apiserver's --service-account-max-token-expiration). */
  maxTokenExpirationSeconds?: number;
  /** How long an Event is kept after its last write (kube-apiserver's --event-ttl); 3600 by default. */
  eventTtlSeconds?: number;
  /** Events kept at most; the least recently written go first. 10,000 by default. */
  maxEvents?: number;
  logger?: Logger;
}

export interface ApiServer {
  url: string;
  caPem: string;
  adminToken: string;
  kubeconfig(): string;
  writeKubeconfig(file: string): Promise<void>;
  /** Serves pods/log, exec, attach and portforward of `node`'s pods through `streams` (its kubelet); returns the detach. */
  attachNode(node: string, streams: PodStreams): () => void;
  /** Test aid: forget retained watch history, so resuming from an old resourceVersion answers 410 Gone. */
  compactHistory(): void;
  /** Test aid: close every open watch connection (clients then re-watch from their last resourceVersion). */
  dropWatches(): void;
  /** Test aid: new watch requests wait until the returned function is called. */
  holdWatches(): () => void;
  close(): Promise<void>;
}

async function loadSigner(pkiDir: string): Promise<ServiceAccountTokenSigner> {
  const file = path.join(pkiDir, "sa.key");
  try {
    return ServiceAccountTokenSigner.fromPrivateKeyPem(await fs.readFile(file, "utf8"));
  } catch {
    const signer = ServiceAccountTokenSigner.generate();
    await fs.writeFile(file, signer.privateKeyPem, { mode: 0o600 });
    return signer;
  }
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const domain = opts.clusterDomain ?? "cluster.local";
  const firstServiceIp = opts.serviceCidr.replace(/\.0\/\d+$/, ".1").replace(/\/\d+$/, "");
  const sans = [
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    `kubernetes.default.svc.${domain}`,
    firstServiceIp,
    ...(opts.extraSans ?? []),
  ];
  await fs.mkdir(opts.pkiDir, { recursive: true, mode: 0o700 });
  const pki = await loadOrCreateServingPki(opts.pkiDir, sans);
  const signer = await loadSigner(opts.pkiDir);
  const adminToken = opts.adminToken ?? randomBytes(24).toString("base64url");
  const core = new ApiCore({
    serviceCidr: opts.serviceCidr,
    adminToken,
    signer,
    watchHistorySize: opts.watchHistorySize ?? 5000,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 15_000,
    maxTokenExpirationSeconds: opts.maxTokenExpirationSeconds,
    eventTtlMs: opts.eventTtlSeconds === undefined ? undefined : opts.eventTtlSeconds * 1000,
    maxEvents: opts.maxEvents,
    logger: opts.logger,
  });
  const listeners = await listen(core, pki, opts.host, opts.port, opts.unixSocketPath);
  const kubeconfig = () =>
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "ambit-dev", cluster: { server: listeners.url, "certificate-authority-data": Buffer.from(pki.caPem).toString("base64") } }],
      users: [{ name: "ambit-dev-admin", user: { token: adminToken } }],
      contexts: [{ name: "ambit-dev", context: { cluster: "ambit-dev", user: "ambit-dev-admin", namespace: "default" } }],
      "current-context": "ambit-dev",
      preferences: {},
    });
  return {
    url: listeners.url,
    caPem: pki.caPem,
    adminToken,
    kubeconfig,
    writeKubeconfig: async (file) => {
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, kubeconfig(), { mode: 0o600 });
    },
    attachNode: (node, streams) => core.streaming.attachNode(node, streams),
    compactHistory: () => core.store.compact(),
    dropWatches: () => core.dropWatches(),
    holdWatches: () => core.holdWatches(),
    close: () => listeners.close(),
  };
}
