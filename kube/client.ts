// Minimal typed Kubernetes client (agent, controller, sandbox controllers): JSON requests authenticated from a KubeConfig.
import https from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
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

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly #server: URL;
  readonly #agent = new https.Agent({ keepAlive: true, maxSockets: 16 });

  constructor(kubeConfig: KubeConfig) {
    this.kubeConfig = kubeConfig;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.#server = new URL(cluster.server);
  }

  static fromFile(path: string): KubeClient {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KubeClient(kc);
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

  close(): void {
    this.#agent.destroy();
  }
}
