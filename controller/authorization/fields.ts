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
