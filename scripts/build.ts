// `npm run build`: one JavaScript bundle per program in dist/ (esbuild), with the agent's native addon beside it.
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const DIST = path.join(ROOT, "dist");

/** Program entry -> bundle name. Each bundle is self-contained: node and the bundle are all a container needs. */
export const PROGRAMS: Record<string, string> = {
  "agent/main.ts": "agent.mjs",
  "controller/main.ts": "controller.mjs",
  "cni/main.ts": "ambit-cni.mjs",
  "bin/ambit.ts": "ambit.mjs",
};

/**
 * Some dependencies are CommonJS and call require() for Node's built-ins; an ES module bundle has no require of its
 * own, so each bundle creates one for them.
 */
const BANNER = 'import { createRequire as __ambitRequire } from "node:module"; const require = __ambitRequire(import.meta.url);';

export async function buildBundles(outDir = DIST): Promise<Array<{ program: string; bundle: string; bytes: number }>> {
  await fs.rm(outDir, { recursive: true, force: true });
  const results = [];
  for (const [entry, out] of Object.entries(PROGRAMS)) {
    const outfile = path.join(outDir, out);
    await build({
      entryPoints: [path.join(ROOT, entry)],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node24",
      banner: { js: BANNER },
      // whatwg-url (through client-node) asks for "punycode", which Node would answer with its deprecated built-in
      // (a warning at every start); the npm package of the same name is what it means.
      alias: { punycode: "punycode/" },
      sourcemap: "linked",
      legalComments: "linked",
      logLevel: "warning",
    });
    results.push({ program: entry, bundle: path.relative(ROOT, outfile), bytes: (await fs.stat(outfile)).size });
  }
  // The addon is loaded relative to the module that asks for it (./build/Release/ambit_net.node): keep that layout.
  const addon = path.join(ROOT, "agent", "native", "build", "Release", "ambit_net.node");
  await fs.mkdir(path.join(outDir, "build", "Release"), { recursive: true });
  await fs.copyFile(addon, path.join(outDir, "build", "Release", "ambit_net.node"));
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await buildBundles()) console.log(`${r.bundle.padEnd(22)} ${(r.bytes / 1024).toFixed(0).padStart(6)} KiB  <- ${r.program}`);
}
