// Bound service-account tokens as Kubernetes issues them (TokenRequest) and checks them (TokenReview): ES256 JWTs.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { AmbitError } from "../../contract/errors.ts";
import type { SANDBOX_ERRORS } from "../../contract/error-codes.ts";

/** The API server's own audience, and the default issuer: what a TokenReview without audiences checks against. */
export const API_SERVER_AUDIENCE = "https://kubernetes.default.svc.cluster.local";

/** Tolerated clock skew for "not before" only; expiry is exact, as in Kubernetes. */
const NOT_BEFORE_LEEWAY_SECONDS = 60;

export interface ObjectRef {
  name: string;
  uid: string;
}

export interface ServiceAccountTokenClaims {
  namespace: string;
  serviceAccountName: string;
  serviceAccountUid: string;
  audiences: string[];
  expirationSeconds: number;
  pod?: ObjectRef;
  node?: ObjectRef;
  secret?: ObjectRef;
}

export interface VerifiedToken {
  namespace: string;
  serviceAccountName: string;
  serviceAccountUid: string;
  /** The token's audiences that the verifier asked for (the TokenReview status.audiences). */
  audiences: string[];
  expiresAt: Date;
  pod?: ObjectRef;
  node?: ObjectRef;
}

export type TokenVerification = { ok: true; token: VerifiedToken } | { ok: false; reason: string };

export class TokenSignerError extends AmbitError<typeof SANDBOX_ERRORS.code.tokenKey | typeof SANDBOX_ERRORS.code.tokenClaims> {
  constructor(code: typeof SANDBOX_ERRORS.code.tokenKey | typeof SANDBOX_ERRORS.code.tokenClaims, message: string) {
    super(code, message);
    this.name = "TokenSignerError";
  }
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function decode(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function objectRef(value: unknown): ObjectRef | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { name, uid } = value as Record<string, unknown>;
  return typeof name === "string" && typeof uid === "string" ? { name, uid } : undefined;
}

const isNonEmptyString = (value: unknown): value is string => typeof value === "string" && value !== "";

/** RFC 3339 without fractions, as metav1.Time serializes. */
const rfc3339 = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

export class ServiceAccountTokenSigner {
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
  readonly issuer: string;
  /** base64url SHA-256 of the DER public key, as Kubernetes derives the "kid" header. */
  readonly keyId: string;
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;

  private constructor(privateKey: KeyObject, issuer: string) {
    this.#privateKey = privateKey;
    this.#publicKey = createPublicKey(privateKey);
    this.issuer = issuer;
    this.privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    this.publicKeyPem = this.#publicKey.export({ type: "spki", format: "pem" }).toString();
    this.keyId = createHash("sha256")
      .update(this.#publicKey.export({ type: "spki", format: "der" }))
      .digest("base64url");
  }

  /** A signer with a fresh P-256 key. */
  static generate(issuer: string = API_SERVER_AUDIENCE): ServiceAccountTokenSigner {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    return new ServiceAccountTokenSigner(privateKey, issuer);
  }

  /** A signer from a stored P-256 private key (PKCS#8 or SEC1 PEM), so tokens survive a restart. */
  static fromPrivateKeyPem(pem: string, issuer: string = API_SERVER_AUDIENCE): ServiceAccountTokenSigner {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (err) {
      throw new TokenSignerError("AMBIT_E_TOKEN_KEY", `not a readable PEM private key: ${(err as Error).message}`);
    }
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new TokenSignerError("AMBIT_E_TOKEN_KEY", "service-account tokens are signed with ES256 and need a P-256 (prime256v1) EC private key");
    }
    return new ServiceAccountTokenSigner(key, issuer);
  }

