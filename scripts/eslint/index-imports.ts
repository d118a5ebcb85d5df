// ESLint rule ambit/index-imports: a folder with an index.ts is entered only through it, so its index.ts is its whole public surface.
import fs from "node:fs";
import path from "node:path";
import type { Rule } from "eslint";

/**
 * What the rule enforces, for every relative import (static, `export ... from`, and `import()` of a literal):
 * - The folders the import enters are those holding the target but not the importing file. If one of them has an
 *   index.ts, the import must name the index.ts of the outermost such folder: its insides are private to it.
 * - So a file may import anything in its own folder and in the folders above it (it is inside those), and reaches
 *   a sibling or a subfolder with an index.ts only through that index.ts.
 * - Folders without an index.ts (kube/, contract/, host/, sandbox/kubelet/ ...) are plain collections of modules:
 *   each file is public. `flatFolders` (absolute paths) names folders whose index.ts is one more such module
 *   rather than the folder's surface.
 * Imports of packages and node: built-ins are not relative and not checked.
 */
export interface IndexImportsOptions {
  flatFolders?: string[];
}

const isInside = (dir: string, folder: string): boolean => {
  const rel = path.relative(folder, dir);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
};

export const indexImports: Rule.RuleModule = {
  meta: {
    type: "problem",
    docs: { description: "Relative imports enter a folder that has an index.ts only through that index.ts" },
    schema: [{ type: "object", properties: { flatFolders: { type: "array", items: { type: "string" } } }, additionalProperties: false }],
    messages: {
      insideFolder: '"{{source}}" reaches inside {{folder}}/, whose surface is its index.ts: import "{{index}}" (and export what is needed from it).',
    },
  },
  create(context) {
    const options = (context.options[0] ?? {}) as IndexImportsOptions;
    const flatFolders = new Set((options.flatFolders ?? []).map((f) => path.resolve(f)));
    const fromDir = path.dirname(path.resolve(context.filename));
    // Per file: the same folders are asked about for every import of the file.
    const hasIndex = new Map<string, boolean>();
    const isModuleFolder = (folder: string): boolean => {
      let known = hasIndex.get(folder);
      if (known === undefined) {
        known = !flatFolders.has(folder) && fs.existsSync(path.join(folder, "index.ts"));
        hasIndex.set(folder, known);
      }
      return known;
    };

    const check = (source: unknown, node: Rule.Node): void => {
      if (typeof source !== "string" || !(source.startsWith("./") || source.startsWith("../"))) return;
      const target = path.resolve(fromDir, source);
      // The outermost folder with an index.ts among those the import enters (walking up from the target's folder).
      let entered: string | undefined;
      for (let folder = path.dirname(target); !isInside(fromDir, folder); folder = path.dirname(folder)) {
        if (isModuleFolder(folder)) entered = folder;
      }
      if (entered === undefined || target === path.join(entered, "index.ts")) return;
      const index = path.relative(fromDir, path.join(entered, "index.ts")).split(path.sep).join("/");
      context.report({
        node,
        messageId: "insideFolder",
        data: { source, folder: path.relative(fromDir, entered).split(path.sep).join("/"), index: index.startsWith(".") ? index : `./${index}` },
      });
    };

    return {
      ImportDeclaration: (node) => check(node.source.value, node),
      ExportNamedDeclaration: (node) => check(node.source?.value, node),
      ExportAllDeclaration: (node) => check(node.source.value, node),
      ImportExpression: (node) => {
        if (node.source.type === "Literal") check(node.source.value, node);
      },
    };
  },
};
