// Applies a rule's (then a backend's) filters to a request: header changes, path and host rewrites, redirects with their Location, mirrors.
import type { BackendTarget, CompiledFilter, HeaderModifier, PathModifier, RedirectStatusCode } from "../../contract/routes.ts";
import type { HeaderMap, RandomSource } from "./match.ts";

/** The request as it will leave the waypoint. */
export interface ForwardRequest {
  method: string;
  /** Path and optional `?query`. */
  path: string;
  /** Host header (HTTP/1.1) or :authority (HTTP/2). */
  authority: string;
  /** Lower-case names. */
  headers: HeaderMap;
}

export interface FilterState {
  request: ForwardRequest;
  /** To apply, in order, to the response headers (`applyHeaderModifier`). */
  responseModifiers: HeaderModifier[];
  /** Where to send a copy of the request; responses from mirrors are ignored. */
  mirrors: BackendTarget[];
}

export interface Redirect {
  status: RedirectStatusCode;
  location: string;
  responseModifiers: HeaderModifier[];
}

export interface FilterContext {
  /** The scheme the client used towards the Service. */
  scheme: "http" | "https";
  /** The Service port the request was sent to: a redirect keeps it unless it changes scheme or port (the "listener port"). */
  servicePort: number;
  /** The PathPrefix value of the match that selected the rule, for ReplacePrefixMatch. */
  matchedPrefix: string | undefined;
  random: RandomSource;
}

/** Set, add (a further value, kept as a separate line) and remove, all by case-insensitive name; returns a new map. */
export function applyHeaderModifier(headers: HeaderMap, modifier: HeaderModifier): HeaderMap {
  const out: HeaderMap = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value;
  for (const { name, value } of modifier.set) out[name] = value;
  for (const { name, value } of modifier.add) {
    const current = out[name];
    out[name] = current === undefined ? value : Array.isArray(current) ? [...current, value] : [current, value];
  }
  for (const name of modifier.remove) delete out[name];
  return out;
}

const splitTarget = (target: string): { path: string; query: string } => {
  const q = target.indexOf("?");
  return q === -1 ? { path: target, query: "" } : { path: target.slice(0, q), query: target.slice(q) };
};

/**
 * Replaces the element-wise `prefix` of `path` (which it matched) with `replacement`. Trailing slashes of prefix and
 * replacement do not count, the rest of the path keeps its own, and an empty result is "/": the API's table
 * (/foo/bar with /foo → /xyz gives /xyz/bar, /foo/ gives /xyz/, /foo with "" gives /).
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  const trimmedPrefix = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  const rest = path.slice(trimmedPrefix.length);
  const head = replacement.endsWith("/") ? replacement.slice(0, -1) : replacement;
  const joined = head + rest;
  return joined === "" ? "/" : joined.startsWith("/") ? joined : `/${joined}`;
}

function modifyPath(modifier: PathModifier, path: string, matchedPrefix: string | undefined): string {
  if (modifier.type === "ReplaceFullPath") return modifier.value;
  // Validation guarantees a single PathPrefix match for ReplacePrefixMatch; without one, nothing is replaced.
  return matchedPrefix === undefined ? path : replacePrefix(path, matchedPrefix, modifier.value);
}

/** The host part of an authority: "echo:8080" → "echo", "[::1]:80" → "[::1]". */
function hostOf(authority: string): string {
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    return end === -1 ? authority : authority.slice(0, end + 1);
  }
  const colon = authority.lastIndexOf(":");
  return colon === -1 ? authority : authority.slice(0, colon);
}

/**
 * The Location of a RequestRedirect: scheme, host and path from the filter or else the request; the port from the
 * filter, else the scheme's well-known port when the filter sets a scheme, else the Service port; the port is left out
 * when it is the scheme's default (http 80, https 443). The query is kept.
 */
export function redirectLocation(filter: Extract<CompiledFilter, { type: "RequestRedirect" }>, request: ForwardRequest, ctx: FilterContext): string {
  const scheme = filter.scheme ?? ctx.scheme;
  const host = filter.hostname ?? hostOf(request.authority);
  const port = filter.port ?? (filter.scheme !== undefined ? (scheme === "https" ? 443 : 80) : ctx.servicePort);
  const defaultPort = (scheme === "http" && port === 80) || (scheme === "https" && port === 443);
  const { path, query } = splitTarget(request.path);
  const newPath = filter.path === undefined ? path : modifyPath(filter.path, path, ctx.matchedPrefix);
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `${scheme}://${bracketed}${defaultPort ? "" : `:${port}`}${newPath}${query}`;
}

/** Applies filters in order; a RequestRedirect ends processing with the redirect to answer. */
export function applyFilters(filters: CompiledFilter[], state: FilterState, ctx: FilterContext): FilterState | Redirect {
  let { request } = state;
  const responseModifiers = [...state.responseModifiers];
  const mirrors = [...state.mirrors];
  for (const f of filters) {
    switch (f.type) {
      case "RequestHeaderModifier":
        request = { ...request, headers: applyHeaderModifier(request.headers, f) };
        break;
      case "ResponseHeaderModifier":
        responseModifiers.push(f);
        break;
      case "URLRewrite": {
        const { path, query } = splitTarget(request.path);
        request = {
          ...request,
          ...(f.hostname === undefined ? {} : { authority: f.hostname }),
          ...(f.path === undefined ? {} : { path: modifyPath(f.path, path, ctx.matchedPrefix) + query }),
        };
        break;
      }
      case "RequestMirror":
        if (f.percent >= 100 || ctx.random() * 100 < f.percent) mirrors.push(f.backend);
        break;
      case "RequestRedirect":
        return { status: f.statusCode, location: redirectLocation(f, request, ctx), responseModifiers };
    }
  }
  return { request, responseModifiers, mirrors };
}

export const isRedirect = (outcome: FilterState | Redirect): outcome is Redirect => "location" in outcome;
