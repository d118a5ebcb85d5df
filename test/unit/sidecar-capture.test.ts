// The sidecar's capture rules (rendered for iptables-restore) and its typed configuration: what must be captured, what must not, and bad settings refused whole.
import { describe, expect, it } from "vitest";
import { SIDECAR_CHAINS, renderSidecarCapture } from "../../sidecar/index.ts";
import { SidecarConfigError, loadSidecarConfig, loadSidecarInitConfig } from "../../sidecar/index.ts";

const base = { proxyUid: 1337, excludeInboundPorts: [], excludeOutboundCidrs: [], hostIp: undefined };

describe("sidecar capture rules", () => {
  it("sends the app's outbound TCP to 15001 and inbound to 15006, never the proxy's own connections or ports", () => {
    const rules = renderSidecarCapture(base, { inbound: false, outbound: false }).split("\n");
    const { inbound, outbound } = SIDECAR_CHAINS;
    expect(rules).toContain(`-A PREROUTING -p tcp -j ${inbound}`);
    expect(rules).toContain(`-A OUTPUT -p tcp -j ${outbound}`);
    // The proxy's user leaves uncaptured, before the REDIRECT (order matters in a chain).
    const own = rules.indexOf(`-A ${outbound} -m owner --uid-owner 1337 -j RETURN`);
    const redirectOut = rules.indexOf(`-A ${outbound} -p tcp --syn -j REDIRECT --to-ports 15001`);
    expect(own).toBeGreaterThan(0);
    expect(redirectOut).toBeGreaterThan(own);
    for (const port of [15008, 15020, 15021]) {
      const skip = rules.indexOf(`-A ${inbound} -p tcp --dport ${port} -j RETURN`);
      expect(skip).toBeGreaterThan(0);
      expect(skip).toBeLessThan(rules.indexOf(`-A ${inbound} -p tcp --syn -j REDIRECT --to-ports 15006`));
    }
    expect(rules[0]).toBe("*nat");
    expect(rules.at(-2)).toBe("COMMIT");
  });

  it("adds the jumps only when missing, so running the init step twice leaves one jump each", () => {
    const again = renderSidecarCapture(base, { inbound: true, outbound: true });
    expect(again).not.toContain("-A PREROUTING");
    expect(again).not.toContain("-A OUTPUT");
  });

  it("honours excluded ports and CIDRs and lets the node's probes through", () => {
    const rules = renderSidecarCapture(
      { proxyUid: 1337, excludeInboundPorts: [9090, 9090], excludeOutboundCidrs: ["10.0.0.0/8"], hostIp: "172.31.250.11" },
      { inbound: false, outbound: false },
    );
    expect(rules.match(/--dport 9090 -j RETURN/g)).toHaveLength(1);
    expect(rules).toContain(`-A ${SIDECAR_CHAINS.outbound} -d 10.0.0.0/8 -j RETURN`);
    expect(rules).toContain(`-A ${SIDECAR_CHAINS.inbound} -s 172.31.250.11/32 -p tcp -j RETURN`);
  });
});

describe("sidecar configuration", () => {
  const env = { POD_NAME: "web-1", POD_NAMESPACE: "shop", POD_IP: "10.244.1.7", SERVICE_ACCOUNT: "web" };

  it("reads the downward API's values", () => {
    const c = loadSidecarConfig(env);
    expect(c).toMatchObject({ pod: { namespace: "shop", name: "web-1" }, podIp: "10.244.1.7", serviceAccount: "web", trustDomain: "cluster.local" });
    expect(c.caTokenFile).toBe("/var/run/secrets/tokens/ambit-ca/token");
  });

  it("names every problem at once, with a stable code", () => {
    const err = (() => {
      try {
        loadSidecarConfig({ POD_NAME: "Web", POD_IP: "nope", AMBIT_LOG_LEVEL: "loud" });
      } catch (e) {
        return e as SidecarConfigError;
      }
    })();
    expect(err).toBeInstanceOf(SidecarConfigError);
    expect(err?.code).toBe("AMBIT_E_CONFIG");
    for (const what of ["POD_NAME", "POD_NAMESPACE", "SERVICE_ACCOUNT", "POD_IP", "AMBIT_LOG_LEVEL"]) expect(err?.message).toContain(what);
  });

  it("refuses bad init settings instead of capturing too much or too little", () => {
    expect(() => loadSidecarInitConfig({ AMBIT_PROXY_UID: "0" })).toThrow(/AMBIT_PROXY_UID/);
    expect(() => loadSidecarInitConfig({ AMBIT_EXCLUDE_INBOUND_PORTS: "80,x" })).toThrow(/"x" is not a port/);
    expect(() => loadSidecarInitConfig({ AMBIT_EXCLUDE_OUTBOUND_CIDRS: "10.0.0.0/33" })).toThrow(/not an IPv4 CIDR/);
    expect(loadSidecarInitConfig({ AMBIT_EXCLUDE_INBOUND_PORTS: " 80, 443 ", HOST_IP: "172.31.250.11" })).toEqual({
      proxyUid: 1337,
      excludeInboundPorts: [80, 443],
      excludeOutboundCidrs: [],
      hostIp: "172.31.250.11",
    });
  });
});
