// The product never leans on the sandbox: no program reads a sandbox-only annotation or file, or imports sandbox code.
import fs from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";

const PRODUCT_DIRS = ["agent", "controller", "cni", "kube", "contract", "pki", "host"];

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "node_modules" && entry.name !== "build") out.push(...(await sources(p)));
    else if (entry.isFile() && entry.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

describe("no sandbox shortcuts in the product", () => {
  it("no agent, controller, CNI or shared file names a sandbox annotation, the sandbox's state, or imports sandbox code", async () => {
    const offenders: string[] = [];
    for (const dir of PRODUCT_DIRS) {
      for (const file of await sources(path.join(REPO_ROOT, dir))) {
        const text = await fs.readFile(file, "utf8");
        for (const [i, line] of text.split("\n").entries()) {
          if (/sandbox\.ambit\.dev|\/run\/ambit-dev|from "(\.\.\/)+sandbox\//.test(line))
            offenders.push(`${path.relative(REPO_ROOT, file)}:${i + 1}: ${line.trim()}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
