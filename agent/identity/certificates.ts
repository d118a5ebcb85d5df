// Certificates of the identities of local pods: issued before a pod is captured, renewed at half life.
import { X509Certificate } from "node:crypto";
import type { Logger } from "pino";
import type { CertificateChainEntry, CertificateSummary } from "../../contract/agent-admin.ts";
import { type SpiffeId, formatSpiffeId } from "../../contract/spiffe.ts";
import type { Credentials } from "./index.ts";
import { AmbitError } from "../../contract/errors.ts";
import { AGENT_ERRORS } from "../../contract/error-codes.ts";

export interface IssuedCertificate extends Credentials {
  identity: string;
  notAfter: Date;
}

/** Each certificate of a PEM chain, leaf first; self-signed ones (a trust bundle's) are roots. */
export function describeChain(pem: string): CertificateChainEntry[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((one, i) => {
    const x = new X509Certificate(one);
    return {
      type: x.subject === x.issuer ? "root" : i === 0 ? "leaf" : "intermediate",
      serialNumber: x.serialNumber.toLowerCase(),
      notBefore: new Date(x.validFrom).toISOString(),
      notAfter: new Date(x.validTo).toISOString(),
    };
  });
}

/** Who signs the agent's certificates: the controller's CA (tests may use a local one). */
export interface CertificateIssuer {
  issue(id: SpiffeId): Promise<IssuedCertificate>;
}

/** How soon a failed renewal is tried again (sooner when the held certificate is about to expire). */
const RENEWAL_RETRY_MS = 30_000;

export class CertificateManager {
  readonly #issuer: CertificateIssuer;
  readonly #log: Logger;
  readonly #certs = new Map<string, IssuedCertificate>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** The captured pods (uids) using each identity, and each pod's identity. */
  readonly #users = new Map<string, Set<string>>();
  readonly #podIdentity = new Map<string, string>();
  /** Identities held whatever the pods (the agent's own). */
  readonly #pinned = new Set<string>();
  readonly #onChange: (certs: IssuedCertificate[]) => void;

  constructor(issuer: CertificateIssuer, log: Logger, onChange: (certs: IssuedCertificate[]) => void = () => {}) {
    this.#issuer = issuer;
    this.#log = log.child({ component: "certificates" });
    this.#onChange = onChange;
  }

  /** Makes sure a certificate for `id` is held (issues one if not) and keeps it for good (the agent's own). */
  async ensure(id: SpiffeId): Promise<void> {
    const key = formatSpiffeId(id);
    this.#pinned.add(key);
    if (this.#certs.has(key)) return;
    await this.#renew(id);
  }

  /**
   * Local pod `podUid` of identity `id` is being captured: holds that identity's certificate (issuing one if
   * needed) for as long as some pod uses it. Idempotent per pod. Fails, taking nothing, when the certificate
   * cannot be had.
   */
  async acquire(id: SpiffeId, podUid: string): Promise<void> {
    const key = formatSpiffeId(id);
    const previous = this.#podIdentity.get(podUid);
    if (previous !== undefined && previous !== key) this.release(podUid);
    this.#podIdentity.set(podUid, key);
    const users = this.#users.get(key) ?? new Set<string>();
    users.add(podUid);
    this.#users.set(key, users);
    try {
      if (!this.#certs.has(key)) await this.#renew(id);
    } catch (err) {
      this.release(podUid);
      throw err;
    }
  }

  /**
   * Pod `podUid` was released or deleted. The last pod of an identity takes its certificate with it: the node
   * stops holding (and renewing) an identity it no longer runs. Live connections keep the TLS context they
   * were made with.
   */
  release(podUid: string): void {
    const key = this.#podIdentity.get(podUid);
    if (key === undefined) return;
    this.#podIdentity.delete(podUid);
    const users = this.#users.get(key);
    users?.delete(podUid);
    if (users && users.size > 0) return;
    this.#users.delete(key);
    if (this.#pinned.has(key)) return;
    clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
    if (this.#certs.delete(key)) {
      this.#onChange([...this.#certs.values()]);
      this.#log.info({ identity: key }, "certificate dropped: no local pod has this identity any more");
    }
  }

  #wanted(key: string): boolean {
    return this.#pinned.has(key) || (this.#users.get(key)?.size ?? 0) > 0;
  }

  async #renew(id: SpiffeId): Promise<void> {
    const key = formatSpiffeId(id);
    const cert = await this.#issuer.issue(id);
    // Its last pod went away while the CA was answering.
    if (!this.#wanted(key)) return;
    this.#certs.set(key, cert);
    this.#onChange([...this.#certs.values()]);
    // Renewed at half life; live connections keep the context they were made with.
    this.#schedule(id, Math.max(1000, (cert.notAfter.getTime() - Date.now()) / 2));
    this.#log.info({ identity: key, notAfter: cert.notAfter.toISOString() }, "certificate issued");
  }

  #schedule(id: SpiffeId, delayMs: number): void {
    const key = formatSpiffeId(id);
    clearTimeout(this.#timers.get(key));
    const timer = setTimeout(
      () =>
        void this.#renew(id).catch((err: unknown) => {
          // The current certificate stays in use meanwhile; retry well before it expires.
          const held = this.#certs.get(key);
          const retryMs = Math.min(RENEWAL_RETRY_MS, Math.max(1000, held ? (held.notAfter.getTime() - Date.now()) / 4 : RENEWAL_RETRY_MS));
          this.#log.error({ identity: key, err: String(err), retryMs }, "certificate renewal failed; retrying");
          this.#schedule(id, retryMs);
        }),
      delayMs,
    );
    timer.unref();
    this.#timers.set(key, timer);
  }

  credentialsFor(id: SpiffeId): Credentials {
    const cert = this.#certs.get(formatSpiffeId(id));
    if (!cert) throw new AmbitError(AGENT_ERRORS.code.identityMissing, `no certificate held for ${formatSpiffeId(id)}`);
    return cert;
  }

  /**
   * For the admin API: identities, expiry and each certificate of the chain (serial, validity), never keys. The
   * chain is parsed here, on demand, rather than kept parsed for every held identity.
   */
  summary(): CertificateSummary[] {
    return [...this.#certs.values()].map((c) => {
      const chain = describeChain(c.certChainPem);
      return { identity: c.identity, notAfter: c.notAfter.toISOString(), ...(chain[0] ? { notBefore: chain[0].notBefore } : {}), chain };
    });
  }

  stop(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
  }
}
