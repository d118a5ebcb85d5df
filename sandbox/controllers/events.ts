// Event recorder for the sandbox's scheduler, controllers and kubelets: core/v1 Events as client-go's record package writes them.
import type { Logger } from "pino";
import { type KubeClient, type KubeObject, isNotFound, pathFor } from "../../kube/client.ts";

export type EventType = "Normal" | "Warning";

/** Who records: `component` is the From column of kubectl describe, `host` the node for a kubelet. */
export interface EventSource {
  component: string;
  host?: string;
}

/** What an event is about: any object (its apiVersion, kind and metadata are enough), and optionally a part of it. */
export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

interface ObjectReference {
  kind: string;
  namespace?: string;
  name: string;
  uid?: string;
  apiVersion: string;
  resourceVersion?: string;
  fieldPath?: string;
}

interface RecordedEvent {
  name: string;
  namespace: string;
  count: number;
  firstTimestamp: string;
}

/** client-go's EventCorrelator defaults. */
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 5 * 60_000;
const AGGREGATE_MAX_EVENTS = 10;
const AGGREGATE_WINDOW_MS = 10 * 60_000;
const CACHE_SIZE = 4096;

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

/** Map with a size bound: the least recently used key goes first, as client-go's LRU caches. */
class Lru<V> {
  readonly #map = new Map<string, V>();
  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.#map.delete(key);
    this.#map.set(key, v);
    if (this.#map.size > CACHE_SIZE) this.#map.delete(this.#map.keys().next().value!);
  }
}

let sequence = 0;

/**
 * Records Events through `client`, as the components of a real cluster do with client-go's recorder: repeats of an
 * event (same source, object, type, reason and message) update its count and lastTimestamp instead of creating
 * another; more than 10 events differing only in message within 10 minutes are combined into one; an object gets
 * at most 25 events in a burst, then one per 5 minutes. Writes never block or fail the caller: they are queued, and
 * a failure is logged and dropped, as client-go drops them.
 */
export class EventRecorder {
  readonly #client: KubeClient;
  readonly #source: EventSource;
  readonly #log: Logger;
  readonly #recorded = new Lru<RecordedEvent>();
  /** Per aggregate key: the distinct messages seen in the current window. */
  readonly #similar = new Lru<{ since: number; messages: Set<string> }>();
  readonly #buckets = new Lru<{ tokens: number; at: number }>();
  #queue: Promise<void> = Promise.resolve();

  constructor(client: KubeClient, source: EventSource, log: Logger) {
    this.#client = client;
    this.#source = source;
    this.#log = log.child({ component: `${source.component}-events` });
  }

  /** Records an event about `object` (a container of a pod with `fieldPath: "spec.containers{name}"`). */
  event(object: InvolvedObject, type: EventType, reason: string, message: string, fieldPath?: string): void {
    const ref: ObjectReference = {
      kind: object.kind,
      ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}),
      name: object.metadata.name ?? "",
      ...(object.metadata.uid ? { uid: object.metadata.uid } : {}),
      apiVersion: object.apiVersion,
      ...(object.metadata.resourceVersion ? { resourceVersion: object.metadata.resourceVersion } : {}),
      ...(fieldPath ? { fieldPath } : {}),
    };
    const objectKey = [
      this.#source.component,
      this.#source.host ?? "",
      ref.kind,
      ref.namespace ?? "",
      ref.name,
      ref.fieldPath ?? "",
      ref.uid ?? "",
      ref.apiVersion,
    ].join("\u0000");
    if (!this.#allow(objectKey)) return;
    const aggregateKey = [objectKey, type, reason].join("\u0000");
    const combined = this.#combine(aggregateKey, message);
    const key = combined ? aggregateKey : [aggregateKey, message].join("\u0000");
    const text = combined ? `(combined from similar events): ${message}` : message;
    this.#queue = this.#queue.then(() =>
      this.#write(key, ref, type, reason, text).catch((err: unknown) =>
        this.#log.warn({ err: String(err), reason, object: `${ref.kind}/${ref.namespace ?? ""}/${ref.name}` }, "cannot record event; dropped"),
      ),
    );
  }

  /** Resolves once every event recorded so far has been written (tests, shutdown). */
  flush(): Promise<void> {
    return this.#queue;
  }

  /** The spam filter: a token bucket per source and object. */
  #allow(objectKey: string): boolean {
    const t = Date.now();
    const bucket = this.#buckets.get(objectKey) ?? { tokens: SPAM_BURST, at: t };
    bucket.tokens = Math.min(SPAM_BURST, bucket.tokens + (t - bucket.at) / SPAM_REFILL_MS);
    bucket.at = t;
    this.#buckets.set(objectKey, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** The aggregator: true once this event is one of more than 10 similar ones (differing in message) in the window. */
  #combine(aggregateKey: string, message: string): boolean {
    const t = Date.now();
    let entry = this.#similar.get(aggregateKey);
    if (!entry || t - entry.since > AGGREGATE_WINDOW_MS) entry = { since: t, messages: new Set() };
    entry.messages.add(message);
    this.#similar.set(aggregateKey, entry);
    return entry.messages.size >= AGGREGATE_MAX_EVENTS;
  }

  async #write(key: string, ref: ObjectReference, type: EventType, reason: string, message: string): Promise<void> {
    const at = now();
    const previous = this.#recorded.get(key);
    if (previous) {
      const count = previous.count + 1;
      try {
        await this.#client.request(
          "PATCH",
          pathFor("v1", "events", previous.namespace, previous.name),
          { count, lastTimestamp: at, message },
          "application/strategic-merge-patch+json",
        );
        this.#recorded.set(key, { ...previous, count });
        return;
      } catch (err) {
        // Expired or deleted meanwhile: recorded anew, keeping the count, as client-go does.
        if (!isNotFound(err)) throw err;
      }
    }
    const namespace = ref.namespace ?? "default";
    const count = previous ? previous.count + 1 : 1;
    const firstTimestamp = previous?.firstTimestamp ?? at;
    // client-go's name: the object's name and the time in nanoseconds, in hex; the sequence keeps it unique here.
    const nanos = BigInt(Date.now()) * 1_000_000n + BigInt(sequence++ % 1_000_000);
    const name = `${ref.name || ref.kind.toLowerCase()}.${nanos.toString(16)}`;
    const event: KubeObject = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace },
      involvedObject: ref,
      reason,
      message,
      source: { component: this.#source.component, ...(this.#source.host ? { host: this.#source.host } : {}) },
      firstTimestamp,
      lastTimestamp: at,
      count,
      type,
      eventTime: null,
      reportingComponent: this.#source.component,
      reportingInstance: this.#source.host ?? "",
    };
    await this.#client.create(pathFor("v1", "events", namespace), event);
    this.#recorded.set(key, { name, namespace, count, firstTimestamp });
  }
}

/** The fieldPath of a container, as the kubelet writes it in events about one. */
export const containerFieldPath = (name: string): string => `spec.containers{${name}}`;
