// Readers for policy fields: each checks one value's shape and throws a PolicyCompileError naming its field path.
import net from "node:net";
import { PolicyCompileError, PolicyErrorCode } from "./errors.ts";

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Unknown fields are refused, not ignored: `rule:` for `rules:` would otherwise deny nothing, `frm:` allow everyone. */
export function onlyKnown(obj: Record<string, unknown>, known: readonly string[], path: string): void {
  for (const k of Object.keys(obj))
    if (!known.includes(k)) throw new PolicyCompileError(PolicyErrorCode.unknownField, `${path}.${k}`, `unknown field (known: ${known.join(", ")})`);
}

export function stringList(v: unknown, path: string): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && s !== ""))
    throw new PolicyCompileError(PolicyErrorCode.badValue, path, "must be a list of non-empty strings");
  return v as string[];
}

export function cidrList(v: unknown, path: string): string[] {
  const list = stringList(v, path);
  list.forEach((block, i) => {
    const [ip, bits, extra] = block.split("/");
    const family = net.isIP(ip ?? "");
    const max = family === 6 ? 128 : 32;
    if (!family || extra !== undefined || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > max)))
      throw new PolicyCompileError(PolicyErrorCode.badValue, `${path}[${i}]`, `"${block}" is not an IP address or CIDR block`);
  });
  return list;
}

export function portList(v: unknown, path: string): number[] {
  if (!Array.isArray(v)) throw new PolicyCompileError(PolicyErrorCode.badValue, path, "must be a list of port numbers");
  return v.map((p, i) => {
    const n = typeof p === "number" ? p : /^\d+$/.test(String(p)) ? Number(p) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new PolicyCompileError(PolicyErrorCode.badValue, `${path}[${i}]`, `"${String(p)}" is not a port number (1-65535)`);
    return n;
  });
}

/** Principals are written without the scheme; a pasted `spiffe://` prefix is a common mistake that would never match. */
export function principals(v: unknown, path: string): string[] {
  const list = stringList(v, path);
  list.forEach((p, i) => {
    if (p.startsWith("spiffe://"))
      throw new PolicyCompileError(
        PolicyErrorCode.badValue,
        `${path}[${i}]`,
        'write principals without the spiffe:// scheme, e.g. "cluster.local/ns/default/sa/app"',
      );
  });
  return list;
}

/** RFC 9110 token characters, the alphabet of methods and header names. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Istio's wildcards: `*` alone (any value), or one `*` at the start (suffix match) or the end (prefix match). A `*`
 * anywhere else would be matched literally, which in a host, path or method is always a mistake (and in a DENY, a hole).
 * Returns the literal part.
 */
function literalOf(pattern: string, path: string): string {
  if (pattern === "*") return "";
  const literal = pattern.startsWith("*") ? pattern.slice(1) : pattern.endsWith("*") ? pattern.slice(0, -1) : pattern;
  if (literal.includes("*"))
    throw new PolicyCompileError(
      PolicyErrorCode.pattern,
      path,
      `"${pattern}": "*" may only stand alone or at the start or end ("exact", "prefix*", "*suffix")`,
    );
  return literal;
}

/** `methods` / `notMethods`: upper-case tokens, since methods match case-sensitively (Istio refuses lower-case request methods with 400). */
export function methodList(v: unknown, path: string): string[] {
  const list = stringList(v, path);
  list.forEach((method, i) => {
    const literal = literalOf(method, `${path}[${i}]`);
    if (literal !== "" && !TOKEN.test(literal)) throw new PolicyCompileError(PolicyErrorCode.method, `${path}[${i}]`, `"${method}" is not an HTTP method`);
    if (/[a-z]/.test(literal))
      throw new PolicyCompileError(
        PolicyErrorCode.method,
        `${path}[${i}]`,
        `"${method}" would never match: methods are matched case-sensitively and are upper case; write "${method.toUpperCase()}"`,
      );
  });
  return list;
}

/** `paths` / `notPaths`: matched against the normalized path without its query, so they start with `/` unless they are a suffix or `*`. */
export function pathList(v: unknown, path: string): string[] {
  const list = stringList(v, path);
  list.forEach((p, i) => {
    const at = `${path}[${i}]`;
    if (/[{}]/.test(p))
      throw new PolicyCompileError(
        PolicyErrorCode.pattern,
        at,
        `"${p}": path templates ({*}, {**}) are not supported yet; use a prefix ("/api/*") or a suffix ("*.json")`,
      );
    literalOf(p, at);
    if (p !== "*" && !p.startsWith("*") && !p.startsWith("/"))
      throw new PolicyCompileError(PolicyErrorCode.pattern, at, `"${p}" would never match: request paths start with "/"`);
    if (/[?#]/.test(p)) throw new PolicyCompileError(PolicyErrorCode.pattern, at, `"${p}" would never match: paths are matched without the query string`);
  });
  return list;
}

/** `hosts` / `notHosts`: a host name or address, optionally with a port, with Istio's wildcards; matched case-insensitively. */
export function hostList(v: unknown, path: string): string[] {
  const list = stringList(v, path);
  list.forEach((host, i) => {
    const literal = literalOf(host, `${path}[${i}]`);
    if (!/^[A-Za-z0-9._:[\]-]*$/.test(literal))
      throw new PolicyCompileError(PolicyErrorCode.pattern, `${path}[${i}]`, `"${host}" is not a host name or address (with an optional port)`);
  });
  return list;
}

/** The header a `request.headers[<name>]` key names, lower-cased (header names are case-insensitive). */
export function headerNameOf(key: string, path: string): string {
  const name = /^request\.headers\[(.*)\]$/.exec(key)?.[1];
  if (name === undefined || !TOKEN.test(name))
    throw new PolicyCompileError(
      PolicyErrorCode.header,
      path,
      `"${key}" does not name a header: write request.headers[<name>] with an HTTP header name (pseudo-headers are matched by hosts, methods and paths)`,
    );
  return name.toLowerCase();
}
