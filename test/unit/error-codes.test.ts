// The error tables are the one source of codes: docs/errors.md matches them, no code is listed twice, no code is raised unlisted.
import fs from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { API_ERRORS, ERROR_DOMAINS } from "../../contract/error-codes.ts";
import { AmbitError } from "../../contract/errors.ts";
import { ConfigStreamError, ConfigStreamErrorCode } from "../../contract/stream.ts";
import { IdentityError } from "../../contract/spiffe.ts";
import { ConfigError } from "../../agent/config.ts";
import { HboneError } from "../../agent/hbone/index.ts";
import { KubeRequestError } from "../../kube/client.ts";
import { ApiError } from "../../sandbox/apiserver/index.ts";
import { InjectError } from "../../sidecar/index.ts";
import { CATALOGUE, renderErrorCatalogue } from "../../scripts/error-catalogue.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

const SOURCE_DIRS = ["agent", "controller", "cni", "kube", "contract", "pki", "host", "cli", "helm", "sandbox", "sidecar", "scripts", "bin"];

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "node_modules" && entry.name !== "build") out.push(...(await sources(p)));
    else if (entry.isFile() && /\.(ts|c)$/.test(entry.name)) out.push(p);
  }
  return out;
}

const allEntries = ERROR_DOMAINS.flatMap((d) => Object.values(d.entries).map((e) => ({ domain: d.domain, ...e })));

describe("error codes", () => {
  it("docs/errors.md is what the tables generate (run `npm run errors` after changing them)", async () => {
    expect(await fs.readFile(CATALOGUE, "utf8")).toBe(renderErrorCatalogue());
  });

  it("no code is listed twice, and every entry says what it means and what to do", () => {
    const seen = new Map<string, string>();
    const twice: string[] = [];
    for (const e of allEntries) {
      const first = seen.get(e.code);
      if (first) twice.push(`${e.code} in ${first} and ${e.domain}`);
      seen.set(e.code, e.domain);
      expect(e.code).toMatch(/^AMBIT_E_[A-Z0-9]+(_[A-Z0-9]+)*$/);
      expect(e.meaning.length && e.action.length, e.code).toBeTruthy();
    }
    expect(twice).toEqual([]);
  });

  it("every AMBIT_E_* code the sources name is in a table", async () => {
    const known = new Set(allEntries.map((e) => e.code));
    const unlisted: string[] = [];
    for (const dir of SOURCE_DIRS) {
      for (const file of await sources(path.join(REPO_ROOT, dir))) {
        // A name ending in `_` is a prefix (`AMBIT_E_NATIVE_*`, `AMBIT_E_API_${reason}`), not a code.
        for (const [code] of (await fs.readFile(file, "utf8")).matchAll(/AMBIT_E_[A-Z0-9_]+/g)) {
          if (!code.endsWith("_") && !known.has(code as never)) unlisted.push(`${path.relative(REPO_ROOT, file)}: ${code}`);
        }
      }
    }
    expect(unlisted).toEqual([]);
  });

  it("the sandbox API server's codes stay the Status reason in upper snake case", () => {
    for (const [reason, entry] of Object.entries(API_ERRORS.entries)) {
      expect(entry.code).toBe(`AMBIT_E_API_${reason.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}`);
    }
  });

  it("the error classes are AmbitErrors with their codes, names, messages and causes", () => {
    const cause = new Error("socket hang up");
    const cases: Array<[AmbitError, abstract new (...args: never[]) => AmbitError, string, string]> = [
      [new ConfigError("AMBIT_X=1 is bad"), ConfigError, "ConfigError", "AMBIT_E_CONFIG"],
      [new IdentityError("bad id"), IdentityError, "IdentityError", "AMBIT_E_IDENTITY_INVALID"],
      [new HboneError("AMBIT_E_HBONE_CONNECT", "no route"), HboneError, "HboneError", "AMBIT_E_HBONE_CONNECT"],
      [new KubeRequestError(404, "NotFound", "pods x not found"), KubeRequestError, "KubeRequestError", "AMBIT_E_KUBE_REQUEST"],
      [new ApiError(409, "Conflict", "changed"), ApiError, "ApiError", "AMBIT_E_API_CONFLICT"],
      [new ConfigStreamError(ConfigStreamErrorCode.connect, "refused", { cause }), ConfigStreamError, "ConfigStreamError", "AMBIT_E_CONFIG_STREAM_CONNECT"],
      [new InjectError("AMBIT_E_INJECT_CONFLICT", "taken"), InjectError, "InjectError", "AMBIT_E_INJECT_CONFLICT"],
    ];
    for (const [err, cls, name, code] of cases) {
      expect(err).toBeInstanceOf(cls);
      expect(err).toBeInstanceOf(AmbitError);
      expect(err).toBeInstanceOf(Error);
      expect({ name: err.name, code: err.code }).toEqual({ name, code });
    }
    expect(cases[0]![0].message).toBe("AMBIT_X=1 is bad");
    expect(cases[5]![0].cause).toBe(cause);
  });
});
