// Workload certificates of a node agent: issued once per identity, renewed at half life, retried after a failure (fake timers).
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CertificateManager, type CertificateIssuer } from "../../agent/identity/certificates.ts";
import type { IssuedCertificate } from "../../agent/identity/certificates.ts";
import { formatSpiffeId, type SpiffeId } from "../../contract/spiffe.ts";

const HOUR = 3600_000;
const orders: SpiffeId = { trustDomain: "cluster.local", namespace: "demo", serviceAccount: "orders" };

describe("CertificateManager", () => {
  let issued: IssuedCertificate[];
  let failNext: number;
  const issuer: CertificateIssuer = {
    issue: async (id) => {
      if (failNext > 0) {
        failNext--;
        throw new Error("CA unreachable");
      }
      const cert = {
        identity: formatSpiffeId(id),
        notAfter: new Date(Date.now() + 24 * HOUR),
        certChainPem: `cert-${issued.length}`,
        keyPem: `key-${issued.length}`,
      };
      issued.push(cert);
      return cert;
    },
  };

  beforeEach(() => {
    vi.useFakeTimers();
    issued = [];
    failNext = 0;
  });
  afterEach(() => vi.useRealTimers());

  it("issues once per identity and renews at half life, handing new credentials to new connections", async () => {
    const changes: number[] = [];
    const manager = new CertificateManager(issuer, pino({ level: "silent" }), (certs) => changes.push(certs.length));
    await manager.ensure(orders);
    await manager.ensure(orders);
    expect(issued).toHaveLength(1);
    const first = manager.credentialsFor(orders);

    await vi.advanceTimersByTimeAsync(12 * HOUR - 1000);
    expect(issued).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(issued).toHaveLength(2);
    expect(manager.credentialsFor(orders)).not.toBe(first);
    expect(manager.credentialsFor(orders).certChainPem).toBe("cert-1");
    // The next renewal is again at half of the new certificate's life.
    await vi.advanceTimersByTimeAsync(12 * HOUR + 1000);
    expect(issued).toHaveLength(3);
    expect(changes).toEqual([1, 1, 1]);
    manager.stop();
  });

  it("keeps the held certificate and retries when a renewal fails", async () => {
    const manager = new CertificateManager(issuer, pino({ level: "silent" }));
    await manager.ensure(orders);
    failNext = 2;
    await vi.advanceTimersByTimeAsync(12 * HOUR + 1000);
    expect(issued).toHaveLength(1);
    expect(manager.credentialsFor(orders).certChainPem).toBe("cert-0");
    await vi.advanceTimersByTimeAsync(30_000);
    expect(issued).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(issued).toHaveLength(2);
    manager.stop();
  });

  it("holds an identity while a local pod uses it, and drops it (key and renewal) with the last such pod", async () => {
    const changes: number[] = [];
    const manager = new CertificateManager(issuer, pino({ level: "silent" }), (certs) => changes.push(certs.length));
    await manager.acquire(orders, "pod-a");
    await manager.acquire(orders, "pod-b");
    await manager.acquire(orders, "pod-a"); // captured again (reconcile): still one user
    expect(issued).toHaveLength(1);
    manager.release("pod-a");
    expect(manager.credentialsFor(orders).certChainPem).toBe("cert-0");
    manager.release("pod-a"); // released twice: nothing more
    expect(manager.credentialsFor(orders).certChainPem).toBe("cert-0");
    manager.release("pod-b");
    expect(() => manager.credentialsFor(orders)).toThrow(/no certificate held/);
    expect(manager.summary()).toEqual([]);
    expect(changes).toEqual([1, 0]);
    await vi.advanceTimersByTimeAsync(48 * HOUR);
    expect(issued).toHaveLength(1);
  });

  it("never drops the agent's own (pinned) identity, and takes nothing when issuance fails", async () => {
    const manager = new CertificateManager(issuer, pino({ level: "silent" }));
    await manager.ensure(orders);
    await manager.acquire(orders, "pod-a");
    manager.release("pod-a");
    expect(manager.credentialsFor(orders).certChainPem).toBe("cert-0");

    const payments: SpiffeId = { ...orders, serviceAccount: "payments" };
    failNext = 1;
    await expect(manager.acquire(payments, "pod-p")).rejects.toThrow(/CA unreachable/);
    expect(() => manager.credentialsFor(payments)).toThrow(/no certificate held/);
    // The failed pod holds nothing: a later pod of the same identity gets a fresh certificate, and releasing
    // it drops the identity again.
    await manager.acquire(payments, "pod-q");
    manager.release("pod-q");
    expect(manager.summary().map((c) => c.identity)).toEqual([formatSpiffeId(orders)]);
    manager.stop();
  });

  it("does not keep a certificate that arrives after its last pod went away", async () => {
    let answer: (() => void) | undefined;
    const slow: CertificateIssuer = {
      issue: (id) =>
        new Promise(
          (resolve) => (answer = () => resolve({ identity: formatSpiffeId(id), notAfter: new Date(Date.now() + HOUR), certChainPem: "late", keyPem: "late" })),
        ),
    };
    const manager = new CertificateManager(slow, pino({ level: "silent" }));
    const acquiring = manager.acquire(orders, "pod-a");
    manager.release("pod-a");
    answer!();
    await acquiring;
    expect(manager.summary()).toEqual([]);
    await vi.advanceTimersByTimeAsync(2 * HOUR);
    expect(manager.summary()).toEqual([]);
  });
});
