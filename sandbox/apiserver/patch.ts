// PATCH bodies as kubectl and client libraries send them: JSON Patch, JSON Merge Patch and strategic merge patch.
import { ApiError } from "./types.ts";
import type { KubeObject } from "./types.ts";

export type PatchType = "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json";

const PATCH_TYPES: readonly PatchType[] = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

const BUILTIN_KINDS = new Set([
  "Pod",
  "Service",
  "Namespace",
  "Node",
  "ServiceAccount",
  "Secret",
  "ConfigMap",
  "Deployment",
  "DaemonSet",
  "ReplicaSet",
  "EndpointSlice",
  "Endpoints",
  "Lease",
  "Event",
  "Role",
  "RoleBinding",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "TokenReview",
  "PersistentVolumeClaim",
  "PodDisruptionBudget",
  "Scale",
]);

/** Kinds compiled into the API server; only these carry the patch metadata strategic merge patch needs. */
export function isBuiltinKind(kind: string): boolean {
  return BUILTIN_KINDS.has(kind);
}

function isPatchType(mediaType: string): mediaType is PatchType {
  return (PATCH_TYPES as readonly string[]).includes(mediaType);
}

export function patchTypeFromContentType(contentType: string | undefined): PatchType {
  const mediaType = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (isPatchType(mediaType)) return mediaType;
  if (mediaType.startsWith("application/apply-patch")) {
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      "server-side apply is not supported by the sandbox API server; use client-side `kubectl apply` (without --server-side)",
    );
  }
  throw new ApiError(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format ${JSON.stringify(mediaType)} - accepted media types include: ${PATCH_TYPES.join(", ")}`,
  );
}

type JsonMap = Record<string, unknown>;

const badRequest = (message: string) => new ApiError(400, "BadRequest", message);
const invalid = (message: string) => new ApiError(422, "Invalid", message);

function isMap(value: unknown): value is JsonMap {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// Own-property access only: a key like "__proto__" (a valid ConfigMap data key) must stay data, never reach the prototype.
function own(map: JsonMap, key: string): unknown {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

function setOwn(map: JsonMap, key: string, value: unknown): void {
  Object.defineProperty(map, key, { value, writable: true, enumerable: true, configurable: true });
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (!isMap(a) || !isMap(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}

function parseBody(patch: unknown): unknown {
  // A copy, so values taken over from the patch never tie the result to the caller's patch object.
  if (typeof patch !== "string" && !(patch instanceof Uint8Array)) return structuredClone(patch);
  const text = typeof patch === "string" ? patch : Buffer.from(patch).toString("utf8");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`unable to parse the patch body as JSON: ${(err as Error).message}`);
  }
}

/**
 * Applies `patch` (parsed JSON, or the raw body as string/bytes) of the given type to a copy of `target`.
 * `kind` picks the strategic-merge metadata (merge keys differ between e.g. Service and container ports).
 */
export function applyPatch(target: KubeObject, patch: unknown, type: PatchType, kind: string): KubeObject {
  const body = parseBody(patch);
  // Work on a deep copy so neither the stored object nor any of its nested values is ever shared with the result.
  const document: unknown = structuredClone(target);
  let patched: unknown;
  switch (type) {
    case "application/json-patch+json":
      patched = applyJsonPatch(document, decodeJsonPatch(body));
      break;
    case "application/merge-patch+json":
      if (!isMap(body)) throw badRequest("a merge patch must be a JSON object");
      patched = mergePatch(document, body);
      break;
    case "application/strategic-merge-patch+json":
      if (!isBuiltinKind(kind)) throw new ApiError(415, "UnsupportedMediaType", "strategic merge patch is not supported for custom resources, use merge patch");
      if (!isMap(body)) throw badRequest("a strategic merge patch must be a JSON object");
      patched = new StrategicMerge(kind).mergeMap(isMap(document) ? document : {}, body, []);
      break;
    default:
      throw new ApiError(415, "UnsupportedMediaType", `unsupported patch type ${JSON.stringify(type)}`);
  }
  return asKubeObject(patched);
}

function asKubeObject(value: unknown): KubeObject {
  if (!isMap(value)) throw invalid("the patch does not leave an object");
  if (typeof own(value, "apiVersion") !== "string" || typeof own(value, "kind") !== "string")
    throw invalid("the patched object must keep string fields apiVersion and kind");
  if (!isMap(own(value, "metadata"))) throw invalid("the patched object must keep metadata as an object");
  return value as KubeObject;
}

// ---- JSON Merge Patch (RFC 7386) ----

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) return patch;
  const result: JsonMap = isMap(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else setOwn(result, key, mergePatch(own(result, key), value));
  }
  return result;
}

// ---- JSON Patch (RFC 6902) ----

interface Operation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  tokens: string[];
  from?: { path: string; tokens: string[] };
  value?: unknown;
}

const OPERATIONS = new Set(["add", "remove", "replace", "move", "copy", "test"]);

function parsePointer(pointer: string, where: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw badRequest(`${where}: JSON pointer ${JSON.stringify(pointer)} must be empty or start with "/"`);
  if (/~([^01]|$)/.test(pointer)) throw badRequest(`${where}: JSON pointer ${JSON.stringify(pointer)} has an invalid "~" escape`);
  return pointer
    .slice(1)
    .split("/")
    .map((token) => token.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function decodeJsonPatch(body: unknown): Operation[] {
  if (!Array.isArray(body)) throw badRequest("a JSON patch must be a JSON array of operations");
  return body.map((entry, index): Operation => {
    const where = `json patch operation ${index}`;
    if (!isMap(entry)) throw badRequest(`${where} is not an object`);
    const op = own(entry, "op");
    if (typeof op !== "string" || !OPERATIONS.has(op)) throw badRequest(`${where} has unknown op ${JSON.stringify(op)}`);
    const path = own(entry, "path");
    if (typeof path !== "string") throw badRequest(`${where} (${op}) needs a string "path"`);
    const operation: Operation = { op: op as Operation["op"], path, tokens: parsePointer(path, where) };
    if (op === "move" || op === "copy") {
      const from = own(entry, "from");
      if (typeof from !== "string") throw badRequest(`${where} (${op}) needs a string "from"`);
      operation.from = { path: from, tokens: parsePointer(from, where) };
    }
    if (op === "add" || op === "replace" || op === "test") {
      if (!Object.hasOwn(entry, "value")) throw badRequest(`${where} (${op}) needs a "value"`);
      operation.value = entry.value;
    }
    return operation;
  });
}

function arrayIndex(token: string, length: number, path: string, allowEnd: boolean): number {
  if (allowEnd && token === "-") return length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw invalid(`json patch path ${JSON.stringify(path)}: ${JSON.stringify(token)} is not an array index`);
  const index = Number(token);
  if (index > length || (!allowEnd && index === length)) throw invalid(`json patch path ${JSON.stringify(path)}: index ${index} is out of range`);
  return index;
}

function valueAt(document: unknown, tokens: string[], path: string): unknown {
  let current = document;
  for (const token of tokens) {
    if (Array.isArray(current)) current = current[arrayIndex(token, current.length, path, false)];
    else if (isMap(current) && Object.hasOwn(current, token)) current = current[token];
    else throw invalid(`json patch path ${JSON.stringify(path)} does not exist`);
  }
  return current;
}

function parentOf(document: unknown, tokens: string[], path: string): { parent: unknown; last: string } {
  return { parent: valueAt(document, tokens.slice(0, -1), path), last: tokens.at(-1)! };
}

function addAt(document: unknown, tokens: string[], path: string, value: unknown): unknown {
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(document, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, path, true), 0, value);
  else if (isMap(parent)) setOwn(parent, last, value);
  else throw invalid(`json patch path ${JSON.stringify(path)}: parent is neither an object nor an array`);
  return document;
}

function removeAt(document: unknown, tokens: string[], path: string): unknown {
  if (tokens.length === 0) throw invalid("json patch cannot remove the whole document");
  const { parent, last } = parentOf(document, tokens, path);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(last, parent.length, path, false), 1)[0];
  if (isMap(parent) && Object.hasOwn(parent, last)) {
    const removed = parent[last];
    delete parent[last];
    return removed;
  }
  throw invalid(`json patch path ${JSON.stringify(path)} does not exist`);
}

function applyJsonPatch(document: unknown, operations: Operation[]): unknown {
  let current = document;
  for (const operation of operations) {
    const { tokens, path } = operation;
    switch (operation.op) {
      case "add":
        current = addAt(current, tokens, path, operation.value);
        break;
      case "remove":
        removeAt(current, tokens, path);
        break;
      case "replace":
        valueAt(current, tokens, path);
        if (tokens.length > 0) removeAt(current, tokens, path);
        current = addAt(current, tokens, path, operation.value);
        break;
      case "move": {
        const from = operation.from!;
        if (from.path === path) break;
        if (path.startsWith(`${from.path}/`)) throw invalid(`json patch cannot move ${JSON.stringify(from.path)} into its own child ${JSON.stringify(path)}`);
        current = addAt(current, tokens, path, removeAt(current, from.tokens, from.path));
        break;
      }
      case "copy": {
        const from = operation.from!;
        current = addAt(current, tokens, path, structuredClone(valueAt(current, from.tokens, from.path)));
        break;
      }
      case "test":
        if (!jsonEqual(valueAt(current, tokens, path), operation.value))
          throw invalid(`json patch test operation failed: the value at ${JSON.stringify(path)} differs`);
        break;
    }
  }
  return current;
}

// ---- Strategic merge patch (Kubernetes' apimachinery strategicpatch, as used by kubectl apply/edit/patch) ----

const PATCH_DIRECTIVE = "$patch";
const RETAIN_KEYS = "$retainKeys";
const SET_ORDER_PREFIX = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/";
const CONTAINER_LISTS = new Set(["containers", "initContainers", "ephemeralContainers"]);

/** How a list field merges: replaced whole, merged as a set of scalars, or merged item by item on a key. */
type ListStrategy = { merge: false } | { merge: true; mergeKey: string | undefined };

const REPLACE: ListStrategy = { merge: false };
const byKey = (mergeKey: string): ListStrategy => ({ merge: true, mergeKey });

/** The patchStrategy/patchMergeKey tags of the Kubernetes Go types, looked up by the field path (list indices left out). */
function listStrategy(kind: string, path: readonly string[]): ListStrategy {
  const field = path.at(-1)!;
  const parent = path.at(-2);
  if (parent === "metadata") {
    if (field === "finalizers") return { merge: true, mergeKey: undefined };
    if (field === "ownerReferences") return byKey("uid");
  }
  if (parent !== undefined && CONTAINER_LISTS.has(parent)) {
    if (field === "env") return byKey("name");
    if (field === "volumeMounts") return byKey("mountPath");
    if (field === "volumeDevices") return byKey("devicePath");
    if (field === "ports") return byKey("containerPort");
  }
  if (parent === "spec") {
    if (CONTAINER_LISTS.has(field) || field === "volumes" || field === "imagePullSecrets" || field === "schedulingGates") return byKey("name");
    if (field === "hostAliases") return byKey("ip");
    if (field === "ports" && kind === "Service" && path.length === 2) return byKey("port");
  }
  if (parent === "status") {
    if (field === "conditions") return byKey("type");
    if (field === "podIPs" && kind === "Pod") return byKey("ip");
    if (field === "addresses" && kind === "Node") return byKey("type");
  }
  if (kind === "ServiceAccount" && path.length === 1 && field === "secrets") return byKey("name");
  return REPLACE;
}

const where = (path: readonly string[]) => (path.length === 0 ? "the object" : path.join("."));

class StrategicMerge {
  readonly #kind: string;

  constructor(kind: string) {
    this.#kind = kind;
  }

  /** Merges `patch` into `original` (which it may modify); undefined means the patch deletes the map. */
  mergeMap(original: JsonMap, patch: JsonMap, path: string[]): JsonMap | undefined {
    const directive = own(patch, PATCH_DIRECTIVE);
    if (directive === undefined) return this.#mergeMapBody(original, patch, path);
    if (directive === "delete") return undefined;
    if (directive === "replace") {
      const rest: JsonMap = {};
      for (const [key, value] of Object.entries(patch)) if (key !== PATCH_DIRECTIVE) setOwn(rest, key, value);
      return this.#mergeMapBody({}, rest, path);
    }
    throw badRequest(`unknown ${PATCH_DIRECTIVE} directive ${JSON.stringify(directive)} in ${where(path)}`);
  }

  #mergeMapBody(original: JsonMap, patch: JsonMap, path: string[]): JsonMap {
    if (Object.hasOwn(patch, RETAIN_KEYS)) applyRetainKeys(original, patch, path);
    const orders = new Map<string, unknown[]>();
    const deletions = new Map<string, unknown[]>();
    const fields: Array<[string, unknown]> = [];
    for (const [key, value] of Object.entries(patch)) {
      if (key === RETAIN_KEYS) continue;
      if (key.startsWith(SET_ORDER_PREFIX) || key.startsWith(DELETE_PRIMITIVE_PREFIX)) {
        if (!Array.isArray(value)) throw badRequest(`${key} in ${where(path)} must be a list`);
        if (key.startsWith(SET_ORDER_PREFIX)) orders.set(key.slice(SET_ORDER_PREFIX.length), value);
        else deletions.set(key.slice(DELETE_PRIMITIVE_PREFIX.length), value);
        continue;
      }
      fields.push([key, value]);
    }

    for (const [key, value] of fields) {
      const fieldPath = [...path, key];
      const current = own(original, key);
      if (value === null) {
        delete original[key];
      } else if (isMap(value)) {
        const merged = this.mergeMap(isMap(current) ? current : {}, value, fieldPath);
        if (merged === undefined) delete original[key];
        else setOwn(original, key, merged);
      } else if (Array.isArray(value)) {
        setOwn(original, key, this.#mergeList(Array.isArray(current) ? current : [], value, fieldPath, orders.get(key)));
      } else {
        setOwn(original, key, value);
      }
    }

    // An order directive may name a list the patch leaves unchanged: kubectl apply sends it to keep the live order.
    for (const [key, order] of orders) {
      const current = own(original, key);
      if (fields.some(([field]) => field === key) || !Array.isArray(current)) continue;
      const strategy = listStrategy(this.#kind, [...path, key]);
      if (strategy.merge) setOwn(original, key, orderItems(current, order, current, strategy.mergeKey));
    }

    for (const [key, remove] of deletions) {
      const current = own(original, key);
      if (Array.isArray(current))
        setOwn(
          original,
          key,
          current.filter((item) => !remove.some((gone) => jsonEqual(gone, item))),
        );
    }
    return original;
  }

  #mergeList(original: unknown[], patch: unknown[], path: string[], order: unknown[] | undefined): unknown[] {
    const strategy = listStrategy(this.#kind, path);
    if (!strategy.merge) return this.#withoutDirectives(patch, path);

    const mergeKey = strategy.mergeKey;
    let merged: unknown[];
    const patchItems: unknown[] = [];
    let replaceAll = false;
    for (const item of patch) {
      const directive = isMap(item) ? own(item, PATCH_DIRECTIVE) : undefined;
      if (directive === undefined) {
        if (mergeKey !== undefined && !(isMap(item) && own(item, mergeKey) !== undefined)) {
          throw badRequest(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey} (in ${where(path)})`);
        }
        if (mergeKey === undefined && (isMap(item) || Array.isArray(item)))
          throw badRequest(`${where(path)} is a list of scalars, found ${JSON.stringify(item)}`);
        patchItems.push(item);
      } else if (directive === "replace") {
        replaceAll = true;
      } else if (directive === "delete" && mergeKey !== undefined) {
        const keyValue = own(item as JsonMap, mergeKey);
        if (keyValue === undefined) throw badRequest(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey} (in ${where(path)})`);
        original = original.filter((existing) => !(isMap(existing) && jsonEqual(own(existing, mergeKey), keyValue)));
      } else {
        throw badRequest(`unknown ${PATCH_DIRECTIVE} directive ${JSON.stringify(directive)} in list ${where(path)}`);
      }
    }
    if (order !== undefined) validateOrder(patchItems, order, mergeKey, path);

    const base = replaceAll ? [] : original;
    if (mergeKey === undefined) {
      merged = [];
      for (const item of [...base, ...patchItems]) if (!merged.some((seen) => jsonEqual(seen, item))) merged.push(item);
    } else {
      merged = [...base];
      for (const item of patchItems as JsonMap[]) {
        const index = merged.findIndex((existing) => isMap(existing) && jsonEqual(own(existing, mergeKey), own(item, mergeKey)));
        if (index >= 0) merged[index] = this.mergeMap(merged[index] as JsonMap, item, path);
        else merged.push(this.mergeMap({}, item, path));
      }
    }
    return orderItems(merged, order ?? patchItems, base, mergeKey);
  }

  /** Values headed for a replaced list still pass through the merge so no directive or null survives in them. */
  #withoutDirectives(items: unknown[], path: string[]): unknown[] {
    const result: unknown[] = [];
    for (const item of items) {
      if (isMap(item)) {
        const cleaned = this.mergeMap({}, item, path);
        if (cleaned !== undefined) result.push(cleaned);
      } else {
        result.push(item);
      }
    }
    return result;
  }
}

function applyRetainKeys(original: JsonMap, patch: JsonMap, path: string[]): void {
  const retain = patch[RETAIN_KEYS];
  if (!Array.isArray(retain) || !retain.every((key) => typeof key === "string")) throw badRequest(`${RETAIN_KEYS} in ${where(path)} must be a list of strings`);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null || key.startsWith("$")) continue;
    if (!retain.includes(key)) throw badRequest(`${RETAIN_KEYS} in ${where(path)} does not list the patched field ${JSON.stringify(key)}`);
  }
  for (const key of Object.keys(original)) if (!retain.includes(key)) delete original[key];
}

const identity = (item: unknown, mergeKey: string | undefined): unknown => (mergeKey === undefined ? item : isMap(item) ? own(item, mergeKey) : undefined);

function validateOrder(patchItems: unknown[], order: unknown[], mergeKey: string | undefined, path: string[]): void {
  if (mergeKey !== undefined && !order.every((item) => isMap(item) && own(item, mergeKey) !== undefined)) {
    throw badRequest(`$setElementOrder/${path.at(-1)} items must all carry the merge key ${mergeKey}`);
  }
  let patchIndex = 0;
  for (let orderIndex = 0; patchIndex < patchItems.length && orderIndex < order.length; orderIndex++) {
    if (jsonEqual(identity(patchItems[patchIndex], mergeKey), identity(order[orderIndex], mergeKey))) patchIndex++;
  }
  if (patchIndex < patchItems.length) throw badRequest(`the order of the patch list ${where(path)} does not match its $setElementOrder/${path.at(-1)} list`);
}

/**
 * Puts items named in `order` in that order and keeps the rest where they were in the live list, interleaving
 * both (Kubernetes' normalizeElementOrder): a server-only item stays before the patch item that followed it.
 */
function orderItems(merged: unknown[], order: unknown[], live: unknown[], mergeKey: string | undefined): unknown[] {
  const indexIn = (list: unknown[], item: unknown) => list.findIndex((other) => jsonEqual(identity(other, mergeKey), identity(item, mergeKey)));
  const byIndexIn = (list: unknown[]) => (a: unknown, b: unknown) => indexIn(list, a) - indexIn(list, b);
  const ordered = merged.filter((item) => indexIn(order, item) >= 0).sort(byIndexIn(order));
  const serverOnly = merged.filter((item) => indexIn(order, item) < 0).sort(byIndexIn(live));
  const result: unknown[] = [];
  let left = 0;
  let right = 0;
  while (left < serverOnly.length || right < ordered.length) {
    if (right >= ordered.length) result.push(serverOnly[left++]);
    else if (left >= serverOnly.length) result.push(ordered[right++]);
    else {
      const serverIndex = indexIn(live, serverOnly[left]);
      const patchIndex = indexIn(live, ordered[right]);
      if (serverIndex >= 0 && patchIndex >= 0 && serverIndex < patchIndex) result.push(serverOnly[left++]);
      else result.push(ordered[right++]);
    }
  }
  return result;
}
