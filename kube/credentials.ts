// In-cluster credentials that follow projected token rotation: the token file is re-read whenever the kubelet replaces it.
import fs from "node:fs";
import { KubeConfig, type User } from "@kubernetes/client-node";

/** What KubeConfig.addAuthenticator takes (client-node does not export the interface from its entry point). */
type Authenticator = Parameters<KubeConfig["addAuthenticator"]>[0];

const PROVIDER = "ambit-rotating-token-file";

/**
 * client-node's own token-file reader keeps a token for 60 s whatever the file holds; this one stats the file on
 * every request (one syscall) and reads it again as soon as it changed, so a rotated token is used at once and an
 * expired one never outlives its replacement.
 */
export class RotatingTokenFile implements Authenticator {
  #token = "";
  #seen = "";

  isAuthProvider(user: User): boolean {
    return user.authProvider?.name === PROVIDER;
  }

  async applyAuthentication(user: User, opts: Parameters<Authenticator["applyAuthentication"]>[1]): Promise<void> {
    const file = String(user.authProvider?.config?.file ?? "");
    const stat = await fs.promises.stat(file);
    const seen = `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
    if (seen !== this.#seen) {
      this.#token = (await fs.promises.readFile(file, "utf8")).trim();
      this.#seen = seen;
    }
    // HTTP requests and WebSocket upgrades (exec, port-forward) both carry their headers as a plain object here.
    const target = opts as { headers?: Record<string, unknown> };
    target.headers ??= {};
    target.headers.Authorization = `Bearer ${this.#token}`;
  }
}

/** The pod's in-cluster config (service account, CA, API server address), with its token re-read on rotation. */
export function inClusterConfig(pathPrefix = ""): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromCluster(pathPrefix);
  const user = kc.getCurrentUser();
  const tokenFile = user?.authProvider?.config?.tokenFile as string | undefined;
  if (user && tokenFile) {
    kc.users = kc.users.map((u) => (u.name === user.name ? { ...u, authProvider: { name: PROVIDER, config: { file: tokenFile } } } : u));
    kc.addAuthenticator(new RotatingTokenFile());
  }
  return kc;
}
