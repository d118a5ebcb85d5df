// Test helper: run a small Node script inside a network namespace and wait until it says it is ready.
import { type ResultPromise, execa } from "execa";
import { run } from "../../host/exec.ts";

/**
 * Starts `node -e <script> ...args` inside `netns` and resolves to its PID once it prints its first line.
 * nsenter execs, so the PID is the script's own: the caller kills it by PID in a finally block.
 */
export async function startInNetns(netns: string, script: string, args: string[], what = "process"): Promise<number> {
  const child: ResultPromise = execa("nsenter", [`--net=/run/netns/${netns}`, "--", process.execPath, "-e", script, ...args], { reject: false });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} in ${netns} did not start`)), 10_000);
    child.stdout?.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (child.pid === undefined) throw new Error(`${what} in ${netns} has no pid`);
  return child.pid;
}

/** One TCP request from inside `netns` (optionally from a given source address); resolves to the reply or "ERR:<code>". */
export async function requestFrom(netns: string, host: string, port: number, localAddress?: string): Promise<string> {
  const script = `const s = require("net").connect({ host: ${JSON.stringify(host)}, port: ${port}${localAddress ? `, localAddress: ${JSON.stringify(localAddress)}` : ""} });
let d = ""; s.on("data", (c) => (d += c)).on("end", () => console.log(d)).on("error", (e) => console.log("ERR:" + e.code));`;
  return (await run(process.execPath, ["-e", script], { netns, timeoutMs: 10_000 })).stdout.trim();
}

/** Runs tcpdump (ASCII payloads) on `iface` inside `netns` while `fn` runs; returns what it printed. */
export async function sniff(netns: string, iface: string, filter: string, fn: () => Promise<unknown>): Promise<string> {
  const dump: ResultPromise = execa("nsenter", [`--net=/run/netns/${netns}`, "--", "tcpdump", "-i", iface, "-A", "-l", "-n", "-U", filter], { reject: false });
  let out = "";
  dump.stdout?.on("data", (d: Buffer) => (out += d.toString("latin1")));
  await new Promise<void>((resolve) => {
    dump.stderr?.on("data", (d: Buffer) => d.toString().includes("listening on") && resolve());
    setTimeout(resolve, 3000);
  });
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    dump.kill("SIGINT");
    await dump;
  }
  return out;
}
