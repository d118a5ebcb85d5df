// One error shape for every Ambit program: a stable AMBIT_E_* code from a per-domain table, the message, and the cause chain.

/** One code of a domain's table: what it means and what the operator who reads it should do (docs/errors.md). */
export interface ErrorCodeEntry {
  code: `AMBIT_E_${string}`;
  meaning: string;
  action: string;
}

/** A domain's table of codes (the part of Ambit that raises them), keyed by the name code uses for each. */
export interface ErrorDomain<T extends Record<string, ErrorCodeEntry> = Record<string, ErrorCodeEntry>> {
  /** Short name, as docs/errors.md heads its section. */
  domain: string;
  /** Where these errors come from, in a sentence. */
  about: string;
  entries: T;
  /** The codes by key (`CONFIG_STREAM.code.protocol`), as undici's and fastify's code constants are used. */
  code: { readonly [K in keyof T]: T[K]["code"] };
}

export function errorDomain<const T extends Record<string, ErrorCodeEntry>>(domain: string, about: string, entries: T): ErrorDomain<T> {
  const code = Object.fromEntries(Object.entries(entries).map(([key, entry]) => [key, entry.code])) as ErrorDomain<T>["code"];
  return { domain, about, entries, code };
}

/** The codes of a domain's table (or of a union of tables), as a union type. */
export type CodeOf<D extends ErrorDomain> = D extends ErrorDomain<infer T> ? T[keyof T]["code"] : never;

/**
 * The base of every Ambit error: `code` names what went wrong for programs, tests and docs (never the message),
 * `cause` keeps what it wrapped. Subclasses narrow `code` to their domain's table and keep their own name.
 */
export class AmbitError<C extends string = string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AmbitError";
    this.code = code;
  }
}
