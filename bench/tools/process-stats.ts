// What the data-plane benches read about a process from /proc (CPU time, RSS), and how they summarise rounds.
import fs from "node:fs/promises";

/** User and kernel CPU time of a process in seconds (utime and stime, clock ticks of 10 ms). */
export async function cpuTimes(pid: number): Promise<{ user: number; kernel: number }> {
  const fields = (await fs.readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return { user: Number(fields[11]) / 100, kernel: Number(fields[12]) / 100 };
}

export async function rssKiB(pid: number): Promise<number> {
  return Number(/VmRSS:\s+(\d+)/.exec(await fs.readFile(`/proc/${pid}/status`, "utf8"))?.[1]);
}

/** Median, rounded to 4 decimals (an even count averages two samples, which prints float noise otherwise). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return Number(m.toFixed(4));
}

/** User plus kernel CPU time of a process in seconds. */
export async function cpuSeconds(pid: number): Promise<number> {
  const t = await cpuTimes(pid);
  return t.user + t.kernel;
}
