// Shared informers: one list+watch per resource, many handlers (sandbox controllers, agent, controller).
import type { KubeClient, KubeObject, WatchEnd, WatchEventType } from "./client.ts";

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
  backendtrafficpolicies: "/apis/networking.ambit.dev/v1alpha1/backendtrafficpolicies",
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

type ListWatchEvent = InformerEvent | "connect" | "error";

/**
 * One resource's cache, kept by a list and then a watch from the list's resourceVersion, with the semantics of
 * client-node's ListWatch (which this replaces, so that the agent's bundle holds none of client-node): a watch the
 * server closes is opened again from the last resourceVersion seen; 410 Gone (an answer or an ERROR event) lists
 * again, and the differences between the cache and the new list become add, update and delete events; any other
 * failure emits "error" and stops, for the owner to start() it again. "connect" follows every watch the API server
 * accepted, so an owner's backoff resets only once the API server answers again.
 */
export class ListWatch {
  readonly #client: KubeClient;
  readonly #path: string;
  readonly #list: () => Promise<{ metadata?: { resourceVersion?: string }; items?: KubeObject[] }>;
  readonly #handlers: Record<ListWatchEvent, Array<(arg: never) => void>> = { add: [], update: [], delete: [], connect: [], error: [] };
  /** namespace ("" for cluster-scoped objects) -> name -> object. */
  #objects = new Map<string, Map<string, KubeObject>>();
  #resourceVersion = "";
  #stopped = false;
  /** Incremented by start() and stop(): a run that belongs to an earlier generation stops at its next step. */
  #generation = 0;
  #watch: { abort(): void } | undefined;

  constructor(client: KubeClient, path: string, list: () => Promise<{ metadata?: { resourceVersion?: string }; items?: KubeObject[] }>) {
    this.#client = client;
    this.#path = path;
    this.#list = list;
  }

  on(event: InformerEvent, handler: (obj: KubeObject) => void): void;
  on(event: "connect", handler: () => void): void;
  on(event: "error", handler: (err: unknown) => void): void;
  on(event: ListWatchEvent, handler: (arg: never) => void): void {
    this.#handlers[event].push(handler);
  }

  #emit(event: ListWatchEvent, arg?: unknown): void {
    for (const handler of this.#handlers[event].slice()) (handler as (arg: unknown) => void)(arg);
  }

  /** Lists (unless a resourceVersion to resume from is known) and opens the watch; failures are emitted, not thrown. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#run(++this.#generation);
  }

  stop(): Promise<void> {
    this.#stopped = true;
    this.#generation++;
    this.#watch?.abort();
    this.#watch = undefined;
    return Promise.resolve();
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.#objects.get(namespace || "")?.get(name);
  }

  list(namespace?: string): KubeObject[] {
    if (!namespace) return [...this.#objects.values()].flatMap((objects) => [...objects.values()]);
    return [...(this.#objects.get(namespace)?.values() ?? [])];
  }

  latestResourceVersion(): string {
    return this.#resourceVersion;
  }

  async #run(generation: number): Promise<void> {
    this.#watch?.abort();
    this.#watch = undefined;
    const current = () => generation === this.#generation && !this.#stopped;
    if (!current()) return;
    if (!this.#resourceVersion) {
      let list;
      try {
        list = await this.#list();
      } catch (err) {
        if (current()) this.#emit("error", err);
        return;
      }
      if (!current()) return;
      this.#replace(list.items ?? []);
      this.#resourceVersion = list.metadata?.resourceVersion ?? "";
    }
    let watch;
    try {
      watch = await this.#client.watch(
        this.#path,
        this.#resourceVersion,
        (type, obj) => current() && this.#event(type, obj),
        (end) => current() && this.#ended(end, generation),
      );
    } catch (err) {
      if (!current()) return;
      if ((err as { status?: number }).status !== 410) return this.#emit("error", err);
      // 410 Gone: the server no longer has the history since this resourceVersion; list again.
      this.#resourceVersion = "";
      return this.#run(generation);
    }
    if (!current()) return watch.abort();
    this.#watch = watch;
    this.#emit("connect");
  }

  #ended(end: WatchEnd, generation: number): void {
    this.#watch = undefined;
    if (end) return this.#emit("error", end);
    void this.#run(generation);
  }

  #event(type: WatchEventType, obj: KubeObject): void {
    switch (type) {
      case "ERROR":
        // The server closes the watch after this; a 410 means the next start lists again.
        if ((obj as { code?: number }).code === 410) this.#resourceVersion = "";
        return;
      case "ADDED":
      case "MODIFIED":
        this.#addOrUpdate(obj);
        break;
      case "DELETED":
        this.#delete(obj);
        break;
      case "BOOKMARK":
        break;
    }
    this.#resourceVersion = obj.metadata?.resourceVersion ?? "";
  }

  /** After a list: what the cache holds and the list does not is deleted, then every listed object is added or updated. */
  #replace(items: KubeObject[]): void {
    const listed = new Map<string, Set<string>>();
    for (const obj of items) {
      const ns = obj.metadata.namespace || "";
      let names = listed.get(ns);
      if (!names) listed.set(ns, (names = new Set()));
      names.add(obj.metadata.name || "");
    }
    for (const [ns, objects] of this.#objects) {
      const names = listed.get(ns);
      for (const [name, obj] of objects) {
        if (names?.has(name)) continue;
        objects.delete(name);
        this.#emit("delete", obj);
      }
      if (objects.size === 0) this.#objects.delete(ns);
    }
    for (const obj of items) this.#addOrUpdate(obj);
  }

  #addOrUpdate(obj: KubeObject): void {
    const ns = obj.metadata.namespace || "";
    let objects = this.#objects.get(ns);
    if (!objects) this.#objects.set(ns, (objects = new Map()));
    const name = obj.metadata.name || "";
    const found = objects.get(name);
    if (found && found.metadata.resourceVersion !== undefined && found.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    objects.set(name, obj);
    this.#emit(found ? "update" : "add", obj);
  }

  #delete(obj: KubeObject): void {
    const ns = obj.metadata.namespace || "";
    const objects = this.#objects.get(ns);
    if (!objects?.delete(obj.metadata.name || "")) return;
    this.#emit("delete", obj);
    if (objects.size === 0) this.#objects.delete(ns);
  }
}

export class SharedInformers {
  readonly #client: KubeClient;
  readonly #informers = new Map<Resource, ListWatch>();
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
      const informer = new ListWatch(client, path, () => this.#client.request<{ metadata?: { resourceVersion?: string }; items?: KubeObject[] }>("GET", path));
      for (const event of ["add", "update", "delete"] as const) {
        informer.on(event, (obj) => {
          for (const handler of this.#handlers.get(resource) ?? []) handler(event, obj);
        });
      }
      // Informers stop on error; restarting resumes the watch (or relists after 410 Gone). Failures in a row back
      // off exponentially so an API server that is down is not hammered; an answered list or watch resets it.
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
    return this.#informer(resource).list(namespace);
  }

  get(resource: Resource, name: string, namespace?: string): KubeObject | undefined {
    return this.#informer(resource).get(name, namespace);
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
   * Stops every informer. A start still in flight (its list or watch request not answered yet) ends at its next
   * step without watching; those are awaited (bounded), so no watch outlives stop().
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#restartTimers) clearTimeout(t);
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
    await Promise.race([Promise.allSettled(this.#starting), new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
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
