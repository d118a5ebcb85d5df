// Minimal typed Kubernetes client (agent, controller, sandbox controllers): JSON requests and watches over node:https.
import type { IncomingMessage } from "node:http";
import https from "node:https";
import { AmbitError } from "../contract/errors.ts";
import { KUBE_ERRORS } from "../contract/error-codes.ts";

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }>;
    deletionTimestamp?: string;
    creationTimestamp?: string;
    [key: string]: unknown;
  };
  // Spec and status shapes differ per kind; controllers narrow them where they read them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  status?: any;
  [key: string]: unknown;
}

/** An API answer other than 2xx; `status` is the HTTP code and `reason` the Kubernetes Status reason. */
export class KubeRequestError extends AmbitError<typeof KUBE_ERRORS.code.request> {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(KUBE_ERRORS.code.request, message);
    this.name = "KubeRequestError";
    this.status = status;
    this.reason = reason;
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeRequestError && err.status === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeRequestError && err.status === 409;

/** Path of a resource collection or object, e.g. pathFor("apps/v1", "deployments", "demo", "orders"). */
export function pathFor(apiVersion: string, plural: string, namespace?: string, name?: string, subresource?: string): string {
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let p = namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

/**
 * Where the API server is and how to authenticate to it: the in-cluster configuration (./credentials.ts), or
 * client-node's KubeConfig for kubeconfig files (./kubeconfig.ts), which has this shape. The agent's bundle holds
 * only the former: client-node's module graph cost its idle process 20 MiB of RSS (31 MiB on its own next to nothing).
 */
export interface KubeAccess {
  getCurrentCluster(): { server: string } | null;
  /** Sets what every request needs (CA, client certificate, Authorization header); called for every request. */
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

/** A watch event: ADDED, MODIFIED, DELETED, BOOKMARK, or ERROR with a Status object. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** How a running watch ended: null when the server closed it, the error otherwise. */
export type WatchEnd = null | Error;

/** `Access` is what the client was made from: the CLI's port-forwards need client-node's KubeConfig itself. */
export class KubeClient<Access extends KubeAccess = KubeAccess> {
  readonly kubeConfig: Access;
  readonly #server: URL;
  readonly #agent = new https.Agent({ keepAlive: true, maxSockets: 16 });
  /** Watches hold their connection for as long as they run: apart from the pooled requests', and as many as needed. */
  readonly #watchAgent = new https.Agent({ keepAlive: false });

  constructor(kubeConfig: Access) {
    this.kubeConfig = kubeConfig;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.#server = new URL(cluster.server);
  }

  /**
   * Credentials are applied to every request, never cached: projected tokens rotate (about hourly on a real
   * cluster), and a token kept from the first request turns every later one into a 401.
   */
  async #baseOptions(): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(opts);
    return opts;
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
    const base = await this.#baseOptions();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        {
          ...base,
          agent: this.#agent,
          hostname: this.#server.hostname,
          port: this.#server.port,
          method,
          path,
          headers: {
            ...(base.headers ?? {}),
            accept: "application/json",
            ...(payload ? { "content-type": contentType, "content-length": payload.length } : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = undefined;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(parsed as T);
            const s = (parsed ?? {}) as { reason?: string; message?: string };
            reject(new KubeRequestError(status, s.reason ?? "Unknown", `${method} ${path}: ${status} ${s.message ?? text.slice(0, 300)}`));
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on("error", reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  get<T extends KubeObject = KubeObject>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }
  async list<T extends KubeObject = KubeObject>(path: string): Promise<T[]> {
    const list = await this.request<{ items: T[] }>("GET", path);
    return list.items ?? [];
  }
  create<T extends KubeObject = KubeObject>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }
  /** JSON merge patch (RFC 7386): works for built-in kinds and custom resources alike. */
  mergePatch<T extends KubeObject = KubeObject>(path: string, patch: unknown): Promise<T> {
    return this.request<T>("PATCH", path, patch, "application/merge-patch+json");
  }
  delete(path: string, options: { gracePeriodSeconds?: number; propagationPolicy?: string } = {}): Promise<unknown> {
    return this.request("DELETE", path, { apiVersion: "v1", kind: "DeleteOptions", ...options });
  }

  /**
   * Watches a collection (`path` may carry a label or field selector) from `resourceVersion` ("" for now): one
   * JSON event per line, handed to `onEvent`. Resolves once the server answered 200; rejects when the request
   * failed or the answer was another (`status` set: 410 Gone says `resourceVersion` is too old to resume from).
   * Then `onDone` runs once when the watch ends, whether the server closed it (null) or it failed, but not after
   * `abort()`.
   * No timeout: a watch may see no event for a long time; TCP keepalive notices a peer that went away.
   */
  async watch(
    path: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: KubeObject) => void,
    onDone: (end: WatchEnd) => void,
  ): Promise<{ abort(): void }> {
    const base = await this.#baseOptions();
    const url = new URL(path, "https://api.invalid");
    url.searchParams.set("watch", "true");
    if (resourceVersion) url.searchParams.set("resourceVersion", resourceVersion);
    const req = https.request({
      ...base,
      agent: this.#watchAgent,
      hostname: this.#server.hostname,
      port: this.#server.port,
      method: "GET",
      path: url.pathname + url.search,
      headers: { ...(base.headers ?? {}), accept: "application/json" },
    });
    req.on("socket", (socket) => socket.setKeepAlive(true, 30_000));
    let failed: (err: Error) => void = () => {};
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      failed = reject;
      req.on("error", failed);
      req.on("response", (res) => {
        if (res.statusCode === 200) return resolve(res);
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let message = text.slice(0, 300);
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? message;
          } catch {
            // not a Status object: the text itself
          }
          reject(Object.assign(new Error(`watch ${path}: ${status} ${message}`), { status }));
        });
      });
      req.end();
    });
    let finished = false;
    const finish = (end: WatchEnd) => {
      if (finished) return;
      finished = true;
      req.destroy();
      onDone(end);
    };
    req.off("error", failed);
    req.on("error", (err) => finish(err));
    res.setEncoding("utf8");
    let partial = "";
    res.on("data", (chunk: string) => {
      const last = chunk.lastIndexOf("\n");
      if (last < 0) {
        partial += chunk;
        return;
      }
      const lines = (partial + chunk.slice(0, last)).split("\n");
      partial = chunk.slice(last + 1);
      for (const line of lines) {
        if (finished) return;
        if (!line.trim()) continue;
        let event: { type?: WatchEventType; object?: KubeObject };
        try {
          event = JSON.parse(line) as typeof event;
        } catch {
          continue; // as client-node's watch: a line that is not JSON is skipped
        }
        if (event.type && event.object) onEvent(event.type, event.object);
      }
    });
    res.on("error", (err) => finish(err));
    res.on("end", () => finish(null));
    res.on("close", () => finish(null));
    return {
      abort: () => {
        finished = true;
        req.destroy();
      },
    };
  }

  close(): void {
    this.#agent.destroy();
    this.#watchAgent.destroy();
  }
}
