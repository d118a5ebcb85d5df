// Per-node view bookkeeping for the config stream: content hashes, diffs between views, and resume from bounded history.
import { createHash } from "node:crypto";
import { type Resource, type ResourceRef, resourceId } from "../../contract/stream.ts";

/** JSON with object keys sorted, so equal content always serialises (and hashes) the same whatever built it. */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : stableStringify(v))).join(",")}]`;
  const fields: string[] = [];
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key];
    // Dropped like JSON.stringify drops them, so {a: undefined} and {} are the same content.
    if (v === undefined || typeof v === "function") continue;
    fields.push(`${JSON.stringify(key)}:${stableStringify(v)}`);
  }
  return `{${fields.join(",")}}`;
}

const hashes = new WeakMap<object, string>();

/**
 * A hash, not the serialised text, is kept per resource and node: views repeat shared resources on every node.
 * Object values are hashed once (values handed to a view are never mutated afterwards), so a view builder that
 * reuses the same value object for every node and every recomputation pays for it once.
 */
export function contentHash(value: unknown): string {
  if (value === null || typeof value !== "object") return createHash("sha256").update(stableStringify(value)).digest("base64url");
  let hash = hashes.get(value);
  if (hash === undefined) {
    hash = createHash("sha256").update(stableStringify(value)).digest("base64url");
    hashes.set(value, hash);
  }
  return hash;
}

interface Entry {
  /** Replaced by an equal-content newer object, so the next identity check hits. */
  resource: Resource;
  hash: string;
}

export interface ViewChange {
  upserts: Resource[];
  removes: ResourceRef[];
}

/** A Map or a Map-like view (controller/views builds views that share most of their records). */
const isMap = (x: Iterable<Resource> | ReadonlyMap<string, Resource>): x is ReadonlyMap<string, Resource> =>
  typeof (x as ReadonlyMap<string, Resource>).get === "function" && typeof (x as ReadonlyMap<string, Resource>).has === "function";

/** One node's latest view as last computed, with what changed in each of its recent versions. */
export class NodeView {
  #version = 0;
  #entries = new Map<string, Entry>();
  /** `touched[i]` lists what changed going to version `oldestRecorded + i`; bounded by both limits below. */
  readonly #touched: ResourceRef[][] = [];
  #touchedRefs = 0;
  readonly #maxVersions: number;
  readonly #maxRefs: number;

  constructor(limits: { maxVersions: number; maxRefs: number }) {
    this.#maxVersions = limits.maxVersions;
    this.#maxRefs = limits.maxRefs;
  }

  get version(): number {
    return this.#version;
  }

  resources(): Resource[] {
    return [...this.#entries.values()].map((e) => e.resource);
  }

  /**
   * Replaces the view; returns what changed (and bumps the version) or undefined when nothing did. The first
   * update makes version 1 even if the view is empty, so every connected agent has a version to resume from.
   */
  update(next: Iterable<Resource> | ReadonlyMap<string, Resource>): ViewChange | undefined {
    const byId: ReadonlyMap<string, Resource> = isMap(next) ? next : new Map([...next].map((r) => [resourceId(r), r] as const));
    // Unchanged resources are usually the very same objects (view builders share them): an identity check
    // settles most entries without hashing, and nothing is reallocated when nothing changed.
    const upserts: Array<[string, Resource]> = [];
    let added = 0;
    for (const [id, resource] of byId) {
      const old = this.#entries.get(id);
      if (old && (old.resource === resource || old.hash === contentHash(resource.value))) {
        old.resource = resource;
        continue;
      }
      if (!old) added++;
      upserts.push([id, resource]);
    }
    const removes: ResourceRef[] = [];
    if (this.#entries.size + added > byId.size) {
      for (const [id, old] of this.#entries) if (!byId.has(id)) removes.push({ type: old.resource.type, key: old.resource.key });
    }
    if (this.#version > 0 && upserts.length === 0 && removes.length === 0) return undefined;
    for (const [id, resource] of upserts) this.#entries.set(id, { resource, hash: contentHash(resource.value) });
    for (const r of removes) this.#entries.delete(resourceId(r));
    this.#version++;
    this.#record([...upserts.map(([, { type, key }]) => ({ type, key })), ...removes]);
    return { upserts: upserts.map(([, r]) => r), removes };
  }

  #record(refs: ResourceRef[]): void {
    this.#touched.push(refs);
    this.#touchedRefs += refs.length;
    while (this.#touched.length > this.#maxVersions || (this.#touchedRefs > this.#maxRefs && this.#touched.length > 0)) {
      this.#touchedRefs -= this.#touched.shift()!.length;
    }
  }

  /**
   * One delta taking a view at `fromVersion` to the latest: every resource touched since, at its current value
   * (or removed). Undefined when history no longer reaches back that far, and the agent needs a snapshot.
   */
  changesSince(fromVersion: number): ViewChange | undefined {
    const oldestRecorded = this.#version - this.#touched.length + 1;
    if (fromVersion > this.#version || fromVersion < oldestRecorded - 1) return undefined;
    const refs = new Map<string, ResourceRef>();
    for (const list of this.#touched.slice(fromVersion - oldestRecorded + 1)) for (const ref of list) refs.set(resourceId(ref), ref);
    const change: ViewChange = { upserts: [], removes: [] };
    for (const [id, ref] of refs) {
      const current = this.#entries.get(id);
      if (current) change.upserts.push(current.resource);
      else change.removes.push(ref);
    }
    return change;
  }
}
