// A pod's own mesh identity for the proxies that are not the node agent (waypoint, sidecar): roots from a mounted file, its certificate from the controller's CA with the pod's bound token, renewed.
import fs from "node:fs/promises";
import type { Logger } from "pino";
import { formatSpiffeId, type SpiffeId } from "../../contract/spiffe.ts";
import { retryUntil } from "../lifecycle/index.ts";
import { CertificateManager } from "./certificates.ts";
import { ControllerCaClient } from "./controller-ca.ts";
import type { Credentials } from "./index.ts";

export interface PodIdentityOptions {
  identity: SpiffeId;
  /** The roots the controller's certificate chains to at start-up (a ConfigMap, mounted). */
  trustRootsFile: string;
  /** The controller's Service name: where its CA listens, and the name its certificate carries. */
  controllerAddress: string;
  caPort: number;
  /** The pod's projected token (audience ambit-ca), re-read for every request. */
  caTokenFile: string;
  log: Logger;
  /** New credentials or roots for the listeners: a renewal at half life, or a root rotation. */
  onChange(): void;
}

/**
 * Roots first from the mounted file (to trust the controller at all), then from every config version
 * (`setTrustBundle`), so a root rotation needs no restart. The CA gives a pod exactly its own identity (its pod-bound
 * token, its ServiceAccount); start() waits, retrying, until it has it.
 */
export class PodIdentity {
  readonly identity: SpiffeId;
  readonly certificates: CertificateManager;
  #trustBundlePem: string;
  readonly #onChange: () => void;

  private constructor(opts: PodIdentityOptions, rootsPem: string) {
    this.identity = opts.identity;
    this.#trustBundlePem = rootsPem;
    this.#onChange = opts.onChange;
    const ca = new ControllerCaClient({
      host: opts.controllerAddress,
      port: opts.caPort,
      serverName: opts.controllerAddress,
      trustBundlePem: () => this.#trustBundlePem,
      tokenFile: opts.caTokenFile,
    });
    this.certificates = new CertificateManager(ca, opts.log, () => this.#onChange());
  }

  static async start(opts: PodIdentityOptions): Promise<PodIdentity> {
    const roots = await retryUntil(opts.log, `the trust roots in ${opts.trustRootsFile}`, async () => {
      const pem = await fs.readFile(opts.trustRootsFile, "utf8");
      if (!pem.includes("BEGIN CERTIFICATE")) throw new Error(`${opts.trustRootsFile} holds no PEM certificate`);
      return pem;
    });
    const me = new PodIdentity(opts, roots);
    await retryUntil(opts.log, `the certificate of ${formatSpiffeId(opts.identity)} from the controller's CA`, () => me.certificates.ensure(opts.identity));
    return me;
  }

  get trustBundlePem(): string {
    return this.#trustBundlePem;
  }

  credentials(): Credentials {
    return this.certificates.credentialsFor(this.identity);
  }

  /** The roots of a config version; a change reaches the listeners (onChange). */
  setTrustBundle(rootsPem: string): void {
    if (rootsPem === this.#trustBundlePem) return;
    this.#trustBundlePem = rootsPem;
    this.#onChange();
  }
}
