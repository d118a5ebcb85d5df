// Service-account tokens of the sandbox API server: ES256 JWT layout, verification and every way a token is refused.
import { createHmac, generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { API_SERVER_AUDIENCE, ServiceAccountTokenSigner, TokenSignerError } from "../../sandbox/apiserver/tokens.ts";
import type { ServiceAccountTokenClaims, TokenVerification } from "../../sandbox/apiserver/tokens.ts";

const signer = ServiceAccountTokenSigner.generate();
const issuedAt = new Date("2026-03-01T12:00:00Z");
const claims: ServiceAccountTokenClaims = {
  namespace: "demo",
  serviceAccountName: "orders",
  serviceAccountUid: "sa-uid",
  audiences: ["ambit"],
  expirationSeconds: 3600,
  pod: { name: "orders-1", uid: "pod-uid" },
  node: { name: "node-1", uid: "node-uid" },
};

const decodePart = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>;
const encodePart = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const reasonOf = (result: TokenVerification) => (result.ok ? "ok" : result.reason);

describe("ServiceAccountTokenSigner.issue", () => {
  it("lays the token out like a Kubernetes bound token", () => {
    const { token, expirationTimestamp } = signer.issue(claims, issuedAt);
    const [header, payload, signature] = token.split(".") as [string, string, string];
    expect(decodePart(header)).toEqual({ alg: "ES256", kid: signer.keyId, typ: "JWT" });
    const body = decodePart(payload);
    expect(body).toMatchObject({
      iss: API_SERVER_AUDIENCE,
      sub: "system:serviceaccount:demo:orders",
      aud: ["ambit"],
      iat: issuedAt.getTime() / 1000,
      nbf: issuedAt.getTime() / 1000,
      exp: issuedAt.getTime() / 1000 + 3600,
      "kubernetes.io": {
        namespace: "demo",
        serviceaccount: { name: "orders", uid: "sa-uid" },
        pod: { name: "orders-1", uid: "pod-uid" },
        node: { name: "node-1", uid: "node-uid" },
      },
    });
    expect(typeof body.jti).toBe("string");
    expect(Buffer.from(signature, "base64url")).toHaveLength(64);
    expect(expirationTimestamp).toBe("2026-03-01T13:00:00Z");
  });

  it("derives the key id from the DER public key and keeps its issuer", () => {
    const custom = ServiceAccountTokenSigner.generate("https://issuer.example");
    expect(custom.issuer).toBe("https://issuer.example");
    expect(custom.keyId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(custom.keyId).not.toBe(signer.keyId);
    expect(custom.publicKeyPem).toContain("BEGIN PUBLIC KEY");
    expect(custom.privateKeyPem).toContain("BEGIN PRIVATE KEY");
  });

  it("refuses claims that cannot make a usable token", () => {
    for (const bad of [{ expirationSeconds: 0 }, { expirationSeconds: 1.5 }, { audiences: [] }, { namespace: "" }]) {
      expect(() => signer.issue({ ...claims, ...bad }, issuedAt)).toThrow(TokenSignerError);
    }
  });
});

describe("ServiceAccountTokenSigner.verify", () => {
  const during = new Date(issuedAt.getTime() + 60_000);

  it("round-trips a token and reports the audiences that matched", () => {
    const { token } = signer.issue({ ...claims, audiences: ["ambit", "other"] }, issuedAt);
    const result = signer.verify(token, { audiences: ["ambit", "unrelated"], now: during });
    expect(result).toEqual({
      ok: true,
      token: {
        namespace: "demo",
        serviceAccountName: "orders",
        serviceAccountUid: "sa-uid",
        audiences: ["ambit"],
        expiresAt: new Date(issuedAt.getTime() + 3600_000),
        pod: { name: "orders-1", uid: "pod-uid" },
        node: { name: "node-1", uid: "node-uid" },
      },
    });
  });

  it("checks the API server's own audience when none is asked for", () => {
    const apiToken = signer.issue({ ...claims, audiences: [API_SERVER_AUDIENCE] }, issuedAt).token;
    expect(signer.verify(apiToken, { now: during }).ok).toBe(true);
    expect(signer.verify(apiToken, { audiences: [], now: during }).ok).toBe(true);
    const ambitToken = signer.issue(claims, issuedAt).token;
    expect(reasonOf(signer.verify(ambitToken, { now: during }))).toBe(`token audiences ["ambit"] do not match ["${API_SERVER_AUDIENCE}"]`);
  });

  it("refuses a wrong audience", () => {
    const { token } = signer.issue(claims, issuedAt);
    expect(reasonOf(signer.verify(token, { audiences: ["vault"], now: during }))).toBe('token audiences ["ambit"] do not match ["vault"]');
  });

  it("refuses an expired token with no leeway, and a token from the future beyond 60 s", () => {
    const { token } = signer.issue(claims, issuedAt);
    const expiry = issuedAt.getTime() + 3600_000;
    expect(signer.verify(token, { audiences: ["ambit"], now: new Date(expiry) }).ok).toBe(true);
    expect(reasonOf(signer.verify(token, { audiences: ["ambit"], now: new Date(expiry + 1000) }))).toBe("token has expired");
    expect(signer.verify(token, { audiences: ["ambit"], now: new Date(issuedAt.getTime() - 59_000) }).ok).toBe(true);
    expect(reasonOf(signer.verify(token, { audiences: ["ambit"], now: new Date(issuedAt.getTime() - 61_000) }))).toBe("token is not valid yet");
  });

  it("refuses a tampered payload", () => {
    const [header, payload, signature] = signer.issue(claims, issuedAt).token.split(".") as [string, string, string];
    const forged = { ...decodePart(payload), sub: "system:serviceaccount:kube-system:admin" };
    const result = signer.verify(`${header}.${encodePart(forged)}.${signature}`, { audiences: ["ambit"], now: during });
    expect(reasonOf(result)).toBe("invalid signature");
  });

  it('refuses alg "none" and HMAC tokens', () => {
    const [, payload] = signer.issue(claims, issuedAt).token.split(".") as [string, string];
    const unsigned = `${encodePart({ alg: "none", typ: "JWT" })}.${payload}.`;
    expect(signer.verify(unsigned, { audiences: ["ambit"], now: during }).ok).toBe(false);
    const noneWithJunk = `${encodePart({ alg: "none", typ: "JWT" })}.${payload}.AAAA`;
    expect(reasonOf(signer.verify(noneWithJunk, { audiences: ["ambit"], now: during }))).toBe('unsupported signing algorithm "none"');
    const hmacInput = `${encodePart({ alg: "HS256", typ: "JWT" })}.${payload}`;
    const hmac = createHmac("sha256", signer.publicKeyPem).update(hmacInput).digest("base64url");
    expect(reasonOf(signer.verify(`${hmacInput}.${hmac}`, { audiences: ["ambit"], now: during }))).toBe('unsupported signing algorithm "HS256"');
  });

  it("refuses a token from another signer, even with the same issuer", () => {
    const other = ServiceAccountTokenSigner.generate();
    const { token } = other.issue(claims, issuedAt);
    expect(reasonOf(signer.verify(token, { audiences: ["ambit"], now: during }))).toBe("invalid signature");
  });

  it("refuses a validly signed token from another issuer", () => {
    const sameKey = ServiceAccountTokenSigner.fromPrivateKeyPem(signer.privateKeyPem, "https://elsewhere.example");
    const { token } = sameKey.issue(claims, issuedAt);
    expect(reasonOf(signer.verify(token, { audiences: ["ambit"], now: during }))).toBe('token issuer "https://elsewhere.example" is not trusted');
  });

  it("refuses malformed tokens", () => {
    for (const token of ["", "abc", "a.b", "a.b.c.d", "!!.??.**", `${encodePart([1])}.${encodePart({})}.AAAA`]) {
      expect(reasonOf(signer.verify(token, { now: during })), token).toBe("malformed token");
    }
  });
});

describe("ServiceAccountTokenSigner.fromPrivateKeyPem", () => {
  it("restores a signer whose tokens the original accepts and vice versa", () => {
    const restored = ServiceAccountTokenSigner.fromPrivateKeyPem(signer.privateKeyPem);
    expect(restored.keyId).toBe(signer.keyId);
    expect(restored.publicKeyPem).toBe(signer.publicKeyPem);
    const { token } = restored.issue(claims, issuedAt);
    expect(signer.verify(token, { audiences: ["ambit"], now: issuedAt }).ok).toBe(true);
  });

  it("refuses keys that cannot sign ES256", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    for (const pem of [rsa, p384, "not a key"]) {
      let error: unknown;
      try {
        ServiceAccountTokenSigner.fromPrivateKeyPem(pem);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(TokenSignerError);
      expect((error as TokenSignerError).code).toBe("AMBIT_E_TOKEN_KEY");
    }
  });
});
