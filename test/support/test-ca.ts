// A local CA for tests: P-256 root and SPIFFE workload certificates, as the controller's CA will issue them.
import { type Credentials, type SpiffeId, formatSpiffeId } from "../../agent/identity/index.ts";
import { type LocalCa, createRootCa, issueLeaf } from "../../pki/index.ts";

export class TestCa {
  readonly rootPem: string;
  readonly #ca: LocalCa;

  private constructor(ca: LocalCa) {
    this.#ca = ca;
    this.rootPem = ca.certPem;
  }

  static create(name = "ambit-test-root"): TestCa {
    return new TestCa(createRootCa({ commonName: name, ttlSeconds: 24 * 3600, pathLength: 0 }));
  }

  /** A leaf for `id` with only the SPIFFE URI SAN (critical, the subject being empty), usable for client and server auth. */
  issue(id: SpiffeId, ttlSeconds = 3600): Credentials {
    const leaf = issueLeaf(this.#ca, { uris: [formatSpiffeId(id)], usage: "client-and-server", ttlSeconds });
    return { certChainPem: leaf.certPem, keyPem: leaf.keyPem };
  }
}
