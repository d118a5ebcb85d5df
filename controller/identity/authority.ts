// The mesh CA: its signing root (self-made and kept in a Secret, or plugged in by the user), trust bundle, rotation and issuance.
import { type KeyObject, X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import type { Logger } from "pino";
import { type KubeClient, isConflict, isNotFound, pathFor } from "../../kube/client.ts";
import { type IssuerInfo, createSelfSignedCa, derToPem, generateP256, issuerInfo, pemToDer, signLeaf } from "../../pki/index.ts";
import { AmbitError } from "../../contract/errors.ts";
import type { CA_ERRORS } from "../../contract/error-codes.ts";

/** Secret the controller keeps its own root in (created once, by the leader). */
export const CA_SECRET = "ambit-ca";
/** Secret a user fills to plug in their own CA, with Istio's key names. */
export const PLUGIN_CA_SECRET = "cacerts";
const ROOT_TTL_SECONDS = 10 * 365 * 24 * 3600;

type CaErrorCode = (typeof CA_ERRORS.code)["plugin" | "secret" | "notReady"];

export class CaError extends AmbitError<CaErrorCode> {
  constructor(code: CaErrorCode, message: string) {
    super(code, message);
    this.name = "CaError";
  }
}

interface SigningMaterial {
  source: "self-signed" | "plug-in";
  certDer: Buffer;
  key: KeyObject;
  issuer: IssuerInfo;
  /** Certificates after the leaf in every chain handed out (the intermediates of a plug-in CA). */
  chainPem: string[];
  /** Roots trusted now: the current one, plus retired ones still inside the lifetime of what they signed. */
  rootsPem: string[];
}

interface RetiredRoot {
  pem: string;
  trustUntil: string;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : "");
const splitPem = (pem: string) =>
  pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((p) => (p.endsWith("\n") ? p : `${p}\n`)) ?? [];

/** Checks a user-supplied CA: the key matches the certificate, it is a CA, and it chains to the root. */
export function loadPluginCa(data: Record<string, string>): SigningMaterial {
  const certPem = unb64(data["ca-cert.pem"]);
  const keyPem = unb64(data["ca-key.pem"]);
  const rootPem = unb64(data["root-cert.pem"]);
  const chainPem = splitPem(unb64(data["cert-chain.pem"]) || certPem);
  const missing = ["ca-cert.pem", "ca-key.pem", "root-cert.pem"].filter((k) => !data[k]);
  if (missing.length > 0)
    throw new CaError(
      "AMBIT_E_CA_PLUGIN",
      `secret ${PLUGIN_CA_SECRET} lacks ${missing.join(", ")}; it needs ca-cert.pem, ca-key.pem, root-cert.pem and optionally cert-chain.pem`,
    );
  let cert: X509Certificate;
  let key: KeyObject;
  let roots: X509Certificate[];
  try {
    cert = new X509Certificate(certPem);
    key = createPrivateKey(keyPem);
    roots = splitPem(rootPem).map((p) => new X509Certificate(p));
  } catch (err) {
    throw new CaError("AMBIT_E_CA_PLUGIN", `secret ${PLUGIN_CA_SECRET} does not hold valid PEM: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new CaError("AMBIT_E_CA_PLUGIN", "the plug-in CA key must be ECDSA P-256");
  const fromKey = createPublicKey(key).export({ type: "spki", format: "der" });
  if (!fromKey.equals(cert.publicKey.export({ type: "spki", format: "der" })))
    throw new CaError("AMBIT_E_CA_PLUGIN", "ca-key.pem is not the key of ca-cert.pem");
  if (!cert.ca) throw new CaError("AMBIT_E_CA_PLUGIN", "ca-cert.pem is not a CA certificate (basicConstraints CA:TRUE is required)");
  const now = Date.now();
  for (const [name, c] of [["ca-cert.pem", cert], ...roots.map((r) => ["root-cert.pem", r] as const)] as const) {
    if (Date.parse(c.validTo) <= now || Date.parse(c.validFrom) > now)
      throw new CaError("AMBIT_E_CA_PLUGIN", `${name} is not valid now (valid from ${c.validFrom} to ${c.validTo})`);
  }
  // Walk ca-cert -> intermediates of cert-chain.pem -> one of the roots.
  const chain = chainPem.map((p) => new X509Certificate(p));
  let current = cert;
  for (let hops = 0; hops < 8; hops++) {
    const root = roots.find((r) => current.checkIssued(r) && current.verify(r.publicKey));
    if (root) {
      return { source: "plug-in", certDer: cert.raw, key, issuer: issuerInfo(cert.raw), chainPem: chainPem, rootsPem: roots.map((r) => r.toString()) };
    }
    const parent = chain.find((c) => c !== current && current.checkIssued(c) && current.verify(c.publicKey));
    if (!parent) break;
    current = parent;
  }
  throw new CaError("AMBIT_E_CA_PLUGIN", "ca-cert.pem does not chain to root-cert.pem (through cert-chain.pem)");
}

export interface MeshCaOptions {
  client: KubeClient;
  namespace: string;
  trustDomain: string;
  log: Logger;
  /** Only the leader creates the root; the others wait for the Secret. */
  mayWrite(): boolean;
  /** The longest workload certificate lifetime: a retired root stays trusted this long after a rotation. */
  maxCertTtlSeconds: number;
  now?: () => Date;
}

export class MeshCa {
  readonly #opts: MeshCaOptions;
  #material: SigningMaterial | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(opts: MeshCaOptions) {
    this.#opts = opts;
  }

  get ready(): boolean {
    return this.#material !== undefined;
  }

  get source(): SigningMaterial["source"] | undefined {
    return this.#material?.source;
  }

  /** Called whenever the trust bundle or signing root changes. */
  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  trustBundle(): string[] {
    return this.#need().rootsPem;
  }

  /**
   * Reads the plug-in CA, else the controller's own root Secret, creating it when allowed (the leader) and absent.
   * Safe to call repeatedly: a replica that is not the leader picks up a root created or rotated by the leader.
   */
  async refresh(): Promise<void> {
    const { client, namespace } = this.#opts;
    const plugin = await client
      .get(pathFor("v1", "secrets", namespace, PLUGIN_CA_SECRET))
      .catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
    let next: SigningMaterial | undefined;
    if (plugin) next = loadPluginCa((plugin.data ?? {}) as Record<string, string>);
    else {
      let secret = await client
        .get(pathFor("v1", "secrets", namespace, CA_SECRET))
        .catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
      if (!secret && this.#opts.mayWrite()) secret = await this.#createRoot();
      if (secret) next = this.#fromSecret((secret.data ?? {}) as Record<string, string>);
    }
    if (!next) return;
    const changed = !this.#material || !this.#material.certDer.equals(next.certDer) || this.#material.rootsPem.join() !== next.rootsPem.join();
    this.#material = next;
    if (changed) {
      this.#opts.log.info({ source: next.source, roots: next.rootsPem.length }, "CA signing root loaded");
      for (const l of this.#listeners) l();
    }
  }

  #fromSecret(data: Record<string, string>): SigningMaterial {
    const certPem = unb64(data["ca.crt"]);
    const keyPem = unb64(data["ca.key"]);
    if (!certPem || !keyPem)
      throw new CaError("AMBIT_E_CA_SECRET", `secret ${this.#opts.namespace}/${CA_SECRET} lacks ca.crt or ca.key; delete it and the leader creates a new root`);
    const certDer = pemToDer(certPem, "CERTIFICATE");
    const now = (this.#opts.now?.() ?? new Date()).getTime();
    const retired = (JSON.parse(unb64(data["retired-roots.json"]) || "[]") as RetiredRoot[]).filter((r) => Date.parse(r.trustUntil) > now);
    return {
      source: "self-signed",
      certDer,
      key: createPrivateKey(keyPem),
      issuer: issuerInfo(certDer),
      chainPem: [],
      rootsPem: [derToPem(certDer, "CERTIFICATE"), ...retired.map((r) => r.pem)],
    };
  }

  #rootData(retired: RetiredRoot[]): Record<string, string> {
    const root = createSelfSignedCa({ organization: this.#opts.trustDomain, commonName: "ambit-mesh-root", ttlSeconds: ROOT_TTL_SECONDS });
    return {
      "ca.crt": b64(derToPem(root.certDer, "CERTIFICATE")),
      "ca.key": b64(root.privateKey.export({ type: "pkcs8", format: "pem" }) as string),
      "retired-roots.json": b64(JSON.stringify(retired)),
    };
  }

  async #createRoot() {
    const { client, namespace } = this.#opts;
    try {
      const created = await client.create(pathFor("v1", "secrets", namespace), {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: CA_SECRET },
        type: "Opaque",
        data: this.#rootData([]),
      });
      this.#opts.log.info({ secret: `${namespace}/${CA_SECRET}` }, "created the mesh root CA (10 years)");
      return created;
    } catch (err) {
      if (!isConflict(err)) throw err;
      return client.get(pathFor("v1", "secrets", namespace, CA_SECRET));
    }
  }

  /**
   * Replaces the self-signed root. The old root stays in the trust bundle until every certificate it signed has
   * expired, so workloads holding old and new certificates keep trusting each other throughout.
   */
  async rotateRoot(): Promise<void> {
    const { client, namespace } = this.#opts;
    const current = this.#need();
    if (current.source !== "self-signed") throw new CaError("AMBIT_E_CA_PLUGIN", "a plug-in CA is rotated by replacing the cacerts secret");
    const now = this.#opts.now?.() ?? new Date();
    const trustUntil = new Date(now.getTime() + (this.#opts.maxCertTtlSeconds + 300) * 1000).toISOString();
    const retired: RetiredRoot[] = [{ pem: current.rootsPem[0]!, trustUntil }, ...current.rootsPem.slice(1).map((pem) => ({ pem, trustUntil }))];
    await client.mergePatch(pathFor("v1", "secrets", namespace, CA_SECRET), { data: this.#rootData(retired) });
    await this.refresh();
  }

  /** A workload certificate chain (leaf first) for `spki` with exactly the SAN `uri`. */
  issueWorkload(spki: Buffer, uri: string, ttlSeconds: number): { certChainPem: string[]; notAfter: Date } {
    const m = this.#need();
    const now = this.#opts.now?.() ?? new Date();
    const notAfter = new Date(now.getTime() + ttlSeconds * 1000);
    // Backdated a minute: a peer whose clock runs slightly behind must not see a certificate from the future.
    const leaf = signLeaf(m.issuer, m.key, { spki, uris: [uri], notBefore: new Date(now.getTime() - 60_000), notAfter });
    return { certChainPem: [derToPem(leaf, "CERTIFICATE"), ...m.chainPem], notAfter };
  }

  /** The controller's own serving certificate and key (the private key is generated here and never leaves). */
  issueServing(dnsNames: string[], ttlSeconds: number): { certChainPem: string; keyPem: string; notAfter: Date } {
    const m = this.#need();
    const { privateKey, publicKey } = generateP256();
    const now = this.#opts.now?.() ?? new Date();
    const notAfter = new Date(now.getTime() + ttlSeconds * 1000);
    const leaf = signLeaf(m.issuer, m.key, {
      spki: publicKey.export({ type: "spki", format: "der" }),
      dnsNames,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter,
    });
    return {
      certChainPem: [derToPem(leaf, "CERTIFICATE"), ...m.chainPem].join(""),
      keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      notAfter,
    };
  }

  #need(): SigningMaterial {
    if (!this.#material) throw new CaError("AMBIT_E_CA_NOT_READY", "the CA has no signing root yet: the leader creates it, or supply the cacerts secret");
    return this.#material;
  }
}
