// Test helper: run a small Node script inside a network namespace and wait until it says it is ready.
import { type ResultPromise, execa } from "execa";

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
