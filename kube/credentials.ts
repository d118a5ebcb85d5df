// In-cluster credentials that follow projected token rotation: the token file is re-read whenever the kubelet replaces it.
import fs from "node:fs";
import type https from "node:https";
import net from "node:net";
import type { KubeAccess } from "./client.ts";

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A file read again only when it changed (inode, mtime or size): one stat per use, as a projected volume updates it. */
class WatchedFile {
  readonly path: string;
  #content: Buffer | undefined;
  #seen = "";

  constructor(path: string) {
    this.path = path;
  }

  async read(): Promise<Buffer> {
    const stat = await fs.promises.stat(this.path);
    const seen = `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
    if (seen !== this.#seen || !this.#content) {
      this.#content = await fs.promises.readFile(this.path);
      this.#seen = seen;
    }
    return this.#content;
  }
}

/**
 * The pod's in-cluster configuration, as client-node's KubeConfig.loadFromCluster builds it (KUBERNETES_SERVICE_HOST
 * and _PORT, the service account's CA and token), without client-node. client-node's token-file reader keeps a
 * token for 60 s whatever the file holds; this one stats the file on every request (one syscall) and reads it again
 * as soon as it changed, so a rotated token is used at once and an expired one never outlives its replacement.
 */
export class InClusterConfig implements KubeAccess {
  readonly server: string;
  /** The service account's namespace, when the pod has the file. */
  readonly namespace: string | undefined;
  readonly #ca: WatchedFile;
  readonly #token: WatchedFile;

  constructor(pathPrefix = "", env: NodeJS.ProcessEnv = process.env) {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT;
    const scheme = port === "80" || port === "8080" || port === "8001" ? "http" : "https";
    this.server = `${scheme}://${host && net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    this.#ca = new WatchedFile(`${pathPrefix}${SERVICE_ACCOUNT_DIR}/ca.crt`);
    this.#token = new WatchedFile(`${pathPrefix}${SERVICE_ACCOUNT_DIR}/token`);
    try {
      this.namespace = fs.readFileSync(`${pathPrefix}${SERVICE_ACCOUNT_DIR}/namespace`, "utf8");
    } catch {
      this.namespace = undefined;
    }
  }

  getCurrentCluster(): { server: string } {
    return { server: this.server };
  }

  async applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    const [ca, token] = await Promise.all([this.#ca.read(), this.#token.read()]);
    opts.ca = ca;
    opts.headers = { ...opts.headers, Authorization: `Bearer ${token.toString("utf8").trim()}` };
  }
}

/** The pod's in-cluster config (service account, CA, API server address), with its token re-read on rotation. */
export const inClusterConfig = (pathPrefix = ""): InClusterConfig => new InClusterConfig(pathPrefix);