  issue(claims: ServiceAccountTokenClaims, now: Date = new Date()): { token: string; expirationTimestamp: string } {
    if (!isNonEmptyString(claims.namespace) || !isNonEmptyString(claims.serviceAccountName) || typeof claims.serviceAccountUid !== "string") {
      throw new TokenSignerError("AMBIT_E_TOKEN_CLAIMS", "a token needs the service account's namespace, name and uid");
    }
    if (!Number.isInteger(claims.expirationSeconds) || claims.expirationSeconds <= 0) {
      throw new TokenSignerError("AMBIT_E_TOKEN_CLAIMS", `expirationSeconds must be a positive integer, got ${claims.expirationSeconds}`);
    }
    if (claims.audiences.length === 0 || !claims.audiences.every(isNonEmptyString)) {
      throw new TokenSignerError("AMBIT_E_TOKEN_CLAIMS", "a token needs at least one non-empty audience");
    }
    const issuedAt = Math.floor(now.getTime() / 1000);
    const expiresAt = issuedAt + claims.expirationSeconds;
    const payload = {
      aud: claims.audiences,
      exp: expiresAt,
      iat: issuedAt,
      iss: this.issuer,
      jti: randomUUID(),
      "kubernetes.io": {
        namespace: claims.namespace,
        ...(claims.node ? { node: { name: claims.node.name, uid: claims.node.uid } } : {}),
        ...(claims.pod ? { pod: { name: claims.pod.name, uid: claims.pod.uid } } : {}),
        ...(claims.secret ? { secret: { name: claims.secret.name, uid: claims.secret.uid } } : {}),
        serviceaccount: { name: claims.serviceAccountName, uid: claims.serviceAccountUid },
      },
      nbf: issuedAt,
      sub: `system:serviceaccount:${claims.namespace}:${claims.serviceAccountName}`,
    };
    const signingInput = `${encode({ alg: "ES256", kid: this.keyId, typ: "JWT" })}.${encode(payload)}`;
    const signature = sign("sha256", Buffer.from(signingInput), { key: this.#privateKey, dsaEncoding: "ieee-p1363" });
    return { token: `${signingInput}.${signature.toString("base64url")}`, expirationTimestamp: rfc3339(expiresAt) };
  }

  /**
   * Checks a token as the TokenReview authenticator does. Without `audiences` the API server's own audience
   * is required; otherwise the token must carry at least one of them.
   */
  verify(token: string, opts: { audiences?: string[]; now?: Date } = {}): TokenVerification {
    const fail = (reason: string): TokenVerification => ({ ok: false, reason });
    const parts = typeof token === "string" ? token.split(".") : [];
    if (parts.length !== 3 || !parts.every((part) => /^[A-Za-z0-9_-]+$/.test(part))) return fail("malformed token");
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = decode(headerPart);
    const payload = decode(payloadPart);
    if (header === undefined || payload === undefined) return fail("malformed token");
    // Only ES256: accepting "none" or HMAC algorithms would let anyone mint tokens.
    if (header.alg !== "ES256") return fail(`unsupported signing algorithm ${JSON.stringify(header.alg ?? null)}`);
    const signature = Buffer.from(signaturePart, "base64url");
    if (signature.length !== 64) return fail("invalid signature");
    if (!verify("sha256", Buffer.from(`${headerPart}.${payloadPart}`), { key: this.#publicKey, dsaEncoding: "ieee-p1363" }, signature))
      return fail("invalid signature");

    if (payload.iss !== this.issuer) return fail(`token issuer ${JSON.stringify(payload.iss ?? null)} is not trusted`);
    const nowSeconds = (opts.now ?? new Date()).getTime() / 1000;
    if (typeof payload.exp !== "number") return fail("token has no expiry");
    if (nowSeconds > payload.exp) return fail("token has expired");
    if (typeof payload.nbf === "number" && nowSeconds + NOT_BEFORE_LEEWAY_SECONDS < payload.nbf) return fail("token is not valid yet");

    const kubernetes = payload["kubernetes.io"];
    const claims = typeof kubernetes === "object" && kubernetes !== null ? (kubernetes as Record<string, unknown>) : {};
    const namespace = claims.namespace;
    const serviceAccount = objectRef(claims.serviceaccount);
    if (!isNonEmptyString(namespace) || serviceAccount === undefined || payload.sub !== `system:serviceaccount:${namespace}:${serviceAccount.name}`) {
      return fail("token does not identify a service account");
    }

    const tokenAudiences =
      typeof payload.aud === "string" ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud.filter((a): a is string => typeof a === "string") : [];
    const wanted = opts.audiences !== undefined && opts.audiences.length > 0 ? opts.audiences : [API_SERVER_AUDIENCE];
    const matched = wanted.filter((audience) => tokenAudiences.includes(audience));
    if (matched.length === 0) return fail(`token audiences ${JSON.stringify(tokenAudiences)} do not match ${JSON.stringify(wanted)}`);

    const pod = objectRef(claims.pod);
    const node = objectRef(claims.node);
    return {
      ok: true,
      token: {
        namespace,
        serviceAccountName: serviceAccount.name,
        serviceAccountUid: serviceAccount.uid,
        audiences: matched,
        expiresAt: new Date(payload.exp * 1000),
        ...(pod ? { pod } : {}),
        ...(node ? { node } : {}),
      },
    };
  }
}
