// Certificates of the identities of local pods: issued before a pod is captured, renewed at half life.
import type { Logger } from "pino";
import { type SpiffeId, formatSpiffeId } from "./spiffe.ts";
import type { Credentials } from "./index.ts";

export interface IssuedCertificate extends Credentials {
  identity: string;
  notAfter: Date;
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
  readonly #onChange: (certs: IssuedCertificate[]) => void;

  constructor(issuer: CertificateIssuer, log: Logger, onChange: (certs: IssuedCertificate[]) => void = () => {}) {
    this.#issuer = issuer;
    this.#log = log.child({ component: "certificates" });
    this.#onChange = onChange;
  }

  /** Makes sure a certificate for `id` is held (issues one if not). */
  async ensure(id: SpiffeId): Promise<void> {
    const key = formatSpiffeId(id);
    if (this.#certs.has(key)) return;
    await this.#renew(id);
  }

  async #renew(id: SpiffeId): Promise<void> {
    const key = formatSpiffeId(id);
    const cert = await this.#issuer.issue(id);
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
    if (!cert) throw Object.assign(new Error(`no certificate held for ${formatSpiffeId(id)}`), { code: "AMBIT_E_IDENTITY_MISSING" });
    return cert;
  }

  /** Stops renewing an identity no pod of this node uses any more. */
  forget(id: SpiffeId): void {
    const key = formatSpiffeId(id);
    clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
    if (this.#certs.delete(key)) this.#onChange([...this.#certs.values()]);
  }

  /** For the admin API: identities and expiry, never keys. */
  summary(): Array<{ identity: string; notAfter: string }> {
    return [...this.#certs.values()].map((c) => ({ identity: c.identity, notAfter: c.notAfter.toISOString() }));
  }

  stop(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
  }
}
