// The sandbox API server: Kubernetes REST semantics over HTTPS (and a unix socket) on top of the in-memory store.
import https from "node:https";
import fs from "node:fs/promises";
import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { parse as parseYaml } from "yaml";
import { ApiError, type KubeObject, statusBody } from "./types.ts";
import { applyPatch, patchTypeFromContentType } from "./patch.ts";
import { parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import { type IncludeObject, toTable } from "./tables.ts";
import type { ServiceAccountTokenSigner } from "./tokens.ts";
import { API_SERVER_AUDIENCE } from "./tokens.ts";
import { type ResourceType, ResourceRegistry, apiVersionOf, crdResources } from "./resources.ts";
import { type StructuralSchema, checkCustomResource } from "./schema.ts";
import { type RbacSource, forbiddenMessage, rbacAllows, verbOf } from "./rbac.ts";
import { type EventType, ObjectStore, type StoreEvent, type Watcher } from "./store.ts";
import { ClusterIpAllocator, applyDefaults, invalid, validate } from "./defaults.ts";
import { admitPod } from "./sidecar-injection.ts";
import { openApiV3GroupVersion, openApiV3Root } from "./openapi.ts";
import { decodeProtobufObject } from "./protobuf.ts";
import { isScalable, scaleDiscoveryEntry, scaled, toScale } from "./scale.ts";
import { EventRetention } from "./events.ts";
import { PodStreaming, STREAM_DISCOVERY, isStreamSubresource, rejectUpgrade, streamTarget, streamVerb } from "./streams.ts";

/** kube-apiserver's jwt.DefaultLeeway: a token bound to a deleted object is refused this long after its deletion. */
const BOUND_OBJECT_DELETION_LEEWAY_MS = 60_000;

export const GIT_VERSION = "v1.32.0-ambit-dev";
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** A body this much larger is not read to its end: the connection is cut instead of answering. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;
/** A watcher whose socket buffers more than this is closed, as the real server drops slow watchers. */
const MAX_WATCH_BACKLOG_BYTES = 16 * 1024 * 1024;
/** Events reaching a watcher within this window leave in one write (fewer TLS records under load). */
const WATCH_BATCH_MS = 20;

export interface User {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

interface Route {
  resource: ResourceType;
  key: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** `fieldValidation` of a write: what to do with fields the schema does not know, and the warnings to send back. */
interface FieldValidation {
  mode: "Ignore" | "Warn" | "Strict";
  warnings: string[];
}

function fieldValidationOf(url: URL): FieldValidation {
  const raw = url.searchParams.get("fieldValidation") ?? "Warn";
  if (raw !== "Ignore" && raw !== "Warn" && raw !== "Strict")
    throw new ApiError(400, "BadRequest", `fieldValidation must be one of Ignore, Warn or Strict, got "${raw}"`);
  return { mode: raw, warnings: [] };
}

const resourceKey = (r: ResourceType) => `${apiVersionOf(r)}/${r.plural}`;
const clone = <T>(v: T): T => structuredClone(v);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

function notFound(r: ResourceType, name: string): ApiError {
  return new ApiError(404, "NotFound", `${r.plural}${r.group ? "." + r.group : ""} "${name}" not found`, {
    name,
    kind: r.plural,
    ...(r.group ? { group: r.group } : {}),
  });
}

export interface ApiCoreOptions {
  serviceCidr: string;
  adminToken: string;
  signer: ServiceAccountTokenSigner;
  watchHistorySize: number;
  bookmarkIntervalMs: number;
  maxTokenExpirationSeconds?: number | undefined;
  /** How long an Event lives after its last write (kube-apiserver's --event-ttl, 1 h), and how many are kept. */
  eventTtlMs?: number | undefined;
  maxEvents?: number | undefined;
  logger: Logger | undefined;
}

/** Request handling independent of the listeners. */
export class ApiCore {
  readonly registry = new ResourceRegistry();
  readonly store: ObjectStore;
  /** pods/log, exec, attach and portforward, served by the kubelets that attach to it. */
  readonly streaming: PodStreaming;
  readonly #opts: ApiCoreOptions;
  readonly #ips: ClusterIpAllocator;
  readonly #watchResponses = new Set<ServerResponse>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #events: EventRetention;
  /** While set, new watch requests wait (test aid: lets a test change state before clients re-watch). */
  #watchGate: { promise: Promise<void>; release: () => void } | undefined;

  constructor(opts: ApiCoreOptions) {
    this.#opts = opts;
    this.store = new ObjectStore(opts.watchHistorySize);
    this.#events = new EventRetention(this.store, { ttlMs: opts.eventTtlMs ?? 3_600_000, maxEvents: opts.maxEvents ?? 10_000 });
    this.#ips = new ClusterIpAllocator(opts.serviceCidr);
    this.streaming = new PodStreaming((namespace, name) => this.store.get("v1/pods", namespace, name), opts.logger);
    this.#bootstrap();
  }

  #bootstrap(): void {
    const ns = this.registry.find("v1", "namespaces")!;
    for (const name of ["default", "kube-system", "kube-public", "kube-node-lease"]) {
      this.#createObject(ns, { apiVersion: "v1", kind: "Namespace", metadata: { name } }, undefined);
    }
    const svc = this.registry.find("v1", "services")!;
    this.#createObject(
      svc,
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "kubernetes", namespace: "default", labels: { component: "apiserver", provider: "kubernetes" } },
        spec: { clusterIP: this.#ips.first, ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: 6443 }] },
      },
      "default",
    );
  }

  // ---- HTTP entry ------------------------------------------------------------------------------

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://sandbox");
    const started = performance.now();
    try {
      const path = url.pathname.replace(/\/+$/, "") || "/";
      if (["/healthz", "/livez", "/readyz"].includes(path)) return this.#text(res, 200, "ok");
      if (path === "/version") return this.#json(res, 200, this.#version());
      const user = this.#authenticate(req);
      if (!user) throw new ApiError(401, "Unauthorized", "Unauthorized");
      await this.#route(req, res, url, path, user);
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : new ApiError(500, "InternalError", `Internal error occurred: ${(err as Error).message}`);
      if (apiErr.httpStatus >= 500)
        this.#opts.logger?.warn({ err: String(err), stack: (err as Error).stack, method: req.method, url: req.url }, "request failed");
      if (!res.headersSent) this.#json(res, apiErr.httpStatus, statusBody(apiErr));
      else res.end();
    } finally {
      this.#opts.logger?.debug({ method: req.method, url: req.url, status: res.statusCode, ms: Math.round(performance.now() - started) }, "request");
    }
  }

  /** An upgrade request (WebSocket or SPDY): pods/exec, attach and portforward; anything else is refused with a Status. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? "/", "https://sandbox");
    socket.on("error", (err) => this.#opts.logger?.debug({ err: String(err), url: req.url }, "upgraded connection error"));
    try {
      const user = this.#authenticate(req);
      if (!user) throw new ApiError(401, "Unauthorized", "Unauthorized");
      const target = streamTarget(url.pathname);
      if (!target) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
      const pods = this.registry.find("v1", "pods")!;
      this.#authorize(user, req.method ?? "GET", url, { resource: pods, key: resourceKey(pods), ...target });
      await this.streaming.upgrade(req, socket, head, url, target);
    } catch (err) {
      if (!(err instanceof ApiError) || err.httpStatus >= 500) this.#opts.logger?.warn({ err: String(err), url: req.url }, "upgrade request failed");
      rejectUpgrade(socket, err);
    }
  }

  #version() {
    return {
      major: "1",
      minor: "32",
      gitVersion: GIT_VERSION,
      gitCommit: "0000000",
      gitTreeState: "clean",
      buildDate: "2026-01-01T00:00:00Z",
      goVersion: "node",
      compiler: "node",
      platform: `linux/${process.arch === "x64" ? "amd64" : process.arch}`,
    };
  }

  #authenticate(req: IncomingMessage): User | undefined {
    const header = req.headers.authorization ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) return undefined;
    const token = m[1]!;
    if (token === this.#opts.adminToken) return { username: "ambit-dev-admin", groups: ["system:masters", "system:authenticated"] };
    const review = this.reviewToken(token, [API_SERVER_AUDIENCE]);
    return review.ok ? review.user : undefined;
  }

  /** Validates a service-account token the way TokenReview does, including the bound pod and service account. */
  reviewToken(token: string, audiences: string[]): { ok: true; user: User; audiences: string[] } | { ok: false; reason: string } {
    const verified = this.#opts.signer.verify(token, { audiences });
    if (!verified.ok) return { ok: false, reason: verified.reason };
    const t = verified.token;
    const sa = this.store.get("v1/serviceaccounts", t.namespace, t.serviceAccountName);
    if (!sa || sa.metadata.uid !== t.serviceAccountUid) return { ok: false, reason: `service account ${t.namespace}/${t.serviceAccountName} has been deleted` };
    const extra: Record<string, string[]> = {};
    if (t.pod) {
      const pod = this.store.get("v1/pods", t.namespace, t.pod.name);
      if (!pod || pod.metadata.uid !== t.pod.uid) return { ok: false, reason: `pod ${t.namespace}/${t.pod.name} bound to the token no longer exists` };
      // As kube-apiserver: a terminating pod's token stays valid through its grace period (deletionTimestamp is when
      // that ends) plus a minute's leeway, so its containers can still call the API while they shut down.
      if (pod.metadata.deletionTimestamp && Date.parse(pod.metadata.deletionTimestamp) < Date.now() - BOUND_OBJECT_DELETION_LEEWAY_MS) {
        return { ok: false, reason: `pod ${t.namespace}/${t.pod.name} bound to the token has been deleted` };
      }
      extra["authentication.kubernetes.io/pod-name"] = [t.pod.name];
      extra["authentication.kubernetes.io/pod-uid"] = [t.pod.uid];
    }
    if (t.node) extra["authentication.kubernetes.io/node-name"] = [t.node.name];
    return {
      ok: true,
      audiences: t.audiences,
      user: {
        username: `system:serviceaccount:${t.namespace}:${t.serviceAccountName}`,
        uid: t.serviceAccountUid,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${t.namespace}`, "system:authenticated"],
        extra,
      },
    };
  }

  // ---- routing ---------------------------------------------------------------------------------

  async #route(req: IncomingMessage, res: ServerResponse, url: URL, path: string, user: User): Promise<void> {
    const seg = path.split("/").filter(Boolean).map(decodeURIComponent);
    if (seg[0] === "openapi") return this.#openApi(req, res, seg);
    let group: string;
    let version: string | undefined;
    let rest: string[];
    if (seg[0] === "api") {
      if (seg.length === 1)
        return this.#json(res, 200, {
          kind: "APIVersions",
          versions: ["v1"],
          serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1" }],
        });
      group = "";
      version = seg[1];
      rest = seg.slice(2);
    } else if (seg[0] === "apis") {
      if (seg.length === 1) return this.#json(res, 200, this.#groupList());
      group = seg[1]!;
      if (seg.length === 2) {
        const g = this.#groupList().groups.find((x) => x.name === group);
        if (!g) throw new ApiError(404, "NotFound", `the server could not find the requested resource`);
        return this.#json(res, 200, { kind: "APIGroup", apiVersion: "v1", ...g });
      }
      version = seg[2];
      rest = seg.slice(3);
    } else {
      throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    }
    const apiVersion = group ? `${group}/${version}` : (version ?? "");
    if (rest.length === 0) return this.#json(res, 200, this.#resourceList(group, version ?? ""));

    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3 && this.registry.find(apiVersion, rest[2]!)?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = this.registry.find(apiVersion, rest[0]!);
    if (!resource || rest.length > 3) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    if (resource.namespaced && namespace === undefined && rest.length > 1)
      throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    const route: Route = {
      resource,
      key: resourceKey(resource),
      ...(namespace !== undefined ? { namespace } : {}),
      ...(rest[1] ? { name: rest[1] } : {}),
      ...(rest[2] ? { subresource: rest[2] } : {}),
    };
    const method = req.method ?? "GET";
    this.#authorize(user, method, url, route);
    const dryRun = url.searchParams.getAll("dryRun").includes("All");
    const fv = fieldValidationOf(url);

    if (resource.kind === "Pod" && route.name && isStreamSubresource(route.subresource))
      return this.streaming.request(req, res, url, { namespace: route.namespace!, name: route.name, subresource: route.subresource });
    if (
      route.subresource &&
      !(route.subresource === "status" && resource.status) &&
      !(route.subresource === "token" && resource.kind === "ServiceAccount") &&
      !(route.subresource === "finalize" && resource.kind === "Namespace") &&
      !(route.subresource === "scale" && isScalable(resource))
    ) {
      throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    }
    if (resource.createOnly && !(method === "POST" && !route.name))
      throw new ApiError(405, "MethodNotAllowed", `the server does not allow this method on the requested resource`);

    if (!route.name) {
      if (method === "GET") {
        if (isTrue(url.searchParams.get("watch"))) {
          if (this.#watchGate) await this.#watchGate.promise;
          return this.#watch(req, res, url, route);
        }
        return this.#list(req, res, url, route);
      }
      if (method === "POST") {
        const body = await readBody(req);
        if (resource.kind === "TokenReview") return this.#json(res, 201, this.#tokenReview(body));
        const created = this.#create(route, body, dryRun, fv);
        return this.#json(res, 201, created, undefined, fv.warnings);
      }
      if (method === "DELETE") return this.#json(res, 200, this.#deleteCollection(url, route, dryRun));
      throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    }
    if (route.subresource === "scale") return this.#scale(req, res, route, method, dryRun);
    switch (method) {
      case "GET": {
        const obj = this.#mustGet(route);
        return this.#respondObject(req, res, url, route.resource, obj, 200);
      }
      case "POST":
        if (route.subresource === "token") return this.#json(res, 201, this.#tokenRequest(route, await readBody(req)));
        throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
      case "PUT": {
        const updated = this.#update(route, await readBody(req), dryRun, fv);
        return this.#json(res, 200, updated, undefined, fv.warnings);
      }
      case "PATCH": {
        const type = patchTypeFromContentType(req.headers["content-type"]);
        const raw = await readRaw(req);
        const patched = this.#patch(route, raw, type, dryRun, fv);
        return this.#json(res, 200, patched, undefined, fv.warnings);
      }
      case "DELETE": {
        const raw = await readRaw(req);
        const options = raw.length ? (parseBody(raw, "application/json") as Record<string, unknown>) : {};
        const grace = url.searchParams.get("gracePeriodSeconds");
        if (grace !== null) options.gracePeriodSeconds = Number(grace);
        const policy = url.searchParams.get("propagationPolicy");
        if (policy) options.propagationPolicy = policy;
        return this.#json(res, 200, this.#delete(route, options, dryRun || (options.dryRun as string[] | undefined)?.includes("All") === true));
      }
      default:
        throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    }
  }

  #openApi(req: IncomingMessage, res: ServerResponse, seg: string[]): void {
    if (seg[1] === "v2") {
      // An empty document: kubectl 1.20-1.23 then skip client-side validation instead of failing.
      if (/protobuf/.test(req.headers.accept ?? "")) {
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": 0 });
        res.end();
        return;
      }
      return this.#json(res, 200, { swagger: "2.0", info: { title: "Kubernetes", version: GIT_VERSION }, paths: {}, definitions: {} });
    }
    if (seg[1] === "v3") {
      if (seg.length === 2) return this.#json(res, 200, openApiV3Root(this.registry.all()));
      const doc = openApiV3GroupVersion(this.registry.all(), seg.slice(2).join("/"));
      if (doc) return this.#json(res, 200, doc);
    }
    throw new ApiError(404, "NotFound", "the server could not find the requested resource");
  }

  #groupList() {
    const groups = [...this.registry.groups().entries()]
      .filter(([g]) => g !== "")
      .map(([name, versions]) => ({
        name,
        versions: versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
        preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
      }));
    return { kind: "APIGroupList", apiVersion: "v1", groups };
  }

  #resourceList(group: string, version: string) {
    const members = this.registry.all().filter((r) => r.group === group && r.version === version);
    if (members.length === 0) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    const verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    const resources: object[] = [];
    for (const r of members) {
      resources.push({
        name: r.plural,
        singularName: r.singular,
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: r.createOnly ? ["create"] : verbs,
        ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      });
      if (r.status) resources.push({ name: `${r.plural}/status`, singularName: "", namespaced: r.namespaced, kind: r.kind, verbs: ["get", "patch", "update"] });
      if (isScalable(r)) resources.push(scaleDiscoveryEntry(r.plural, r.namespaced));
      if (r.kind === "Pod" && !r.group) for (const sub of STREAM_DISCOVERY) resources.push({ singularName: "", namespaced: true, ...sub });
      if (r.kind === "ServiceAccount")
        resources.push({
          name: "serviceaccounts/token",
          singularName: "",
          namespaced: true,
          group: "authentication.k8s.io",
          version: "v1",
          kind: "TokenRequest",
          verbs: ["create"],
        });
    }
    return { kind: "APIResourceList", apiVersion: "v1", groupVersion: group ? `${group}/${version}` : version, resources };
  }

  // ---- reads -----------------------------------------------------------------------------------

  #mustGet(route: Route): KubeObject {
    const obj = this.store.get(route.key, route.resource.namespaced ? route.namespace : undefined, route.name!);
    if (!obj) throw notFound(route.resource, route.name!);
    return obj;
  }

  #matcher(url: URL, r: ResourceType): (o: KubeObject) => boolean {
    const labels = parseLabelSelector(url.searchParams.get("labelSelector") ?? undefined);
    const fields = parseFieldSelector(url.searchParams.get("fieldSelector") ?? undefined, r.kind);
    return (o) => labels(o.metadata.labels) && fields(o);
  }

  #list(req: IncomingMessage, res: ServerResponse, url: URL, route: Route): void {
    const match = this.#matcher(url, route.resource);
    let items = this.store.list(route.key, route.namespace).filter(match);
    const limit = Number(url.searchParams.get("limit") ?? 0);
    let continueToken: string | undefined;
    const cont = url.searchParams.get("continue");
    if (cont) {
      let offset: number;
      try {
        offset = (JSON.parse(Buffer.from(cont, "base64url").toString("utf8")) as { offset: number }).offset;
      } catch {
        throw new ApiError(400, "BadRequest", "continue key is not valid: illegal base64 data");
      }
      items = items.slice(offset);
      if (limit > 0 && items.length > limit) continueToken = Buffer.from(JSON.stringify({ offset: offset + limit })).toString("base64url");
    } else if (limit > 0 && items.length > limit) {
      continueToken = Buffer.from(JSON.stringify({ offset: limit })).toString("base64url");
    }
    if (limit > 0) items = items.slice(0, limit);
    const rv = String(this.store.resourceVersion);
    const table = tableRequest(req, url);
    if (table) {
      return this.#json(
        res,
        200,
        toTable(route.resource.kind, items, {
          includeObject: table,
          resourceVersion: rv,
          ...(route.resource.printerColumns ? { printerColumns: route.resource.printerColumns } : {}),
        }),
        "application/json;as=Table;v=v1;g=meta.k8s.io",
      );
    }
    this.#json(res, 200, {
      kind: `${route.resource.kind}List`,
      apiVersion: apiVersionOf(route.resource),
      metadata: { resourceVersion: rv, ...(continueToken ? { continue: continueToken } : {}) },
      items,
    });
  }

  #respondObject(req: IncomingMessage, res: ServerResponse, url: URL, r: ResourceType, obj: KubeObject, status: number): void {
    const table = tableRequest(req, url);
    if (table) {
      return this.#json(
        res,
        status,
        toTable(r.kind, [obj], {
          includeObject: table,
          resourceVersion: obj.metadata.resourceVersion ?? "",
          ...(r.printerColumns ? { printerColumns: r.printerColumns } : {}),
        }),
        "application/json;as=Table;v=v1;g=meta.k8s.io",
      );
    }
    this.#json(res, status, obj);
  }

  #watch(req: IncomingMessage, res: ServerResponse, url: URL, route: Route): void {
    const r = route.resource;
    const match = this.#matcher(url, r);
    const table = tableRequest(req, url);
    const rvParam = url.searchParams.get("resourceVersion") ?? "";
    const initialEvents = isTrue(url.searchParams.get("sendInitialEvents"));
    const bookmarks = isTrue(url.searchParams.get("allowWatchBookmarks"));
    const timeoutSeconds = Number(url.searchParams.get("timeoutSeconds") ?? 1800);
    res.writeHead(200, {
      "content-type": table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json",
      "cache-control": "no-cache, private",
      "transfer-encoding": "chunked",
    });
    res.flushHeaders();
    this.#watchResponses.add(res);

    // With many watchers, per-write TLS and syscall costs dominate: each watch sends what arrived within
    // WATCH_BATCH_MS in one write (bench/apiserver-watch.ts, 1,000 watches at 100 writes/s: p99 lag about 0.5 s unbatched, 0.1-0.15 s batched).
    let pending: string[] = [];
    const flush = (): void => {
      const lines = pending;
      pending = [];
      if (res.destroyed || lines.length === 0) return;
      if (res.writableLength > MAX_WATCH_BACKLOG_BYTES) {
        this.#opts.logger?.warn({ resource: route.key }, "closing a watch that cannot keep up");
        res.destroy();
        return;
      }
      res.write(lines.length === 1 ? lines[0]! : lines.join(""));
    };
    const write = (line: string): void => {
      if (pending.push(line) === 1) setTimeout(flush, WATCH_BATCH_MS);
    };
    const lineFor = (type: EventType, event: StoreEvent): string => {
      if (table)
        return (
          JSON.stringify({
            type,
            object: toTable(r.kind, [event.object], { includeObject: table, resourceVersion: event.object.metadata.resourceVersion ?? "" }),
          }) + "\n"
        );
      event.lines ??= new Map();
      let line = event.lines.get(type);
      if (!line) {
        line = JSON.stringify({ type, object: event.object }) + "\n";
        event.lines.set(type, line);
      }
      return line;
    };
    const watcher: Watcher = {
      resource: route.key,
      ...(route.namespace !== undefined ? { namespace: route.namespace } : {}),
      matches: match,
      deliver: (type, event) => write(lineFor(type, event)),
    };
    const bookmark = (extra: Record<string, string> = {}) =>
      write(
        JSON.stringify({
          type: "BOOKMARK",
          object: {
            kind: r.kind,
            apiVersion: apiVersionOf(r),
            metadata: { resourceVersion: String(this.store.resourceVersion), ...(Object.keys(extra).length ? { annotations: extra } : {}) },
          },
        }) + "\n",
      );

    const synthetic = initialEvents || rvParam === "" || rvParam === "0";
    if (synthetic) {
      const from = this.store.resourceVersion;
      for (const obj of this.store.list(route.key, route.namespace).filter(match))
        write(lineFor("ADDED", { rv: 0, type: "ADDED", resource: route.key, object: obj }));
      this.store.watch(watcher, from);
      if (initialEvents) bookmark({ "k8s.io/initial-events-end": "true" });
    } else {
      const from = Number(rvParam);
      if (!Number.isFinite(from) || !this.store.watch(watcher, from)) {
        const oldest = this.store.compactedResourceVersion + 1;
        this.#opts.logger?.info({ resource: route.key, resourceVersion: rvParam, oldest }, "watch resourceVersion is too old; the client must relist");
        write(
          JSON.stringify({
            type: "ERROR",
            object: {
              kind: "Status",
              apiVersion: "v1",
              metadata: {},
              status: "Failure",
              message: `too old resource version: ${rvParam} (${oldest})`,
              reason: "Expired",
              code: 410,
            },
          }) + "\n",
        );
        this.#watchResponses.delete(res);
        flush();
        res.end();
        return;
      }
    }
    const bookmarkTimer = bookmarks ? setInterval(() => bookmark(), this.#opts.bookmarkIntervalMs) : undefined;
    const timeout = setTimeout(() => {
      flush();
      res.end();
    }, timeoutSeconds * 1000);
    const cleanup = () => {
      this.store.unwatch(watcher);
      clearInterval(bookmarkTimer);
      clearTimeout(timeout);
      this.#watchResponses.delete(res);
    };
    res.on("close", cleanup);
    req.on("close", cleanup);
  }

  /** Holds new watch requests until the returned function is called (test aid). */
  holdWatches(): () => void {
    let release = () => {};
    const promise = new Promise<void>((resolve) => (release = resolve));
    this.#watchGate = { promise, release };
    return () => {
      this.#watchGate = undefined;
      release();
    };
  }

  /** Closes every open watch (test aid and shutdown). */
  dropWatches(): void {
    for (const res of this.#watchResponses) res.destroy();
    this.#watchResponses.clear();
  }

  // ---- writes ----------------------------------------------------------------------------------

  #checkBody(route: Route, body: unknown): KubeObject {
    if (!body || typeof body !== "object" || Array.isArray(body)) throw new ApiError(400, "BadRequest", "the request body must be a JSON object");
    const obj = body as KubeObject;
    const r = route.resource;
    if (obj.kind !== undefined && obj.kind !== r.kind)
      throw new ApiError(400, "BadRequest", `the kind of the provided object (${obj.kind}) does not match the resource (${r.kind})`);
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(r))
      throw new ApiError(400, "BadRequest", `the API version of the provided object (${obj.apiVersion}) does not match the request (${apiVersionOf(r)})`);
    obj.kind = r.kind;
    obj.apiVersion = apiVersionOf(r);
    obj.metadata = (obj.metadata && typeof obj.metadata === "object" ? obj.metadata : {}) as KubeObject["metadata"];
    if (r.namespaced) {
      if (obj.metadata.namespace && route.namespace && obj.metadata.namespace !== route.namespace) {
        throw new ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
      }
      obj.metadata.namespace = route.namespace ?? obj.metadata.namespace;
    } else {
      delete obj.metadata.namespace;
    }
    return obj;
  }

  #create(route: Route, body: unknown, dryRun: boolean, fv?: FieldValidation): KubeObject {
    const r = route.resource;
    if (r.namespaced && route.namespace === undefined) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    const obj = this.#checkBody(route, body);
    if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
    if (!obj.metadata.name) throw invalid(r.kind, "", "metadata.name", "Required value: name or generateName is required");
    if (r.namespaced) {
      const ns = this.store.get("v1/namespaces", undefined, route.namespace!);
      if (!ns) throw new ApiError(404, "NotFound", `namespaces "${route.namespace}" not found`, { name: route.namespace!, kind: "namespaces" });
      if (ns.metadata.deletionTimestamp) {
        throw new ApiError(
          403,
          "Forbidden",
          `${r.plural} "${obj.metadata.name}" is forbidden: unable to create new content in namespace ${route.namespace} because it is being terminated`,
          { name: obj.metadata.name, kind: r.plural },
        );
      }
    }
    const admitted = r.kind === "Pod" ? admitPod(obj, this.store.get("v1/namespaces", undefined, route.namespace!)) : obj;
    return this.#createObject(r, admitted, route.namespace, dryRun, fv);
  }

  #createObject(r: ResourceType, obj: KubeObject, namespace: string | undefined, dryRun = false, fv?: FieldValidation): KubeObject {
    const key = resourceKey(r);
    const name = obj.metadata.name!;
    if (this.store.get(key, r.namespaced ? namespace : undefined, name)) {
      throw new ApiError(409, "AlreadyExists", `${r.plural}${r.group ? "." + r.group : ""} "${name}" already exists`, {
        name,
        kind: r.plural,
        ...(r.group ? { group: r.group } : {}),
      });
    }
    applyDefaults(obj);
    validate(obj);
    if (r.crd) this.#checkSchema(r, obj, fv);
    Object.assign(obj.metadata, { uid: randomUUID(), creationTimestamp: now(), generation: 1 });
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.deletionGracePeriodSeconds;
    if (r.kind === "Service") this.#assignClusterIp(obj, undefined, dryRun);
    if (r.kind === "CustomResourceDefinition") this.#acceptCrd(obj);
    if (dryRun) return obj;
    this.store.put(key, obj);
    if (r.kind === "CustomResourceDefinition") for (const res of crdResources(obj)) this.registry.add(res);
    if (r.kind === "Namespace") {
      this.#createObject(
        this.registry.find("v1", "serviceaccounts")!,
        { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: name } },
        name,
      );
    }
    return obj;
  }

  #assignClusterIp(obj: KubeObject, existing: KubeObject | undefined, dryRun: boolean): void {
    const spec = obj.spec;
    const requested: string | undefined = spec.clusterIP ?? spec.clusterIPs?.[0];
    if (existing) {
      const current = existing.spec?.clusterIP;
      if (requested && requested !== current) throw invalid("Service", obj.metadata.name ?? "", "spec.clusterIPs[0]", "Invalid value: field is immutable");
      spec.clusterIP = current;
      spec.clusterIPs = existing.spec?.clusterIPs ?? [current];
      return;
    }
    if (requested === "None") {
      spec.clusterIPs = ["None"];
      return;
    }
    if (spec.type === "ExternalName") return;
    try {
      const ip = dryRun ? (requested ?? "") : this.#ips.allocate(requested);
      spec.clusterIP = ip;
      spec.clusterIPs = [ip];
    } catch (err) {
      throw invalid(
        "Service",
        obj.metadata.name ?? "",
        "spec.clusterIPs",
        `Invalid value: ${JSON.stringify([requested])}: failed to allocate IP ${requested ?? ""}: ${(err as Error).message}`,
      );
    }
  }

  /**
   * A custom resource against its CRD's schema for the version used: type, enum or required errors are refused
   * (422); unknown fields are pruned, and with fieldValidation=Strict (kubectl's default) refused (400), with Warn
   * (the server's default) reported as warnings.
   */
  #checkSchema(r: ResourceType, obj: KubeObject, fv: FieldValidation | undefined): void {
    const crds = this.registry.find("apiextensions.k8s.io/v1", "customresourcedefinitions")!;
    const crd = this.store.get(resourceKey(crds), undefined, r.crd!);
    const version = (crd?.spec?.versions ?? []).find((v: { name: string }) => v.name === r.version) as
      { schema?: { openAPIV3Schema?: StructuralSchema } } | undefined;
    const schema = version?.schema?.openAPIV3Schema;
    if (!schema) return;
    const found = checkCustomResource(obj, schema);
    const name = obj.metadata.name ?? "";
    if (found.errors.length) {
      throw new ApiError(
        422,
        "Invalid",
        `${r.kind}.${r.group} "${name}" is invalid: ${found.errors.length === 1 ? found.errors[0] : `[${found.errors.join(", ")}]`}`,
        {
          name,
          kind: r.kind,
          group: r.group,
          causes: found.errors.map((e) => ({ reason: "FieldValueInvalid", message: e.slice(e.indexOf(": ") + 2), field: e.slice(0, e.indexOf(": ")) })),
        },
      );
    }
    if (!found.unknown.length || !fv || fv.mode === "Ignore") return;
    if (fv.mode === "Strict") {
      throw new ApiError(
        400,
        "BadRequest",
        `${r.kind} in version "${r.version}" cannot be handled as a ${r.kind}: strict decoding error: ${found.unknown.map((u) => `unknown field "${u}"`).join(", ")}`,
      );
    }
    fv.warnings.push(...found.unknown.map((u) => `unknown field "${u}"`));
  }

  /**
   * RBAC, as kube-apiserver's authorizer: system:masters (the admin kubeconfig) may do anything; everyone else what
   * their Roles and ClusterRoles grant (403 Forbidden otherwise). A list or watch narrowed to one object by
   * `fieldSelector=metadata.name=<n>` counts as naming it, so rules with resourceNames can allow it, as in Kubernetes.
   */
  #authorize(user: User, method: string, url: URL, route: Route): void {
    if (user.groups.includes("system:masters")) return;
    const byField = /(?:^|,)metadata\.name=([^,]+)/.exec(url.searchParams.get("fieldSelector") ?? "")?.[1];
    const attributes = {
      verb:
        (route.resource.kind === "Pod" ? streamVerb(route.subresource) : undefined) ??
        verbOf(method, route.name !== undefined, isTrue(url.searchParams.get("watch"))),
      apiGroup: route.resource.group,
      resource: route.resource.plural,
      subresource: route.subresource,
      namespace: route.resource.namespaced ? route.namespace : undefined,
      name: route.name ?? byField,
    };
    if (rbacAllows(this.#rbacSource, user, attributes)) return;
    throw new ApiError(403, "Forbidden", forbiddenMessage(user, attributes), {
      ...(attributes.name ? { name: attributes.name } : {}),
      kind: route.resource.plural,
      ...(route.resource.group ? { group: route.resource.group } : {}),
    });
  }

  readonly #rbacSource: RbacSource = {
    clusterRoleBindings: () => this.store.list("rbac.authorization.k8s.io/v1/clusterrolebindings"),
    roleBindings: (namespace) => this.store.list("rbac.authorization.k8s.io/v1/rolebindings", namespace),
    clusterRole: (name) => this.store.get("rbac.authorization.k8s.io/v1/clusterroles", undefined, name),
    role: (namespace, name) => this.store.get("rbac.authorization.k8s.io/v1/roles", namespace, name),
  };

  #acceptCrd(crd: KubeObject): void {
    const names = crd.spec?.names ?? {};
    const t = now();
    crd.status = {
      acceptedNames: {
        kind: names.kind,
        listKind: names.listKind ?? `${names.kind}List`,
        plural: names.plural,
        singular: names.singular ?? String(names.kind).toLowerCase(),
        ...(names.shortNames ? { shortNames: names.shortNames } : {}),
      },
      conditions: [
        { type: "NamesAccepted", status: "True", reason: "NoConflicts", message: "no conflicts found", lastTransitionTime: t },
        { type: "Established", status: "True", reason: "InitialNamesAccepted", message: "the initial names have been accepted", lastTransitionTime: t },
      ],
      storedVersions: (crd.spec?.versions ?? []).filter((v: { storage?: boolean }) => v.storage).map((v: { name: string }) => v.name),
    };
  }

  #update(route: Route, body: unknown, dryRun: boolean, fv?: FieldValidation): KubeObject {
    const existing = this.#mustGet(route);
    const obj = this.#checkBody(route, body);
    if (obj.metadata.name !== undefined && obj.metadata.name !== route.name) {
      throw new ApiError(400, "BadRequest", `the name of the object (${obj.metadata.name}) does not match the name on the URL (${route.name})`);
    }
    obj.metadata.name = route.name;
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== existing.metadata.resourceVersion) throw this.#conflict(route);
    return this.#replace(route, existing, obj, dryRun, fv);
  }

  #conflict(route: Route): ApiError {
    const r = route.resource;
    return new ApiError(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${r.plural}${r.group ? "." + r.group : ""} "${route.name}": the object has been modified; please apply your changes to the latest version and try again`,
      {
        name: route.name!,
        kind: r.plural,
        ...(r.group ? { group: r.group } : {}),
      },
    );
  }

  /** Common path of PUT and PATCH: subresource rules, immutable metadata, generation, lifecycle side effects. */
  #replace(route: Route, existing: KubeObject, incoming: KubeObject, dryRun: boolean, fv?: FieldValidation): KubeObject {
    const r = route.resource;
    let next: KubeObject;
    if (route.subresource === "status") {
      next = { ...clone(existing), status: incoming.status };
      if (r.crd) this.#checkSchema(r, next, fv);
    } else {
      next = incoming;
      if (r.status) next.status = clone(existing.status);
      // Fields only the server owns.
      for (const field of ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] as const) {
        const value = existing.metadata[field];
        if (value === undefined) delete next.metadata[field];
        else (next.metadata as Record<string, unknown>)[field] = value;
      }
      if (r.kind === "Namespace" && existing.status?.phase === "Terminating") next.status = clone(existing.status);
      applyDefaults(next);
      validate(next);
      if (r.crd) this.#checkSchema(r, next, fv);
      if (r.kind === "Service") this.#assignClusterIp(next, existing, dryRun);
      if (r.kind === "CustomResourceDefinition") this.#acceptCrd(next);
      const strip = (o: KubeObject) => JSON.stringify({ ...o, metadata: undefined, status: undefined });
      next.metadata.generation = (existing.metadata.generation ?? 1) + (strip(existing) !== strip(next) ? 1 : 0);
    }
    if (dryRun) return next;
    // An object waiting for its finalizers goes once the last one is removed.
    if (
      next.metadata.deletionTimestamp &&
      (next.metadata.finalizers ?? []).length === 0 &&
      (existing.metadata.finalizers ?? []).length > 0 &&
      r.kind !== "Pod" &&
      r.kind !== "Namespace"
    ) {
      return this.#removeNow(r, next);
    }
    this.store.put(route.key, next);
    if (r.kind === "CustomResourceDefinition") for (const res of crdResources(next)) this.registry.add(res);
    // A terminating pod that has stopped running is gone, as the real kubelet's final status update achieves.
    if (r.kind === "Pod" && next.metadata.deletionTimestamp && (next.status?.phase === "Succeeded" || next.status?.phase === "Failed"))
      this.#removeNow(r, next);
    return next;
  }

  #patch(route: Route, raw: Buffer, type: ReturnType<typeof patchTypeFromContentType>, dryRun: boolean, fv?: FieldValidation): KubeObject {
    const existing = this.#mustGet(route);
    const patched = applyPatch(existing, raw, type, route.resource.kind);
    if (patched.metadata.name !== existing.metadata.name || (patched.metadata.namespace ?? undefined) !== (existing.metadata.namespace ?? undefined)) {
      throw new ApiError(400, "BadRequest", "a patch may not change the object's name or namespace");
    }
    if (patched.metadata.resourceVersion !== existing.metadata.resourceVersion) throw this.#conflict(route);
    return this.#replace(route, existing, this.#checkBody(route, patched), dryRun, fv);
  }

  /** `/scale` (kubectl scale): spec.replicas read and written through an autoscaling/v1 Scale. */
  async #scale(req: IncomingMessage, res: ServerResponse, route: Route, method: string, dryRun: boolean): Promise<void> {
    const existing = this.#mustGet(route);
    if (method === "GET") return this.#json(res, 200, toScale(existing));
    let scale: unknown;
    if (method === "PUT") scale = await readBody(req);
    else if (method === "PATCH") scale = applyPatch(toScale(existing), await readRaw(req), patchTypeFromContentType(req.headers["content-type"]), "Scale");
    else throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    const updated = this.#replace(route, existing, scaled(existing, scale, route.resource.plural, route.resource.group), dryRun);
    return this.#json(res, 200, toScale(updated));
  }

  #delete(route: Route, options: Record<string, unknown>, dryRun: boolean): KubeObject {
    const r = route.resource;
    const existing = this.#mustGet(route);
    const pre = (options.preconditions ?? {}) as { uid?: string; resourceVersion?: string };
    if (pre.uid && pre.uid !== existing.metadata.uid) {
      throw new ApiError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${r.plural} "${route.name}": Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid}`,
      );
    }
    if (pre.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion) throw this.#conflict(route);
    if (dryRun) return existing;
    return this.#deleteObject(r, existing, options);
  }

  #deleteObject(r: ResourceType, existing: KubeObject, options: Record<string, unknown> = {}): KubeObject {
    const key = resourceKey(r);
    if (r.kind === "Namespace") return this.#terminateNamespace(existing);
    if (r.kind === "Pod" && existing.spec?.nodeName && existing.status?.phase !== "Succeeded" && existing.status?.phase !== "Failed") {
      const grace = typeof options.gracePeriodSeconds === "number" ? options.gracePeriodSeconds : Number(existing.spec?.terminationGracePeriodSeconds ?? 30);
      if (grace > 0 || !existing.metadata.deletionTimestamp) {
        if (grace === 0 && existing.metadata.deletionTimestamp) return this.#removeNow(r, existing);
        if (grace === 0) return this.#removeNow(r, existing);
        if (existing.metadata.deletionTimestamp) return existing;
        const marked = clone(existing);
        marked.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
        marked.metadata.deletionGracePeriodSeconds = grace;
        this.store.put(key, marked);
        // Safety net when no kubelet finishes the deletion (its node is gone).
        this.#after((grace + 5) * 1000, () => {
          const still = this.store.get(key, marked.metadata.namespace, marked.metadata.name!);
          if (still && still.metadata.uid === marked.metadata.uid) this.#removeNow(r, still);
        });
        return marked;
      }
      return this.#removeNow(r, existing);
    }
    if ((existing.metadata.finalizers ?? []).length > 0) {
      if (existing.metadata.deletionTimestamp) return existing;
      const marked = clone(existing);
      marked.metadata.deletionTimestamp = now();
      marked.metadata.deletionGracePeriodSeconds = 0;
      this.store.put(key, marked);
      return marked;
    }
    const gone = this.#removeNow(r, existing, options.propagationPolicy === "Orphan");
    return gone;
  }

  #removeNow(r: ResourceType, obj: KubeObject, orphan = false): KubeObject {
    const key = resourceKey(r);
    if (!this.store.get(key, obj.metadata.namespace, obj.metadata.name!)) return obj;
    const gone = this.store.remove(key, obj);
    if (r.kind === "Service") this.#ips.release(obj.spec?.clusterIP);
    if (r.kind === "CustomResourceDefinition") {
      for (const res of crdResources(obj)) {
        this.store.dropResource(resourceKey(res));
        this.registry.remove(apiVersionOf(res), res.plural);
      }
    }
    if (!orphan) this.#collectGarbage(obj.metadata.uid);
    if (obj.metadata.namespace) this.#maybeFinishNamespace(obj.metadata.namespace);
    return gone;
  }

  /** Background garbage collection: deletes every object whose owner references point at `uid`. */
  #collectGarbage(uid: string | undefined): void {
    if (!uid) return;
    for (const r of this.registry.all()) {
      for (const obj of this.store.list(resourceKey(r))) {
        const refs = obj.metadata.ownerReferences ?? [];
        if (!refs.some((ref) => ref.uid === uid)) continue;
        if (refs.some((ref) => ref.uid !== uid && this.#ownerExists(ref.uid))) continue;
        if (!obj.metadata.deletionTimestamp || (r.kind !== "Pod" && (obj.metadata.finalizers ?? []).length === 0)) this.#deleteObject(r, obj, {});
      }
    }
  }

  #ownerExists(uid: string): boolean {
    for (const r of this.registry.all()) for (const obj of this.store.list(resourceKey(r))) if (obj.metadata.uid === uid) return true;
    return false;
  }

  #terminateNamespace(ns: KubeObject): KubeObject {
    const name = ns.metadata.name!;
    let current = ns;
    if (!ns.metadata.deletionTimestamp) {
      current = clone(ns);
      current.metadata.deletionTimestamp = now();
      current.status = { ...(current.status ?? {}), phase: "Terminating" };
      this.store.put("v1/namespaces", current);
    }
    for (const r of this.registry.all().filter((x) => x.namespaced)) {
      for (const obj of this.store.list(resourceKey(r), name)) if (!obj.metadata.deletionTimestamp) this.#deleteObject(r, obj, {});
    }
    this.#maybeFinishNamespace(name);
    return this.store.get("v1/namespaces", undefined, name) ?? current;
  }

  #maybeFinishNamespace(name: string): void {
    const ns = this.store.get("v1/namespaces", undefined, name);
    if (!ns?.metadata.deletionTimestamp) return;
    const remaining = this.registry.all().some((r) => r.namespaced && this.store.list(resourceKey(r), name).length > 0);
    if (!remaining) this.store.remove("v1/namespaces", ns);
  }

  #deleteCollection(url: URL, route: Route, dryRun: boolean) {
    const match = this.#matcher(url, route.resource);
    const items = this.store.list(route.key, route.namespace).filter(match);
    if (!dryRun) for (const obj of items) this.#deleteObject(route.resource, obj, {});
    return {
      kind: `${route.resource.kind}List`,
      apiVersion: apiVersionOf(route.resource),
      metadata: { resourceVersion: String(this.store.resourceVersion) },
      items,
    };
  }

  #after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.#timers.add(t);
  }

  // ---- authentication API ----------------------------------------------------------------------

  #tokenRequest(route: Route, body: unknown): object {
    const sa = this.#mustGet(route);
    const spec = ((body as { spec?: Record<string, unknown> } | undefined)?.spec ?? {}) as {
      audiences?: string[];
      expirationSeconds?: number;
      boundObjectRef?: { kind?: string; name?: string; uid?: string };
    };
    const requested = spec.expirationSeconds ?? 3600;
    if (requested < 600)
      throw invalid("TokenRequest", sa.metadata.name ?? "", "spec.expirationSeconds", "Invalid value: may not specify a duration less than 10 minutes");
    let pod: { name: string; uid: string } | undefined;
    let node: { name: string; uid: string } | undefined;
    const ref = spec.boundObjectRef;
    if (ref) {
      if (ref.kind !== "Pod")
        throw invalid("TokenRequest", sa.metadata.name ?? "", "spec.boundObjectRef.kind", `Unsupported value: "${ref.kind}": supported values: "Pod"`);
      const p = this.store.get("v1/pods", route.namespace, ref.name ?? "");
      if (!p || (ref.uid && p.metadata.uid !== ref.uid))
        throw new ApiError(404, "NotFound", `pods "${ref.name}" not found`, { name: ref.name ?? "", kind: "pods" });
      if ((p.spec?.serviceAccountName ?? "default") !== sa.metadata.name) {
        throw new ApiError(400, "BadRequest", `cannot bind token for serviceaccount "${sa.metadata.name}" to pod running with different serviceaccount name`);
      }
      pod = { name: p.metadata.name!, uid: p.metadata.uid! };
      const nodeName = p.spec?.nodeName as string | undefined;
      const n = nodeName ? this.store.get("v1/nodes", undefined, nodeName) : undefined;
      if (n) node = { name: n.metadata.name!, uid: n.metadata.uid! };
    }
    // Capped, not refused, as kube-apiserver does: the answer's expirationTimestamp tells the caller what it got.
    const expirationSeconds = Math.min(requested, this.#opts.maxTokenExpirationSeconds ?? requested);
    const audiences = spec.audiences && spec.audiences.length > 0 ? spec.audiences : [API_SERVER_AUDIENCE];
    const issued = this.#opts.signer.issue({
      namespace: route.namespace!,
      serviceAccountName: sa.metadata.name!,
      serviceAccountUid: sa.metadata.uid!,
      audiences,
      expirationSeconds,
      ...(pod ? { pod } : {}),
      ...(node ? { node } : {}),
    });
    return {
      kind: "TokenRequest",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { name: sa.metadata.name, namespace: route.namespace, creationTimestamp: null },
      spec: { audiences, expirationSeconds, boundObjectRef: ref ?? null },
      status: { token: issued.token, expirationTimestamp: issued.expirationTimestamp },
    };
  }

  #tokenReview(body: unknown): object {
    const spec = ((body as { spec?: { token?: string; audiences?: string[] } } | undefined)?.spec ?? {}) as { token?: string; audiences?: string[] };
    if (!spec.token) throw invalid("TokenReview", "", "spec.token", "Required value");
    const requested = spec.audiences && spec.audiences.length > 0 ? spec.audiences : [API_SERVER_AUDIENCE];
    const result = spec.token === this.#opts.adminToken ? undefined : this.reviewToken(spec.token, requested);
    const status = result?.ok
      ? { authenticated: true, user: result.user, audiences: result.audiences }
      : { authenticated: false, user: {}, error: result ? result.reason : "the admin token is not a service-account token" };
    return { kind: "TokenReview", apiVersion: "authentication.k8s.io/v1", metadata: { creationTimestamp: null }, spec, status };
  }

  // ---- plumbing --------------------------------------------------------------------------------

  #json(res: ServerResponse, status: number, body: unknown, contentType = "application/json", warnings: string[] = []): void {
    const payload = JSON.stringify(body);
    // RFC 7234 warnings, as kube-apiserver sends them and kubectl prints them ("Warning: unknown field ...").
    if (warnings.length)
      res.setHeader(
        "warning",
        warnings.map((w) => `299 - ${JSON.stringify(w)}`),
      );
    res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(payload), "cache-control": "no-cache, private" });
    res.end(payload);
  }

  #text(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
    res.end(body);
  }

  close(): void {
    this.streaming.close();
    this.dropWatches();
    this.#events.close();
    for (const t of this.#timers) clearTimeout(t);
  }
}

const isTrue = (v: string | null) => v === "true" || v === "1";

function randomSuffix(): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  return [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** The includeObject policy when the client asked for server-side printing (kubectl get), else undefined. */
function tableRequest(req: IncomingMessage, url: URL): IncludeObject | undefined {
  const accept = req.headers.accept ?? "";
  if (!/as=Table/.test(accept) || !/g=meta\.k8s\.io/.test(accept)) return undefined;
  const include = url.searchParams.get("includeObject");
  return include === "None" || include === "Object" ? include : "Metadata";
}

/**
 * The body, up to MAX_BODY_BYTES. A larger one is read to its end and dropped, then answered 413 as kube-apiserver
 * does: destroying the request instead resets the connection before the client can read any answer. Past
 * MAX_DRAIN_BYTES the connection is cut after all.
 */
function readRaw(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_DRAIN_BYTES) req.destroy();
      else if (size <= MAX_BODY_BYTES) chunks.push(c);
      else chunks.length = 0;
    });
    req.on("end", () => {
      if (size > MAX_BODY_BYTES)
        reject(
          new ApiError(
            413,
            "RequestEntityTooLarge",
            `Request entity too large: the request body is ${size} bytes, more than the ${MAX_BODY_BYTES} the API server accepts; keep large data out of API objects (Kubernetes limits objects to about 1.5 MiB)`,
          ),
        );
      else resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}

function parseBody(raw: Buffer, contentType: string | undefined): unknown {
  // kubectl's generators (create namespace/deployment/secret..., create token) send protobuf; the answer is JSON.
  if (/protobuf/.test(contentType ?? "")) return decodeProtobufObject(raw);
  const text = raw.toString("utf8");
  try {
    return /yaml/.test(contentType ?? "") ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new ApiError(
      400,
      "BadRequest",
      `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (${(err as Error).message})`,
    );
  }
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  return parseBody(await readRaw(req), req.headers["content-type"]);
}

export interface Listeners {
  url: string;
  close(): Promise<void>;
}

/** Serves `core` over HTTPS on host:port and, when given, on a unix socket (stale socket files are replaced). */
export async function listen(core: ApiCore, tls: { certPem: string; keyPem: string }, host: string, port: number, unixSocketPath?: string): Promise<Listeners> {
  const handler = (req: IncomingMessage, res: ServerResponse) => void core.handle(req, res);
  const servers: https.Server[] = [];
  const tcp = https.createServer({ cert: tls.certPem, key: tls.keyPem }, handler);
  tcp.keepAliveTimeout = 65_000;
  servers.push(tcp);
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => resolve());
  });
  if (unixSocketPath) {
    await fs.rm(unixSocketPath, { force: true });
    const unix = https.createServer({ cert: tls.certPem, key: tls.keyPem }, handler);
    servers.push(unix);
    await new Promise<void>((resolve, reject) => {
      unix.once("error", reject);
      unix.listen(unixSocketPath, () => resolve());
    });
    await fs.chmod(unixSocketPath, 0o600);
  }
  // Every accepted socket, including ones still in their TLS handshake: closeAllConnections() only knows the
  // ones that reached HTTP, and close() would wait forever for a client that is still connecting.
  const sockets = new Set<Socket>();
  for (const s of servers) {
    s.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => void core.handleUpgrade(req, socket, head));
    s.on("connection", (socket: Socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
  }
  const address = tcp.address();
  const actualPort = typeof address === "object" && address ? address.port : port;
  return {
    url: `https://${host}:${actualPort}`,
    close: async () => {
      core.close();
      const closed = Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      for (const socket of sockets) socket.destroy();
      await closed;
      if (unixSocketPath) await fs.rm(unixSocketPath, { force: true });
    },
  };
}
