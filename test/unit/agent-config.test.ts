// Agent configuration: defaults, overrides, and every invalid value reported at once.
import { describe, expect, it } from "vitest";
import { ConfigError, loadAgentConfig } from "../../agent/config.ts";

describe("loadAgentConfig", () => {
  it("uses ztunnel-like defaults", () => {
    expect(loadAgentConfig({ NODE_NAME: "node-1" })).toEqual({
      nodeName: "node-1",
      trustDomain: "cluster.local",
      cniSocket: "/var/run/ambit/cni.sock",
      netnsDir: "/var/run/netns",
      procDir: "/proc",
      hboneMaxStreamsPerConnection: 100,
      hboneIdleTimeoutMs: 300_000,
      drainDeadlineMs: 30_000,
      handoverWaitMs: 20_000,
      verifyIntervalMs: 30_000,
      podName: undefined,
      cniTimeoutMs: 10_000,
      logLevel: "info",
      readyFile: undefined,
      controllerAddress: "ambit-controller.ambit-system.svc",
      configStreamPort: 15010,
      caPort: 15012,
      caTokenFile: "/var/run/secrets/tokens/ambit-ca/token",
      systemNamespace: "ambit-system",
      serviceAccount: "ambit-agent",
    });
  });

  it("reports every problem with what to do, in one error", () => {
    let err: unknown;
    try {
      loadAgentConfig({ AMBIT_HBONE_MAX_STREAMS: "0", TRUST_DOMAIN: "Bad Domain", AMBIT_LOG_LEVEL: "loud" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe("AMBIT_E_CONFIG");
    const message = (err as Error).message;
    expect(message).toContain("NODE_NAME is required (set it from the downward API");
    expect(message).toContain('AMBIT_HBONE_MAX_STREAMS="0" must be an integer from 1 to 10000');
    expect(message).toContain('TRUST_DOMAIN="Bad Domain" is not a valid SPIFFE trust domain');
    expect(message).toContain('AMBIT_LOG_LEVEL="loud" must be one of');
  });
});
