// A local CA for tests: P-256 root and SPIFFE workload certificates, as the controller's CA will issue them.
import { type Credentials, type SpiffeId, formatSpiffeId } from "../../agent/identity/index.ts";
import { type CertificateAuthority, createRootCa, issueLeaf } from "../../pki/index.ts";

export class TestCa {
  readonly rootPem: string;
  readonly #ca: CertificateAuthority;

  private constructor(ca: CertificateAuthority) {
    this.#ca = ca;
    this.rootPem = ca.certPem;
  }

  static async create(name = "ambit-test-root"): Promise<TestCa> {
    return new TestCa(await createRootCa(`CN=${name}`, 24 * 3600));
  }

  /** A leaf for `id` with only the SPIFFE URI SAN, usable for client and server auth. */
  async issue(id: SpiffeId, ttlSeconds = 3600): Promise<Credentials> {
    const leaf = await issueLeaf(this.#ca, { subject: "", sans: [formatSpiffeId(id)], usage: "client-and-server", ttlSeconds });
    return { certChainPem: leaf.certPem, keyPem: leaf.keyPem };
  }
}
