// In-memory object store: one global resourceVersion, a bounded event history for watch resumption, watch fan-out.
import type { KubeObject } from "./types.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  rv: number;
  type: EventType;
  resource: string;
  object: KubeObject;
  /** The object before a MODIFIED event, to turn it into ADDED/DELETED for selector-filtered watchers. */
  previous?: KubeObject;
  /** Serialized `{"type","object"}` lines per type, computed once and shared by every watcher. */
  lines?: Map<EventType, string>;
}

export interface Watcher {
  resource: string;
  namespace?: string;
  matches(obj: KubeObject): boolean;
  deliver(type: EventType, event: StoreEvent): void;
}

const objectKey = (namespace: string | undefined, name: string) => `${namespace ?? ""}/${name}`;

export class ObjectStore {
  #rv = 0;
  /** Events at or below this version are no longer retained: resuming from before it answers 410 Gone. */
  #compactedRv = 0;
  readonly #data = new Map<string, Map<string, KubeObject>>();
  readonly #history: StoreEvent[] = [];
  readonly #historySize: number;
  readonly #watchers = new Set<Watcher>();

  constructor(historySize: number) {
    this.#historySize = historySize;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  nextResourceVersion(): string {
    return String(++this.#rv);
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#data.get(resource)?.get(objectKey(namespace, name));
  }

  list(resource: string, namespace?: string): KubeObject[] {
    const all = [...(this.#data.get(resource)?.values() ?? [])];
    const items = namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
    return items.sort((a, b) => objectKey(a.metadata.namespace, a.metadata.name ?? "").localeCompare(objectKey(b.metadata.namespace, b.metadata.name ?? "")));
  }

  /** Stores the object under a fresh resourceVersion (set on the object) and notifies watchers. */
  put(resource: string, obj: KubeObject): KubeObject {
    const rv = ++this.#rv;
    obj.metadata.resourceVersion = String(rv);
    const bucket = this.#data.get(resource) ?? new Map<string, KubeObject>();
    this.#data.set(resource, bucket);
    const key = objectKey(obj.metadata.namespace, obj.metadata.name ?? "");
    const previous = bucket.get(key);
    bucket.set(key, obj);
    this.#emit({ rv, type: previous ? "MODIFIED" : "ADDED", resource, object: obj, ...(previous ? { previous } : {}) });
    return obj;
  }

  remove(resource: string, obj: KubeObject): KubeObject {
    const rv = ++this.#rv;
    this.#data.get(resource)?.delete(objectKey(obj.metadata.namespace, obj.metadata.name ?? ""));
    const gone = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
    this.#emit({ rv, type: "DELETED", resource, object: gone });
    return gone;
  }

  /** Drops every object of a resource type (CRD deletion) with DELETED events. */
  dropResource(resource: string): void {
    for (const obj of this.list(resource)) this.remove(resource, obj);
    this.#data.delete(resource);
  }

  #emit(event: StoreEvent): void {
    this.#history.push(event);
    if (this.#history.length > this.#historySize) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historySize);
      this.#compactedRv = dropped[dropped.length - 1]!.rv;
    }
    for (const w of this.#watchers) this.#offer(w, event);
  }

  #offer(w: Watcher, event: StoreEvent): void {
    if (w.resource !== event.resource) return;
    const ns = event.object.metadata.namespace;
    if (w.namespace !== undefined && w.namespace !== ns) return;
    const now = w.matches(event.object);
    if (event.type === "MODIFIED" && event.previous) {
      const before = w.matches(event.previous);
      if (before && now) w.deliver("MODIFIED", event);
      else if (before) w.deliver("DELETED", event);
      else if (now) w.deliver("ADDED", event);
      return;
    }
    if (now) w.deliver(event.type, event);
  }

  /**
   * Registers a watcher from `fromRv` (exclusive): replays retained events after it, then live ones.
   * Returns false when `fromRv` is older than the retained history, or newer than anything this store has seen
   * (the client watched a previous incarnation of this in-memory server): either way the caller answers 410 Gone
   * and the client relists.
   */
  watch(w: Watcher, fromRv: number): boolean {
    if (fromRv < this.#compactedRv || fromRv > this.resourceVersion) return false;
    for (const event of this.#history) if (event.rv > fromRv) this.#offer(w, event);
    this.#watchers.add(w);
    return true;
  }

  unwatch(w: Watcher): void {
    this.#watchers.delete(w);
  }

  get watcherCount(): number {
    return this.#watchers.size;
  }

  get compactedResourceVersion(): number {
    return this.#compactedRv;
  }

  /** Forgets all retained history (test aid for 410 Gone). */
  compact(): void {
    this.#history.length = 0;
    this.#compactedRv = this.#rv;
  }
}
