// The ambit/index-imports lint rule: imports from outside a folder with an index.ts name that index.ts; inner files are refused.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RuleTester } from "eslint";
import tseslint from "typescript-eslint";
import { afterAll, describe, it } from "vitest";
import { indexImports } from "../../scripts/eslint/index-imports.ts";

RuleTester.describe = describe;
RuleTester.it = it;
RuleTester.itOnly = it.only;

// The rule asks the file system which folders have an index.ts; only those files need to exist.
const root = fs.mkdtempSync(path.join(os.tmpdir(), "ambit-index-imports-"));
for (const dir of ["a/sub", "b", "flat", "flatidx", "outer/inner"]) fs.mkdirSync(path.join(root, dir), { recursive: true });
for (const index of ["a", "a/sub", "flatidx", "outer", "outer/inner"]) fs.writeFileSync(path.join(root, index, "index.ts"), "");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const file = (p: string) => path.join(root, p);
const flatFolders = { flatFolders: [file("flatidx")] };

new RuleTester({ languageOptions: { parser: tseslint.parser, ecmaVersion: "latest", sourceType: "module" } }).run("ambit/index-imports", indexImports, {
  valid: [
    { name: "another folder through its index.ts", filename: file("b/user.ts"), code: 'import { x } from "../a/index.ts";' },
    { name: "a file of its own folder", filename: file("a/inner.ts"), code: 'import { x } from "./index.ts"; import { y } from "./other.ts";' },
    { name: "its own subfolder through that subfolder's index.ts", filename: file("a/inner.ts"), code: 'import { y } from "./sub/index.ts";' },
    { name: "a file of a folder above it (it is inside that folder)", filename: file("a/sub/deep.ts"), code: 'import { x } from "../inner.ts";' },
    { name: "any file of a folder without an index.ts", filename: file("b/user.ts"), code: 'import { z } from "../flat/x.ts";' },
    { name: "any file of a folder listed as flat", filename: file("b/user.ts"), code: 'import { y } from "../flatidx/y.ts";', options: [flatFolders] },
    { name: "nested folders through the outermost index.ts", filename: file("b/user.ts"), code: 'import { w } from "../outer/index.ts";' },
    { name: "inside outer/, outer/inner/ through its own index.ts", filename: file("outer/a.ts"), code: 'import { w } from "./inner/index.ts";' },
    { name: "packages and built-ins are not checked", filename: file("b/user.ts"), code: 'import fs from "node:fs"; import { parse } from "yaml";' },
  ],
  invalid: [
    {
      name: "an inner file of another folder",
      filename: file("b/user.ts"),
      code: 'import { x } from "../a/inner.ts";',
      errors: [{ messageId: "insideFolder", data: { source: "../a/inner.ts", folder: "../a", index: "../a/index.ts" } }],
    },
    {
      name: "an inner file of its own subfolder",
      filename: file("a/inner.ts"),
      code: 'import { y } from "./sub/deep.ts";',
      errors: [{ messageId: "insideFolder", data: { source: "./sub/deep.ts", folder: "sub", index: "./sub/index.ts" } }],
    },
    {
      name: "type-only imports, re-exports and import() alike",
      filename: file("b/user.ts"),
      code: 'import type { T } from "../a/inner.ts";\nexport { x } from "../a/inner.ts";\nexport * from "../a/inner.ts";\nawait import("../a/inner.ts");',
      errors: 4,
    },
    {
      name: "an inner folder's index.ts from outside the outer folder",
      filename: file("b/user.ts"),
      code: 'import { w } from "../outer/inner/index.ts";',
      errors: [{ messageId: "insideFolder", data: { source: "../outer/inner/index.ts", folder: "../outer", index: "../outer/index.ts" } }],
    },
    {
      name: "a folder with an index.ts not listed as flat",
      filename: file("b/user.ts"),
      code: 'import { y } from "../flatidx/y.ts";',
      errors: [{ messageId: "insideFolder" }],
    },
  ],
});
