// The iptables rules that send a sidecar pod's own TCP traffic through its proxy (pure rendering), and the init step that installs them.
import { run } from "../host/exec.ts";
import { SIDECAR_PORTS } from "../contract/sidecar.ts";
import type { SidecarInitConfig } from "./config.ts";

export const SIDECAR_CHAINS = { inbound: "AMBIT-SIDECAR-INBOUND", outbound: "AMBIT-SIDECAR-OUTBOUND" } as const;

/**
 * iptables-restore input (with --noflush) for the pod's nat table. As Istio's istio-init, run once in the pod's netns
 * before any app container starts:
 * - outbound: every new TCP connection the pod opens goes to the proxy on 15001, except the proxy's own (its user,
 *   matched by owner), loopback, and excluded CIDRs;
 * - inbound: new TCP connections to the pod go to 15006, except the proxy's own ports (HBONE 15008, metrics,
 *   readiness), excluded ports and the node's address (kubelet probes reach the app as on an uncaptured pod).
 * Declaring the chains empties them, so running it again (an init container restarted) refreshes the rules; the jumps
 * are added only when `jumpsPresent` says they are missing.
 */
export function renderSidecarCapture(cfg: SidecarInitConfig, jumpsPresent: { inbound: boolean; outbound: boolean }): string {
  const { inbound: inChain, outbound: outChain } = SIDECAR_CHAINS;
  const own = [SIDECAR_PORTS.hbone, SIDECAR_PORTS.metrics, SIDECAR_PORTS.readiness];
  const skipPorts = [...new Set([...own, ...cfg.excludeInboundPorts])].sort((a, b) => a - b);
  return [
    "*nat",
    `:${inChain} - [0:0]`,
    `:${outChain} - [0:0]`,
    ...(jumpsPresent.inbound ? [] : [`-A PREROUTING -p tcp -j ${inChain}`]),
    ...(jumpsPresent.outbound ? [] : [`-A OUTPUT -p tcp -j ${outChain}`]),
    ...(cfg.hostIp ? [`-A ${inChain} -s ${cfg.hostIp}/32 -p tcp -j RETURN`] : []),
    ...skipPorts.map((p) => `-A ${inChain} -p tcp --dport ${p} -j RETURN`),
    `-A ${inChain} -p tcp --syn -j REDIRECT --to-ports ${SIDECAR_PORTS.inboundPlaintext}`,
    `-A ${outChain} -m owner --uid-owner ${cfg.proxyUid} -j RETURN`,
    `-A ${outChain} -d 127.0.0.0/8 -j RETURN`,
    // The pod talking to itself through its own address (the loopback device): not mesh traffic.
    `-A ${outChain} -o lo -j RETURN`,
    ...[...new Set(cfg.excludeOutboundCidrs)].sort().map((c) => `-A ${outChain} -d ${c} -j RETURN`),
    `-A ${outChain} -p tcp --syn -j REDIRECT --to-ports ${SIDECAR_PORTS.outbound}`,
    "COMMIT",
    "",
  ].join("\n");
}

/** The init container's work, in the pod's netns (it runs there): install the rules in one atomic restore. */
export async function installSidecarCapture(cfg: SidecarInitConfig): Promise<string> {
  const { stdout } = await run("iptables-save", ["-t", "nat"]);
  const lines = stdout.split("\n");
  const rules = renderSidecarCapture(cfg, {
    inbound: lines.includes(`-A PREROUTING -p tcp -j ${SIDECAR_CHAINS.inbound}`),
    outbound: lines.includes(`-A OUTPUT -p tcp -j ${SIDECAR_CHAINS.outbound}`),
  });
  await run("iptables-restore", ["--noflush"], { input: rules });
  return rules;
}
