// The CSR endpoint: signs a workload certificate for an agent only for identities of pods on its own node, for any other pod only its own identity.
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type net from "node:net";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { CSR_PATH, type CaErrorBody, CaRefusalCode, type CsrRequest, type CsrResponse, MAX_CSR_REQUEST_BYTES } from "../../contract/certificates.ts";
import { IdentityError, type SpiffeId, formatSpiffeId, parseSpiffeId } from "../../contract/spiffe.ts";
import { CsrError, DerError, parseCsr, pemToDer } from "../../pki/index.ts";
import type { CallerAuthenticator } from "./caller-auth.ts";
import type { MeshCa } from "./authority.ts";
import { AmbitError } from "../../contract/errors.ts";

export interface CsrServerOptions {
  ca: MeshCa;
  authenticator: CallerAuthenticator;
  trustDomain: string;
  /** Whether a non-terminated pod with service account `ns/sa` runs on `node` (the informer cache, then the API). */
  hasPodOnNode(node: string, namespace: string, serviceAccount: string): Promise<boolean>;
  defaultTtlSeconds: number;
  /** The controller's serving certificate and key (PEM), replaceable for rotation via `setCredentials`. */
  credentials: { certChainPem: string; keyPem: string };
  log: Logger;
  registry: Registry;
}

class Refusal extends AmbitError<CaRefusalCode> {
  readonly status: number;
  constructor(status: number, code: CaRefusalCode, message: string) {
    super(code, message);
    this.status = status;
  }
}

export class CsrServer {
  readonly #opts: CsrServerOptions;
  readonly #server: https.Server;
  readonly #requests: Counter<"outcome" | "reason">;
  readonly #signing: Histogram;

