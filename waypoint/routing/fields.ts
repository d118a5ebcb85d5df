// Field-level checks shared by HTTPRoute and GRPCRoute rules: the API's patterns, enums and limits, each failure reported with its field path.
import type { HeaderModifier, PathModifier, ValueMatch, ValueMatchType } from "../../contract/routes.ts";
import { RouteErrorCode } from "./errors.ts";
import type { HeaderFilterSpec, PathModifierSpec, ValueMatchSpec } from "./gateway-api.ts";

export type Report = (code: RouteErrorCode, path: string, detail: string) => void;

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
/** Printable US-ASCII, single spaces or tabs between: what RFC 7230 allows in a field value and the API's pattern enforces. */
const HEADER_VALUE = /^[!-~]+([\t ]?[!-~]+)*$/;
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const DURATION_PART = /([0-9]{1,5})(ms|h|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** A JSON object (not null, not an array): what an object field must hold whatever the API server let through; keeps the declared type. */
export const isObject = <T>(v: T): v is T & object => typeof v === "object" && v !== null && !Array.isArray(v);

/** An optional list: absent is empty; anything but an array is reported. */
export function listAt<T>(value: T[] | undefined, path: string, max: number, report: Report): T[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    report(RouteErrorCode.malformed, path, "must be a list");
    return [];
  }
  if (value.length > max) report(RouteErrorCode.tooMany, path, `must have at most ${max} items, has ${value.length}`);
  return value;
}

export function checkHostname(value: unknown, path: string, report: Report): string | undefined {
  if (typeof value !== "string" || value.length > 253 || !PRECISE_HOSTNAME.test(value)) {
    report(RouteErrorCode.invalidHostname, path, `must be a lower-case DNS name without wildcard (got ${JSON.stringify(value)})`);
    return undefined;
  }
  return value;
}

export function checkPort(value: unknown, path: string, code: RouteErrorCode, report: Report): number | undefined {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 65535) {
    report(code, path, `must be a port number from 1 to 65535 (got ${JSON.stringify(value)})`);
    return undefined;
  }
  return value as number;
}

/** Full-match regular expression as the matcher will run it; reported when it does not compile. */
export function checkRegex(value: string, path: string, report: Report): boolean {
  try {
    new RegExp(`^(?:${value})$`);
    return true;
  } catch (err) {
    report(RouteErrorCode.invalidRegex, path, `is not a valid regular expression: ${(err as Error).message}`);
    return false;
  }
}

/** Milliseconds of a Gateway API duration (GEP-2257: up to four `<1-5 digits><h|m|s|ms>` parts); undefined if it is not one. */
export function durationMs(value: unknown): number | undefined {
  if (typeof value !== "string" || !DURATION.test(value)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(DURATION_PART)) ms += Number(amount) * (UNIT_MS[unit as string] as number);
  return ms;
}

/** `durationMs`, reporting a value that is not a duration. */
export function parseDuration(value: unknown, path: string, report: Report): number | undefined {
  const ms = durationMs(value);
  if (ms === undefined) report(RouteErrorCode.invalidDuration, path, `must be a duration such as "1h", "10s" or "1m30s500ms" (got ${JSON.stringify(value)})`);
  return ms;
}

/** Header or query parameter matches: the first entry for a name wins and later ones are ignored, as the API says. */
export function checkValueMatches(specs: ValueMatchSpec[], path: string, kind: "header" | "query", report: Report): ValueMatch[] {
  const seen = new Set<string>();
  const out: ValueMatch[] = [];
  specs.forEach((spec, i) => {
    const at = `${path}[${i}]`;
    if (!isObject(spec)) return report(RouteErrorCode.malformed, at, "must be an object with name and value");
    const type = spec.type ?? "Exact";
    if (type !== "Exact" && type !== "RegularExpression") {
      return report(RouteErrorCode.unsupportedValue, `${at}.type`, `must be "Exact" or "RegularExpression" (got ${JSON.stringify(type)})`);
    }
    if (typeof spec.name !== "string" || spec.name.length > 256 || !HEADER_NAME.test(spec.name)) {
      return report(kind === "header" ? RouteErrorCode.invalidHeader : RouteErrorCode.malformed, `${at}.name`, "must be a token of RFC 7230 characters");
    }
    const maxValue = kind === "header" ? 4096 : 1024;
    if (typeof spec.value !== "string" || spec.value.length === 0 || spec.value.length > maxValue) {
      return report(RouteErrorCode.malformed, `${at}.value`, `must be a string of 1 to ${maxValue} characters`);
    }
    if (type === "RegularExpression" && !checkRegex(spec.value, `${at}.value`, report)) return;
    const name = kind === "header" ? spec.name.toLowerCase() : spec.name;
    if (seen.has(name)) return;
    seen.add(name);
    out.push({ name, type: type satisfies ValueMatchType, value: spec.value });
  });
  return out;
}

