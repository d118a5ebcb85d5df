// Lint configuration: typescript-eslint recommended rules over all project sources, type-aware promise rules, and folder surfaces.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { indexImports } from "./scripts/eslint/index-imports.ts";

export default tseslint.config(
  { ignores: ["node_modules/**", "**/build/**", "bench/results/**", "dist/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        Buffer: "readonly",
        URL: "readonly",
      },
      // Type information for the promise rules below: one program from tsconfig.json (measured cheaper than projectService here).
      parserOptions: { project: "./tsconfig.json", tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      // One unhandled rejection kills the agent: every promise is awaited, caught, or void-ed on purpose.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "no-console": "off",
    },
  },
  // A folder with an index.ts is entered only through it (scripts/eslint/index-imports.ts says exactly what that means).
  {
    files: ["**/*.ts"],
    // Tests and benchmarks exercise and measure internals directly.
    ignores: ["test/**", "bench/**"],
    plugins: { ambit: { rules: { "index-imports": indexImports } } },
    rules: {
      "ambit/index-imports": "error",
    },
  },
  // Plain JavaScript (this file) is outside tsconfig.json: no type information, so no type-aware rules.
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
);
