// Shared client-node informers: one list+watch per resource, many handlers (sandbox controllers, agent, controller).
import { makeInformer, type Informer, type ObjectCache, type KubernetesObject, type KubernetesListObject } from "@kubernetes/client-node";
import type { KubeClient, KubeObject } from "./client.ts";

/** Collection paths of the resources programs watch; a path may carry a fieldSelector (e.g. pods of one node). */
export const RESOURCE_PATHS = {
  pods: "/api/v1/pods",
  services: "/api/v1/services",
  endpointslices: "/apis/discovery.k8s.io/v1/endpointslices",
  deployments: "/apis/apps/v1/deployments",
  daemonsets: "/apis/apps/v1/daemonsets",
  nodes: "/api/v1/nodes",
  namespaces: "/api/v1/namespaces",
  serviceaccounts: "/api/v1/serviceaccounts",
  authorizationpolicies: "/apis/security.ambit.dev/v1/authorizationpolicies",
  peerauthentications: "/apis/security.ambit.dev/v1/peerauthentications",
  httproutes: "/apis/gateway.networking.k8s.io/v1/httproutes",
  grpcroutes: "/apis/gateway.networking.k8s.io/v1/grpcroutes",
  gateways: "/apis/gateway.networking.k8s.io/v1/gateways",
  gatewayclasses: "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
} as const;

export type Resource = keyof typeof RESOURCE_PATHS;

/** Pods bound to one node, as a node agent watches them. */
export const podsOnNodePath = (nodeName: string): string => `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${nodeName}`)}`;
/** Backoff of informer restarts after errors: doubling from 1 s up to 30 s. */
const RESTART_INITIAL_MS = 1000;
const RESTART_MAX_MS = 30_000;
/** How long stop() waits for starts in flight before giving up on them. */
const STOP_WAIT_MS = 5_000;

export type InformerEvent = "add" | "update" | "delete";
export type InformerHandler = (event: InformerEvent, obj: KubeObject) => void;

export class SharedInformers {
  readonly #client: KubeClient;
  readonly #informers = new Map<Resource, Informer<KubernetesObject> & ObjectCache<KubernetesObject>>();
  readonly #handlers = new Map<Resource, InformerHandler[]>();
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  readonly #onError: (resource: Resource, err: unknown) => void;
  #stopped = false;
  /** Informer starts (list, then watch) not settled yet. */
  readonly #starting = new Set<Promise<unknown>>();

  /** `paths` overrides the collection path of a resource (e.g. `{ pods: podsOnNodePath("node-1") }`). */
  constructor(
    client: KubeClient,
    resources: Resource[],
    onError: (resource: Resource, err: unknown) => void = () => {},
    paths: Partial<Record<Resource, string>> = {},
  ) {
    this.#client = client;
    this.#onError = onError;
    for (const resource of resources) {
      const path = paths[resource] ?? RESOURCE_PATHS[resource];
      // client-node goes on to open a watch after a list that was in flight when stop() was called; failing
      // that list keeps a stopped informer from watching again.
      const informer = makeInformer<KubernetesObject>(client.kubeConfig, path, async () => {
        const list = await this.#client.request<KubernetesListObject<KubernetesObject>>("GET", path);
        if (this.#stopped) throw new Error(`informer for ${resource} stopped`);
        return list;
      });
      for (const event of ["add", "update", "delete"] as const) {
        informer.on(event, (obj) => {
          for (const handler of this.#handlers.get(resource) ?? []) handler(event, obj as KubeObject);
        });
      }
      // client-node informers stop on error; restarting relists (which also covers 410 Gone). Failures in a row
      // back off exponentially so an API server that is down is not hammered; a successful list resets it.
      let failures = 0;
      informer.on("connect", () => (failures = 0));
      informer.on("error", (err) => {
        if (this.#stopped) return;
        this.#onError(resource, err);
        const delayMs = Math.min(RESTART_MAX_MS, RESTART_INITIAL_MS * 2 ** Math.min(failures++, 10));
        const timer = setTimeout(() => {
          this.#restartTimers.delete(timer);
          if (!this.#stopped) void this.#track(informer.start().catch((e: unknown) => this.#onError(resource, e)));
        }, delayMs);
        this.#restartTimers.add(timer);
      });
      this.#informers.set(resource, informer);
    }
  }

  on(resource: Resource, handler: InformerHandler): void {
    const list = this.#handlers.get(resource) ?? [];
    list.push(handler);
    this.#handlers.set(resource, list);
  }

  list(resource: Resource, namespace?: string): KubeObject[] {
    return (this.#informer(resource).list(namespace) ?? []) as KubeObject[];
  }

  get(resource: Resource, name: string, namespace?: string): KubeObject | undefined {
    return this.#informer(resource).get(name, namespace) as KubeObject | undefined;
  }

  #informer(resource: Resource) {
    const informer = this.#informers.get(resource);
    if (!informer) throw new Error(`informer for ${resource} was not started`);
    return informer;
  }

  /** Lists every resource once; resolves when all caches hold their first snapshot. */
  async start(): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => this.#track(i.start())));
  }

  /**
   * Stops every informer, including one caught between its list and its watch: client-node only aborts the
   * watch it already holds, so starts still in flight are awaited (bounded) and the informers stopped again.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#restartTimers) clearTimeout(t);
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
    await Promise.race([Promise.allSettled(this.#starting), new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
  }

  #track<T>(start: Promise<T>): Promise<T> {
    this.#starting.add(start);
    void start.finally(() => this.#starting.delete(start)).catch(() => {});
    return start;
  }
}

export const keyOf = (obj: KubeObject): string => (obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name);

export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf("/");
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
