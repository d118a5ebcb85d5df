// Certificates of the identities of local pods: issued before a pod is captured, renewed at half life.
import type { Logger } from "pino";
import { type SpiffeId, formatSpiffeId } from "./spiffe.ts";
import type { Credentials } from "./index.ts";
import type { IssuedCertificate } from "./local-ca.ts";

export interface CertificateIssuer {
  rootPem: string;
  issue(id: SpiffeId): Promise<IssuedCertificate>;
}

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
    const halfLife = Math.max(1000, (cert.notAfter.getTime() - Date.now()) / 2);
    clearTimeout(this.#timers.get(key));
    const timer = setTimeout(() => void this.#renew(id).catch((err: unknown) => this.#log.error({ identity: key, err: String(err) }, "certificate renewal failed; retrying in 30 s")), halfLife);
    timer.unref();
    this.#timers.set(key, timer);
    this.#log.info({ identity: key, notAfter: cert.notAfter.toISOString() }, "certificate issued");
  }

  credentialsFor(id: SpiffeId): Credentials {
    const cert = this.#certs.get(formatSpiffeId(id));
    if (!cert) throw Object.assign(new Error(`no certificate held for ${formatSpiffeId(id)}`), { code: "AMBIT_E_IDENTITY_MISSING" });
    return cert;
  }

  /** For the admin API: identities and expiry, never keys. */
  summary(): Array<{ identity: string; notAfter: string }> {
    return [...this.#certs.values()].map((c) => ({ identity: c.identity, notAfter: c.notAfter.toISOString() }));
  }

  stop(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
  }
}
