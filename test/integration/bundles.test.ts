// `npm run build`: every program bundles into one file that runs on the pinned Node alone, outside the source tree.
import fs from "node:fs/promises";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROGRAMS, buildBundles } from "../../scripts/build.ts";

const NODE = process.execPath;

describe("program bundles", () => {
  let out: string;
  let built: Awaited<ReturnType<typeof buildBundles>>;
  // Only the bundles and the addon are copied to a directory of their own: nothing may be read from the sources.
  let shipped: string;
  const run = (bundle: string, args: string[], env: Record<string, string> = {}) =>
    execa(NODE, [path.join(shipped, bundle), ...args], { cwd: shipped, env, extendEnv: false, reject: false, timeout: 30_000 });

  beforeAll(async () => {
    out = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-build-"));
    shipped = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-shipped-"));
    built = await buildBundles(out);
    for (const bundle of Object.values(PROGRAMS)) await fs.copyFile(path.join(out, bundle), path.join(shipped, bundle));
    await fs.cp(path.join(out, "build"), path.join(shipped, "build"), { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await fs.rm(out, { recursive: true, force: true });
    await fs.rm(shipped, { recursive: true, force: true });
  });

  it("the CNI plugin answers VERSION and refuses garbage with the spec's error", async () => {
    const version = await run("ambit-cni.mjs", [], { CNI_COMMAND: "VERSION" });
    expect(version.exitCode).toBe(0);
    expect(JSON.parse(version.stdout).supportedVersions).toContain("1.0.0");
    const bad = await execa(NODE, [path.join(shipped, "ambit-cni.mjs")], { env: { CNI_COMMAND: "ADD" }, extendEnv: false, input: "{not json", reject: false });
    expect(bad.exitCode).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 6 });
  });

  it("the agent and the controller start and report their configuration errors, with no warning from a dependency", async () => {
    const agent = await run("agent.mjs", []);
    expect(agent.exitCode).not.toBe(0);
    expect(agent.stderr).toContain("NODE_NAME is required");
    const controller = await run("controller.mjs", [], { AMBIT_LOG_LEVEL: "nonsense" });
    expect(controller.exitCode).not.toBe(0);
    expect(controller.stderr).toMatch(/AMBIT_LOG_LEVEL/);
    for (const r of [agent, controller]) expect(r.stderr).not.toMatch(/DeprecationWarning|Cannot find module/);
  });

  it("ships the native addon where the agent bundle looks for it (./build/Release, relative to the bundle)", async () => {
    const addon = createRequire(path.join(shipped, "agent.mjs"))("./build/Release/ambit_net.node") as Record<string, unknown>;
    expect(["listenInNetns", "originalDst", "createMarkedSocket", "closeFd", "releaseFreeMemory"].every((f) => typeof addon[f] === "function")).toBe(true);
    const bundle = await fs.readFile(path.join(shipped, "agent.mjs"), "utf8");
    expect(bundle).toContain('"./build/Release/ambit_net.node"');
  });

  it("the agent's bundle holds neither @kubernetes/client-node nor execa (their module graphs cost its idle RSS 20 and 2 MiB)", () => {
    const agent = built.find((b) => b.program === "agent/main.ts")!;
    expect(agent.inputs.filter((i) => /node_modules\/(@kubernetes\/client-node|execa)\//.test(i))).toEqual([]);
    expect(agent.inputs.some((i) => i.includes("node_modules/pino/"))).toBe(true);
  });

  it("the ambit CLI prints its usage", async () => {
    const help = await run("ambit.mjs", ["--help"]);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("ambit dev");
  });
});
