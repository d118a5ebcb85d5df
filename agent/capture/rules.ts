// The iptables rules that capture a pod's TCP traffic inside its own network namespace (pure rendering).
import { AGENT_SOCKET_MARK, PORTS } from "../config.ts";

export const CAPTURE_CHAINS = { prerouting: "AMBIT-PREROUTING", output: "AMBIT-OUTPUT" } as const;

export interface CaptureOptions {
  outboundPort?: number;
  inboundPlaintextPort?: number;
  hbonePort?: number;
  /** SO_MARK of the agent's own sockets: never captured, so the agent can reach apps and peers from the pod. */
  mark?: number;
  /** Inbound ports left alone (e.g. ports an operator excludes). */
  excludeInboundPorts?: number[];
  /** Sources whose inbound traffic is not captured: the node's address, so kubelet probes keep working. */
  probeSourceIps?: string[];
}

/**
 * Rules for the pod's nat table, in dedicated chains jumped to from PREROUTING and OUTPUT:
 * - outbound: every new TCP connection the pod opens goes to the agent's listener on 127.0.0.1:15001, except
 *   loopback destinations and connections from the agent's own (marked) sockets;
 * - inbound: new TCP connections to the pod go to 15006 (plaintext), except HBONE on 15008 (the agent's
 *   listener there terminates mTLS itself), excluded ports and probe sources.
 * Only NEW connections traverse nat chains, so replies on captured connections are never captured again. The
 * REDIRECTs also require SYN: a pod netns that had no rules may not have been tracking its connections, and
 * without it the next packet of a connection open before capture would look new and be reset.
 */
export function renderCaptureChains(opts: CaptureOptions = {}): { prerouting: string[]; output: string[] } {
  const outbound = opts.outboundPort ?? PORTS.outbound;
  const inbound = opts.inboundPlaintextPort ?? PORTS.inboundPlaintext;
  const hbone = opts.hbonePort ?? PORTS.hbone;
  const mark = `0x${(opts.mark ?? AGENT_SOCKET_MARK).toString(16)}/0xfff`;
  const { prerouting: pre, output: out } = CAPTURE_CHAINS;
  const prerouting = [
    ...[...(opts.probeSourceIps ?? [])].sort().map((ip) => `-A ${pre} -s ${ip}/32 -p tcp -j RETURN`),
    `-A ${pre} -p tcp --dport ${hbone} -j RETURN`,
    ...[...new Set(opts.excludeInboundPorts ?? [])].sort((a, b) => a - b).map((p) => `-A ${pre} -p tcp --dport ${p} -j RETURN`),
    `-A ${pre} -p tcp -m mark --mark ${mark} -j RETURN`,
    `-A ${pre} -p tcp --syn -j REDIRECT --to-ports ${inbound}`,
  ];
  const output = [
    `-A ${out} -p tcp -m mark --mark ${mark} -j RETURN`,
    `-A ${out} -p tcp -d 127.0.0.0/8 -j RETURN`,
    // The pod talking to itself through its own address (loopback device): not mesh traffic.
    `-A ${out} -p tcp -o lo -j RETURN`,
    `-A ${out} -p tcp --syn -j REDIRECT --to-ports ${outbound}`,
  ];
  return { prerouting, output };
}

/**
 * iptables-restore input (use with --noflush) that installs or refreshes the capture atomically: declaring the
 * chains empties them, the rules refill them, and the jumps are added only when `jumpsPresent` says they are missing.
 */
export function renderCaptureRestore(opts: CaptureOptions, jumpsPresent: { prerouting: boolean; output: boolean }): string {
  const { prerouting, output } = renderCaptureChains(opts);
  const { prerouting: pre, output: out } = CAPTURE_CHAINS;
  return [
    "*nat",
    `:${pre} - [0:0]`,
    `:${out} - [0:0]`,
    ...(jumpsPresent.prerouting ? [] : [`-A PREROUTING -j ${pre}`]),
    ...(jumpsPresent.output ? [] : [`-A OUTPUT -j ${out}`]),
    ...prerouting,
    ...output,
    "COMMIT",
    "",
  ].join("\n");
}

/** iptables-restore input (--noflush) that removes the jumps and chains that exist. */
export function renderReleaseRestore(present: { preroutingJump: boolean; outputJump: boolean; preroutingChain: boolean; outputChain: boolean }): string {
  const { prerouting: pre, output: out } = CAPTURE_CHAINS;
  return [
    "*nat",
    ...(present.preroutingJump ? [`-D PREROUTING -j ${pre}`] : []),
    ...(present.outputJump ? [`-D OUTPUT -j ${out}`] : []),
    ...(present.preroutingChain ? [`-F ${pre}`, `-X ${pre}`] : []),
    ...(present.outputChain ? [`-F ${out}`, `-X ${out}`] : []),
    "COMMIT",
    "",
  ].join("\n");
}
