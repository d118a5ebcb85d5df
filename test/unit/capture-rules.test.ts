// In-pod capture rules: what is redirected where, what is exempt, and idempotent installation.
import { describe, expect, it } from "vitest";
import { renderCaptureChains } from "../../agent/capture/index.ts";
import { renderCaptureRestore, renderReleaseRestore } from "../../agent/capture/rules.ts";

describe("capture rules", () => {
  it("redirects outbound to 15001 and inbound to 15006, exempting HBONE, marked sockets, loopback and probes", () => {
    const { prerouting, output } = renderCaptureChains({ probeSourceIps: ["172.31.250.11"], excludeInboundPorts: [9090, 22, 9090] });
    expect(prerouting).toEqual([
      "-A AMBIT-PREROUTING -s 172.31.250.11/32 -p tcp -j RETURN",
      "-A AMBIT-PREROUTING -p tcp --dport 15008 -j RETURN",
      "-A AMBIT-PREROUTING -p tcp --dport 22 -j RETURN",
      "-A AMBIT-PREROUTING -p tcp --dport 9090 -j RETURN",
      "-A AMBIT-PREROUTING -p tcp -m mark --mark 0x539/0xfff -j RETURN",
      "-A AMBIT-PREROUTING -p tcp --syn -j REDIRECT --to-ports 15006",
    ]);
    expect(output).toEqual([
      "-A AMBIT-OUTPUT -p tcp -m mark --mark 0x539/0xfff -j RETURN",
      "-A AMBIT-OUTPUT -p tcp -d 127.0.0.0/8 -j RETURN",
      "-A AMBIT-OUTPUT -p tcp -o lo -j RETURN",
      "-A AMBIT-OUTPUT -p tcp --syn -j REDIRECT --to-ports 15001",
    ]);
  });

  it("adds the jumps from the built-in chains only when they are missing", () => {
    const fresh = renderCaptureRestore({}, { prerouting: false, output: false });
    expect(fresh).toContain("-A PREROUTING -j AMBIT-PREROUTING\n-A OUTPUT -j AMBIT-OUTPUT");
    const again = renderCaptureRestore({}, { prerouting: true, output: true });
    expect(again).not.toContain("-A PREROUTING");
    expect(again).toMatch(/^\*nat\n:AMBIT-PREROUTING - \[0:0\]\n:AMBIT-OUTPUT - \[0:0\]\n/);
    expect(renderReleaseRestore({ preroutingJump: true, outputJump: false, preroutingChain: true, outputChain: true })).toBe(
      "*nat\n-D PREROUTING -j AMBIT-PREROUTING\n-F AMBIT-PREROUTING\n-X AMBIT-PREROUTING\n-F AMBIT-OUTPUT\n-X AMBIT-OUTPUT\nCOMMIT\n",
    );
  });
});
