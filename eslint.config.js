// Lint configuration: typescript-eslint recommended rules over all project sources, plus type-aware promise rules.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "**/build/**", "bench/results/**", "dist/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: "readonly", console: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", Buffer: "readonly", URL: "readonly" },
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
  // Plain JavaScript (this file) is outside tsconfig.json: no type information, so no type-aware rules.
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
);
