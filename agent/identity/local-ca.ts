// Interim workload certificates from a CA shared through a Secret, until the controller's CA (issue #4) signs them.
import { type KubeClient, isConflict, isNotFound } from "../../kube/client.ts";
import { type CertificateAuthority, createRootCa, importPrivateKeyPem, issueLeaf, loadCa } from "../../pki/index.ts";
import { type SpiffeId, formatSpiffeId } from "./spiffe.ts";
import type { Credentials } from "./index.ts";

export const LOCAL_CA_SECRET = { namespace: "ambit-system", name: "ambit-local-ca" };

export interface IssuedCertificate extends Credentials {
  identity: string;
  notAfter: Date;
}

/**
 * Every agent loads the same root from a Secret (the first one creates it). This is the sandbox's
 * stand-in: the design's CA keeps the signing key in the controller only.
 */
export class LocalCa {
  readonly rootPem: string;
  readonly #ca: CertificateAuthority;

  private constructor(ca: CertificateAuthority) {
    this.#ca = ca;
    this.rootPem = ca.certPem;
  }

  static async loadOrCreate(client: KubeClient): Promise<LocalCa> {
    const path = `/api/v1/namespaces/${LOCAL_CA_SECRET.namespace}/secrets/${LOCAL_CA_SECRET.name}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const secret = await client.get(path);
        const data = secret.data as Record<string, string>;
        const rootPem = Buffer.from(data["ca.crt"] ?? "", "base64").toString();
        const keyPem = Buffer.from(data["ca.key"] ?? "", "base64").toString();
        return new LocalCa(loadCa(rootPem, await importPrivateKeyPem(keyPem)));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      const root = await createRootCa("O=cluster.local, CN=ambit-local-ca", 365 * 24 * 3600);
      try {
        await client.create(`/api/v1/namespaces/${LOCAL_CA_SECRET.namespace}/secrets`, {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: LOCAL_CA_SECRET.name },
          type: "Opaque",
          data: { "ca.crt": Buffer.from(root.certPem).toString("base64"), "ca.key": Buffer.from(root.keyPem).toString("base64") },
        });
      } catch (err) {
        // Another agent created it first: loop and load theirs. A missing namespace is created, then retried.
        if (!isConflict(err) && !isNotFound(err)) throw err;
        if (isNotFound(err)) {
          await client.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: LOCAL_CA_SECRET.namespace } }).catch(() => {});
        }
      }
    }
    throw new Error(`cannot load or create the local CA secret ${LOCAL_CA_SECRET.namespace}/${LOCAL_CA_SECRET.name}`);
  }

  /** A 24 h workload certificate with exactly the SPIFFE URI SAN of `id`. */
  async issue(id: SpiffeId, ttlSeconds = 24 * 3600): Promise<IssuedCertificate> {
    const leaf = await issueLeaf(this.#ca, { subject: "", sans: [formatSpiffeId(id)], usage: "client-and-server", ttlSeconds });
    return { identity: formatSpiffeId(id), notAfter: leaf.notAfter, certChainPem: leaf.certPem, keyPem: leaf.keyPem };
  }
}
