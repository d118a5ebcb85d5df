// `npm run build`: one JavaScript bundle per program in dist/ (esbuild), with the agent's native addon beside it.
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execFile } from "node:child_process";
import { isBuiltin } from "node:module";
import { promisify } from "node:util";
import { type Plugin, build } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const DIST = path.join(ROOT, "dist");

/** Program entry -> bundle name. Each bundle is self-contained: node and the bundle are all a container needs. */
export const PROGRAMS: Record<string, string> = {
  "agent/main.ts": "agent.mjs",
  "controller/main.ts": "controller.mjs",
  "waypoint/main.ts": "waypoint.mjs",
  "sidecar/main.ts": "sidecar.mjs",
  "cni/main.ts": "ambit-cni.mjs",
  "bin/ambit.ts": "ambit.mjs",
  "cni/install/main.ts": "ambit-cni-install.mjs",
};

/**
 * What every bundle shares. whatwg-url (through client-node) asks for "punycode", which Node would answer with its
 * deprecated built-in (a warning at every start); the npm package of the same name is what it means.
 */
const COMMON = { bundle: true, platform: "node", target: "node24", alias: { punycode: "punycode/" } } as const;

/**
 * Some dependencies are CommonJS and call require() for Node's built-ins; an ES module bundle has no require of its
 * own, so each bundle creates one for them.
 */
const BANNER = 'import { createRequire as __ambitRequire } from "node:module"; const require = __ambitRequire(import.meta.url);';

/**
 * The ES module bundles take Node's built-ins with require() too, even where the sources import them: the ES module
 * facade of a built-in reads every export once, lazy getters included, and so loads what nothing here uses (http's
 * WebSocket loads undici, crypto's webcrypto its module). The agent's idle RSS: 65.6 MiB imported, 63.4 required.
 * Each `import ... from "node:x"` resolves to a CommonJS module of the bundle whose body requires the built-in.
 */
const BUILTINS_AS_REQUIRE: Plugin = {
  name: "builtins-as-require",
  setup(b) {
    b.onResolve({ filter: /^[a-z]/ }, (args) =>
      args.namespace !== "builtin" && isBuiltin(args.path) ? { path: args.path.replace(/^node:/, ""), namespace: "builtin" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "builtin" }, (args) => ({ contents: `module.exports = require("node:${args.path}");`, loader: "js" }));
  },
};

/**
 * Builds into a directory of its own, then renames each file into `outDir`: a sandbox starting pods from the
 * bundles while another `ambit dev up` rebuilds them never sees a missing or half-written file.
 */
export async function buildBundles(outDir = DIST): Promise<Array<{ program: string; bundle: string; bytes: number; inputs: string[] }>> {
  await fs.mkdir(outDir, { recursive: true });
  const staging = await fs.mkdtemp(path.join(outDir, ".build-"));
  try {
    const results = [];
    for (const [entry, out] of Object.entries(PROGRAMS)) {
      const { metafile } = await build({
        entryPoints: [path.join(ROOT, entry)],
        outfile: path.join(staging, out),
        ...COMMON,
        format: "esm",
        banner: { js: BANNER },
        plugins: [BUILTINS_AS_REQUIRE],
        sourcemap: "linked",
        legalComments: "linked",
        logLevel: "warning",
        metafile: true,
      });
      const inputs = Object.keys(metafile.inputs);
      results.push({ program: entry, bundle: path.relative(ROOT, path.join(outDir, out)), bytes: (await fs.stat(path.join(staging, out))).size, inputs });
    }
    // The addon is loaded relative to the module that asks for it (./build/Release/ambit_net.node): keep that layout.
    const addon = path.join(ROOT, "agent", "native", "build", "Release", "ambit_net.node");
    await fs.mkdir(path.join(staging, "build", "Release"), { recursive: true });
    await fs.copyFile(addon, path.join(staging, "build", "Release", "ambit_net.node"));
    await fs.mkdir(path.join(outDir, "build", "Release"), { recursive: true });
    for (const file of await fs.readdir(staging, { recursive: true })) {
      const from = path.join(staging, file);
      if ((await fs.stat(from)).isFile()) await fs.rename(from, path.join(outDir, file));
    }
    return results;
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/** Node's single-executable fuse: the marker postject flips once the application blob is in the binary. */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/**
 * The CNI plugin as one executable for nodes without Node: the pinned Node binary with the plugin's bundle injected
 * as a single executable application. SEA runs a CommonJS main, so this bundle is CommonJS. About 120 MiB, nearly
 * all of it Node. The sandbox's CNI image runs it too, so `ambit dev up` calls this: the executable is rebuilt only when
 * its bundle or the Node binary changed (a hash of both next to it), as injecting costs a few seconds.
 */
export async function buildCniExecutable(outDir = DIST, node = process.execPath): Promise<string> {
  await fs.mkdir(outDir, { recursive: true });
  const work = await fs.mkdtemp(path.join(outDir, ".sea-"));
  try {
    const main = path.join(work, "ambit-cni.cjs");
    await build({ ...COMMON, entryPoints: [path.join(ROOT, "cni", "main.ts")], outfile: main, format: "cjs", logLevel: "warning" });
    const target = path.join(outDir, "ambit-cni");
    const stamp = path.join(outDir, ".ambit-cni.sha256");
    const hash = createHash("sha256")
      .update(await fs.readFile(main))
      .update(await fs.readFile(node))
      .digest("hex");
    const built = await fs.stat(target).then(
      () => true,
      () => false,
    );
    if (built && (await fs.readFile(stamp, "utf8").catch(() => "")) === hash) return target;
    const blob = path.join(work, "sea.blob");
    await fs.writeFile(path.join(work, "sea-config.json"), JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true }));
    await promisify(execFile)(node, ["--experimental-sea-config", path.join(work, "sea-config.json")], { cwd: work });
    const exe = path.join(work, "ambit-cni");
    await fs.copyFile(node, exe);
    await fs.chmod(exe, 0o755);
    const { inject } = await import("postject");
    await inject(exe, "NODE_SEA_BLOB", await fs.readFile(blob), { sentinelFuse: SEA_FUSE });
    await fs.rename(exe, target);
    await fs.writeFile(stamp, hash);
    return target;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await buildBundles()) console.log(`${r.bundle.padEnd(22)} ${(r.bytes / 1024).toFixed(0).padStart(6)} KiB  <- ${r.program}`);
  const exe = await buildCniExecutable();
  console.log(
    `${path.relative(ROOT, exe).padEnd(22)} ${((await fs.stat(exe)).size / 1024).toFixed(0).padStart(6)} KiB  <- cni/main.ts as a single executable (no Node needed on the node)`,
  );
}
