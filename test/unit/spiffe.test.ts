// SPIFFE workload identities: strict parsing, formatting, and exactly one URI SAN per certificate.
import { describe, expect, it } from "vitest";
import { X509Certificate } from "node:crypto";
import { IdentityError, formatSpiffeId, parseSpiffeId, spiffeIdFromCertificate } from "../../agent/identity/index.ts";
import { TestCa } from "../support/test-ca.ts";

describe("SPIFFE IDs", () => {
  it("round-trips workload identities", () => {
    const id = parseSpiffeId("spiffe://cluster.local/ns/demo/sa/orders");
    expect(id).toEqual({ trustDomain: "cluster.local", namespace: "demo", serviceAccount: "orders" });
    expect(formatSpiffeId(id)).toBe("spiffe://cluster.local/ns/demo/sa/orders");
  });

  it("rejects anything that is not spiffe://<td>/ns/<ns>/sa/<sa>", () => {
    for (const bad of [
      "spiffe://cluster.local/ns/demo",
      "https://cluster.local/ns/demo/sa/x",
      "spiffe://cluster.local/ns/demo/sa/x/extra",
      "spiffe://Cluster Local/ns/a/sa/b",
      "spiffe://td/ns/UPPER/sa/b",
    ]) {
      expect(() => parseSpiffeId(bad)).toThrow(IdentityError);
    }
  });

  it("reads the identity from a workload certificate", async () => {
    const ca = TestCa.create();
    const creds = ca.issue({ trustDomain: "cluster.local", namespace: "demo", serviceAccount: "payments" });
    expect(spiffeIdFromCertificate(new X509Certificate(creds.certChainPem))).toEqual({
      trustDomain: "cluster.local",
      namespace: "demo",
      serviceAccount: "payments",
    });
    expect(() => spiffeIdFromCertificate(new X509Certificate(ca.rootPem))).toThrow(/exactly one URI SAN, found 0/);
  });
});
