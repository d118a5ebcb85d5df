// The agent's client of the controller's CA: a fresh P-256 key per certificate, a CSR with the SPIFFE URI, the node-bound token.
import fs from "node:fs/promises";
import https from "node:https";
import { CSR_PATH, type CaErrorBody, type CsrResponse } from "../../contract/certificates.ts";
import { buildCsr, derToPem, generateP256 } from "../../pki/index.ts";
import type { CertificateIssuer, IssuedCertificate } from "./certificates.ts";
import { type SpiffeId, formatSpiffeId } from "../../contract/spiffe.ts";
import { AmbitError, type CodeOf } from "../../contract/errors.ts";
import type { CA_ERRORS } from "../../contract/error-codes.ts";

export interface ControllerCaOptions {
  /** host:port of the CSR endpoint. */
  host: string;
  port: number;
  /** The name the controller's serving certificate carries (the Service's DNS name). */
  serverName: string;
  /** Roots the controller's certificate must chain to; asked for every request (they rotate). */
  trustBundlePem(): string;
  /** The projected service-account token (audience ambit-ca), re-read every time: the kubelet rotates it. */
  tokenFile: string;
  timeoutMs?: number;
}

/** A certificate the agent could not get: its own failures, or the CA's refusal with the CA's code. */
export class CaRequestError extends AmbitError<CodeOf<typeof CA_ERRORS>> {
  readonly status: number | undefined;
  constructor(code: CodeOf<typeof CA_ERRORS>, message: string, status?: number) {
    super(code, message);
    this.name = "CaRequestError";
    this.status = status;
  }
}

export class ControllerCaClient implements CertificateIssuer {
  readonly #opts: ControllerCaOptions;
  #latestBundle: string[] = [];

  constructor(opts: ControllerCaOptions) {
    this.#opts = opts;
  }

  /** The trust bundle the CA returned with its last certificate. */
  get latestTrustBundle(): string[] {
    return this.#latestBundle;
  }

  async issue(id: SpiffeId): Promise<IssuedCertificate> {
    const identity = formatSpiffeId(id);
    const { privateKey } = generateP256();
    const csr = derToPem(buildCsr(privateKey, identity), "CERTIFICATE REQUEST");
    const token = (
      await fs.readFile(this.#opts.tokenFile, "utf8").catch((err: Error) => {
        throw new CaRequestError(
          "AMBIT_E_CA_TOKEN",
          `cannot read the CA token ${this.#opts.tokenFile} (${err.message}); mount a projected serviceAccountToken with audience ambit-ca there`,
        );
      })
    ).trim();
    const { status, body } = await this.#post(JSON.stringify({ csr }), token);
    if (status !== 200) {
      const err = (body ?? {}) as Partial<CaErrorBody>;
      throw new CaRequestError(err.code ?? "AMBIT_E_CA_REFUSED", `the CA refused ${identity}: ${status} ${err.message ?? "no reason given"}`, status);
    }
    const answer = body as Partial<CsrResponse> | undefined;
    if (!answer || !Array.isArray(answer.certChain) || !Array.isArray(answer.trustBundle) || typeof answer.notAfter !== "string") {
      throw new CaRequestError("AMBIT_E_CA_BAD_ANSWER", `the CA answered 200 for ${identity} without a certificate chain, trust bundle and expiry`);
    }
    this.#latestBundle = answer.trustBundle;
    return {
      identity,
      certChainPem: answer.certChain.join(""),
      keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      notAfter: new Date(answer.notAfter),
    };
  }

  #post(payload: string, token: string): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.#opts.host,
          port: this.#opts.port,
          servername: this.#opts.serverName,
          method: "POST",
          path: CSR_PATH,
          ca: this.#opts.trustBundlePem(),
          minVersion: "TLSv1.3",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
          timeout: this.#opts.timeoutMs ?? 10_000,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            let body: unknown;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              body = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", (err) =>
        reject(
          new CaRequestError(
            "AMBIT_E_CA_UNREACHABLE",
            `cannot reach the CA at ${this.#opts.host}:${this.#opts.port} (${err.message}); is the ambit-controller running?`,
          ),
        ),
      );
      req.end(payload);
    });
  }
}
