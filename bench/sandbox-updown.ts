// Measures `ambit dev up` (with the demo) and `ambit dev down` wall time over a few runs; root only.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../sandbox/config.ts";

const runs = Number(process.argv[2] ?? 3);
const env = { AMBIT_DEV_NAME_PREFIX: "ambit-bench", AMBIT_DEV_STATE_DIR: "/run/ambit-bench", AMBIT_DEV_API_PORT: "16447" };
const cli = [path.join(REPO_ROOT, "bin", "ambit.ts"), "dev"];

async function timed(args: string[]): Promise<number> {
  const started = performance.now();
  const r = await execa(process.execPath, [...cli, ...args], { env, reject: false, timeout: 180_000 });
  if (r.exitCode !== 0) throw new Error(`ambit dev ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return (performance.now() - started) / 1000;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
};

if (process.getuid?.() !== 0) {
  console.error("bench/sandbox-updown.ts needs root");
  process.exit(2);
}
const up: number[] = [];
const down: number[] = [];
try {
  await timed(["down"]);
  for (let i = 0; i < runs; i++) {
    up.push(await timed(["up"]));
    down.push(await timed(["down"]));
  }
} finally {
  await execa(process.execPath, [...cli, "down"], { env, reject: false });
}
const result = { runs, nodes: 2, demo: true, upSeconds: stats(up), downSeconds: stats(down), raw: { up, down } };
console.log("| step | median s | min s | max s |\n|---|---|---|---|");
for (const [name, s] of [
  ["ambit dev up (2 nodes, demo)", result.upSeconds],
  ["ambit dev down", result.downSeconds],
] as const) {
  console.log(`| ${name} | ${s.median.toFixed(2)} | ${s.min.toFixed(2)} | ${s.max.toFixed(2)} |`);
}
await fs.mkdir(path.join(REPO_ROOT, "bench", "results"), { recursive: true });
await fs.writeFile(path.join(REPO_ROOT, "bench", "results", "sandbox-updown.json"), JSON.stringify(result, null, 2) + "\n");
