// Installs and removes a pod's capture rules inside its netns with one atomic iptables-restore each.
import { run } from "../../host/exec.ts";
import { CAPTURE_CHAINS, type CaptureOptions, renderCaptureRestore, renderReleaseRestore } from "./rules.ts";

export type CaptureState = "captured" | "released" | "partial";

interface Present {
  preroutingJump: boolean;
  outputJump: boolean;
  preroutingChain: boolean;
  outputChain: boolean;
}

async function present(netnsPath: string): Promise<Present> {
  const { stdout } = await run("iptables-save", ["-t", "nat"], { netns: netnsPath });
  const lines = stdout.split("\n");
  const { prerouting: pre, output: out } = CAPTURE_CHAINS;
  return {
    preroutingJump: lines.includes(`-A PREROUTING -j ${pre}`),
    outputJump: lines.includes(`-A OUTPUT -j ${out}`),
    preroutingChain: lines.some((l) => l.startsWith(`:${pre} `)),
    outputChain: lines.some((l) => l.startsWith(`:${out} `)),
  };
}

/** Installs (or refreshes) the capture rules; idempotent, and all-or-nothing per call. */
export async function applyCaptureRules(netnsPath: string, opts: CaptureOptions = {}): Promise<void> {
  const p = await present(netnsPath);
  await run("iptables-restore", ["--noflush"], { netns: netnsPath, input: renderCaptureRestore(opts, { prerouting: p.preroutingJump, output: p.outputJump }) });
}

/** Removes the capture rules, leaving the pod's other rules alone; idempotent. */
export async function removeCaptureRules(netnsPath: string): Promise<void> {
  const p = await present(netnsPath);
  if (!p.preroutingJump && !p.outputJump && !p.preroutingChain && !p.outputChain) return;
  await run("iptables-restore", ["--noflush"], { netns: netnsPath, input: renderReleaseRestore(p) });
}

export async function captureState(netnsPath: string): Promise<CaptureState> {
  const p = await present(netnsPath);
  const all = [p.preroutingJump, p.outputJump, p.preroutingChain, p.outputChain];
  if (all.every(Boolean)) return "captured";
  if (all.every((x) => !x)) return "released";
  return "partial";
}