  constructor(opts: CsrServerOptions) {
    this.#opts = opts;
    this.#requests = new Counter({
      name: "ambit_ca_requests_total",
      help: "CSR requests by outcome (issued, refused, error) and refusal code",
      labelNames: ["outcome", "reason"],
      registers: [opts.registry],
    });
    this.#signing = new Histogram({
      name: "ambit_ca_signing_seconds",
      help: "Time to verify a CSR and sign its certificate",
      buckets: [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01],
      registers: [opts.registry],
    });
    // #handle answers every failure itself (a refusal or a 500), so its promise never rejects.
    this.#server = https.createServer(
      { cert: opts.credentials.certChainPem, key: opts.credentials.keyPem, minVersion: "TLSv1.3" },
      (req, res) => void this.#handle(req, res),
    );
  }

  setCredentials(credentials: { certChainPem: string; keyPem: string }): void {
    this.#server.setSecureContext({ cert: credentials.certChainPem, key: credentials.keyPem, minVersion: "TLSv1.3" });
  }

  async listen(port: number, host = "0.0.0.0"): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => resolve());
    });
    return this.#server.address() as net.AddressInfo;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: CsrResponse | CaErrorBody) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      const answer = await this.#sign(req);
      this.#requests.inc({ outcome: "issued", reason: "" });
      reply(200, answer);
    } catch (err) {
      if (err instanceof Refusal) {
        this.#requests.inc({ outcome: "refused", reason: err.code });
        // The reason, never the token or the CSR: a refusal log must be safe to share.
        this.#opts.log.warn({ remote: req.socket.remoteAddress, code: err.code, reason: err.message }, "certificate request refused");
        reply(err.status, { code: err.code, message: err.message });
        return;
      }
      this.#requests.inc({ outcome: "error", reason: CaRefusalCode.internal });
      this.#opts.log.error({ err: (err as Error).message }, "certificate request failed");
      reply(500, { code: CaRefusalCode.internal, message: "the CA failed to answer; see the controller log" });
    }
  }

  async #sign(req: IncomingMessage): Promise<CsrResponse> {
    if (req.url !== CSR_PATH) throw new Refusal(404, CaRefusalCode.notFound, `only POST ${CSR_PATH} is served here`);
    if (req.method !== "POST") throw new Refusal(405, CaRefusalCode.notFound, `use POST ${CSR_PATH}`);
    if (!this.#opts.ca.ready) throw new Refusal(503, CaRefusalCode.notReady, "the CA has no signing root yet; retry shortly");
    const body = await readBody(req);
    const auth = await this.#opts.authenticator.authenticate(req.headers.authorization);
    if (!auth.ok) throw new Refusal(auth.status, auth.code, auth.reason);

    let request: CsrRequest;
    try {
      request = JSON.parse(body) as CsrRequest;
    } catch {
      throw new Refusal(400, CaRefusalCode.badRequest, 'the body must be JSON {"csr": "<PEM>"}');
    }
    if (typeof request?.csr !== "string") throw new Refusal(400, CaRefusalCode.badRequest, 'the body must be JSON {"csr": "<PEM>"}');
    const started = performance.now();
    let csr;
    try {
      csr = parseCsr(pemToDer(request.csr, "CERTIFICATE REQUEST"));
    } catch (err) {
      if (err instanceof CsrError || err instanceof DerError) throw new Refusal(400, CaRefusalCode.badCsr, err.message);
      throw err;
    }
    if (csr.uris.length !== 1 || csr.otherSans > 0)
      throw new Refusal(
        400,
        CaRefusalCode.badCsr,
        `the CSR must ask for exactly one SAN, a SPIFFE URI (it asks for ${csr.uris.length} URIs and ${csr.otherSans} other names)`,
      );
    const uri = csr.uris[0]!;
    let id: SpiffeId;
    try {
      id = parseSpiffeId(uri);
    } catch (err) {
      if (err instanceof IdentityError) throw new Refusal(400, CaRefusalCode.badCsr, err.message);
      throw err;
    }
    const { trustDomain, namespace, serviceAccount } = id;
    if (trustDomain !== this.#opts.trustDomain)
      throw new Refusal(403, CaRefusalCode.trustDomain, `trust domain ${trustDomain} is not this mesh's (${this.#opts.trustDomain})`);
    if ("agent" in auth) {
      if (!(await this.#opts.hasPodOnNode(auth.agent.node, namespace, serviceAccount))) {
        throw new Refusal(
          403,
          CaRefusalCode.notOnNode,
          `no pod with service account ${namespace}/${serviceAccount} runs on node ${auth.agent.node}; an agent may only obtain identities of its own node's pods`,
        );
      }
    } else if (namespace !== auth.pod.namespace || serviceAccount !== auth.pod.serviceAccount) {
      throw new Refusal(
        403,
        CaRefusalCode.notOwnIdentity,
        `pod ${auth.pod.namespace}/${auth.pod.pod} runs as ${auth.pod.namespace}/${auth.pod.serviceAccount} and may only obtain its own identity ${formatSpiffeId({ trustDomain, namespace: auth.pod.namespace, serviceAccount: auth.pod.serviceAccount })}, not ${uri}`,
      );
    }
    const ttl = Math.min(
      this.#opts.defaultTtlSeconds,
      request.ttlSeconds && request.ttlSeconds > 0 ? Math.floor(request.ttlSeconds) : this.#opts.defaultTtlSeconds,
    );
    const issued = this.#opts.ca.issueWorkload(csr.spki, uri, ttl);
    this.#signing.observe((performance.now() - started) / 1000);
    const caller = "agent" in auth ? { node: auth.agent.node } : { pod: `${auth.pod.namespace}/${auth.pod.pod}` };
    this.#opts.log.info({ identity: uri, ...caller, notAfter: issued.notAfter.toISOString() }, "certificate issued");
    return { certChain: issued.certChainPem, trustBundle: this.#opts.ca.trustBundle(), notAfter: issued.notAfter.toISOString() };
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_CSR_REQUEST_BYTES) {
        // Answer 413, and read the rest without keeping it, so the client sees the answer rather than a reset.
        reject(new Refusal(413, CaRefusalCode.tooLarge, `request body over ${MAX_CSR_REQUEST_BYTES} bytes`));
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