/** Request or response header modifier; one header may take part in only one action. */
export function checkHeaderModifier(spec: HeaderFilterSpec | undefined, path: string, report: Report): HeaderModifier | undefined {
  if (!isObject(spec)) {
    report(RouteErrorCode.malformed, path, "must be an object with set, add or remove");
    return undefined;
  }
  const named = new Set<string>();
  let ok = true;
  const claim = (name: unknown, at: string): string | undefined => {
    if (typeof name !== "string" || name.length > 256 || !HEADER_NAME.test(name)) {
      report(RouteErrorCode.invalidHeader, at, `must be a header name of RFC 7230 token characters (got ${JSON.stringify(name)})`);
      ok = false;
      return undefined;
    }
    const lower = name.toLowerCase();
    if (named.has(lower)) {
      report(RouteErrorCode.invalidHeader, at, `header "${name}" already has an action in this filter: set, add and remove may name a header once`);
      ok = false;
      return undefined;
    }
    named.add(lower);
    return lower;
  };
  const values = (list: HeaderFilterSpec["set"], field: string) =>
    listAt(list, `${path}.${field}`, 16, report).flatMap((h, i) => {
      const at = `${path}.${field}[${i}]`;
      const name = claim(isObject(h) ? h.name : undefined, `${at}.name`);
      if (name === undefined) return [];
      if (typeof h.value !== "string" || h.value.length > 4096 || !HEADER_VALUE.test(h.value)) {
        report(RouteErrorCode.invalidHeader, `${at}.value`, "must be 1 to 4096 printable US-ASCII characters");
        ok = false;
        return [];
      }
      return [{ name, value: h.value }];
    });
  const set = values(spec.set, "set");
  const add = values(spec.add, "add");
  const remove = listAt(spec.remove, `${path}.remove`, 16, report).flatMap((n, i) => claim(n, `${path}.remove[${i}]`) ?? []);
  return ok ? { set, add, remove } : undefined;
}

/** An absolute path without empty, "." or ".." segments, as the API requires of PathPrefix and Exact values. */
export function pathProblem(value: string): string | undefined {
  if (!value.startsWith("/")) return 'must start with "/"';
  if (value.includes("//")) return 'must not contain "//"';
  if (value.includes("/./") || value.endsWith("/.")) return 'must not contain a "." segment';
  if (value.includes("/../") || value.endsWith("/..")) return 'must not contain a ".." segment';
  if (/%2f/i.test(value)) return 'must not contain an encoded "/" (%2F)';
  if (value.includes("#")) return 'must not contain "#"';
  if (!/^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/.test(value)) return "must contain only URL path characters (RFC 3986) or %-escapes";
  return undefined;
}

export function checkPathModifier(spec: PathModifierSpec | undefined, path: string, report: Report): PathModifier | undefined {
  if (!isObject(spec)) {
    report(RouteErrorCode.malformed, path, "must be an object with type and a replacement");
    return undefined;
  }
  const field = spec.type === "ReplaceFullPath" ? "replaceFullPath" : spec.type === "ReplacePrefixMatch" ? "replacePrefixMatch" : undefined;
  if (field === undefined) {
    report(RouteErrorCode.unsupportedValue, `${path}.type`, `must be "ReplaceFullPath" or "ReplacePrefixMatch" (got ${JSON.stringify(spec.type)})`);
    return undefined;
  }
  const other = field === "replaceFullPath" ? "replacePrefixMatch" : "replaceFullPath";
  if (spec[other] !== undefined) {
    report(RouteErrorCode.malformed, `${path}.${other}`, `must not be set when type is ${spec.type}`);
    return undefined;
  }
  const value = spec[field];
  if (typeof value !== "string" || value.length > 1024) {
    report(RouteErrorCode.malformed, `${path}.${field}`, `must be set (a string of at most 1024 characters) when type is ${spec.type}`);
    return undefined;
  }
  // An empty prefix replacement is meaningful (strip the prefix); a full path must be a path.
  const problem = value === "" && field === "replacePrefixMatch" ? undefined : pathProblem(value);
  if (problem !== undefined) {
    report(RouteErrorCode.invalidPath, `${path}.${field}`, problem);
    return undefined;
  }
  return { type: spec.type as PathModifier["type"], value };
}
