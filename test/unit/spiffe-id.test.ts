// The one SPIFFE ID parser (contract/spiffe.ts) against go-spiffe's own test vectors, then Ambit's workload form and SAN reading.
import { describe, expect, it } from "vitest";
import {
  IdentityError,
  MAX_SPIFFE_ID_LENGTH,
  formatSpiffeId,
  parseSpiffeId,
  parseSpiffeUri,
  parseTrustDomain,
  spiffeIdFromSubjectAltName,
  urisOfSubjectAltName,
} from "../../contract/spiffe.ts";

/*
 * Test data from github.com/spiffe/go-spiffe (v2), spiffeid/id_test.go TestFromString and spiffeid/trustdomain_test.go
 * TestTrustDomainFromString (repository snapshot e9973f6314a3fa0e36eb1f00fbfe37bdc1554b96; id_test.go last changed in
 * ea1a845a92a59152208062c595f7364d6ddb416d), Apache-2.0. The expected reasons are go-spiffe's error texts.
 */
const TD_CHARS = new Set("abcdefghijklmnopqrstuvwxyz0123456789.-_");
const PATH_CHARS = new Set([...TD_CHARS, ..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"]);
const BAD_TD_CHAR = "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores";
const BAD_PATH_CHAR = "path segment characters are limited to letters, numbers, dots, dashes, and underscores";

const goSpiffeIdOk: Array<[string, string, string]> = [
  ["spiffe://trustdomain", "trustdomain", ""],
  ["spiffe://trustdomain/.path", "trustdomain", "/.path"],
  ["spiffe://trustdomain/..path", "trustdomain", "/..path"],
  ["spiffe://trustdomain/...", "trustdomain", "/..."],
];
const goSpiffeIdFail: Array<[string, string]> = [
  ["", "cannot be empty"],
  ["s", "scheme is missing or invalid"],
  ["spiffe:/", "scheme is missing or invalid"],
  ["Spiffe://", "scheme is missing or invalid"],
  ["spiffe://", "trust domain is missing"],
  ["spiffe:///", "trust domain is missing"],
  ["spiffe://trustdomain/", "path cannot have a trailing slash"],
  ["spiffe://trustdomain//", "path cannot contain empty segments"],
  ["spiffe://trustdomain//path", "path cannot contain empty segments"],
  ["spiffe://trustdomain/path/", "path cannot have a trailing slash"],
  ["spiffe://trustdomain/.", "path cannot contain dot segments"],
  ["spiffe://trustdomain/./path", "path cannot contain dot segments"],
  ["spiffe://trustdomain/path/./other", "path cannot contain dot segments"],
  ["spiffe://trustdomain/path/..", "path cannot contain dot segments"],
  ["spiffe://trustdomain/..", "path cannot contain dot segments"],
  ["spiffe://trustdomain/../path", "path cannot contain dot segments"],
  ["spiffe://trustdomain/path/../other", "path cannot contain dot segments"],
  ["spiffe://%F0%9F%A4%AF/path", BAD_TD_CHAR],
  ["spiffe://trustdomain/%F0%9F%A4%AF", BAD_PATH_CHAR],
  ["spiffe://%62%61%64/path", BAD_TD_CHAR],
  ["spiffe://trustdomain/%62%61%64", BAD_PATH_CHAR],
  // TestFromURI's strings (also refused from text).
  ["spiffe://trust$domain", BAD_TD_CHAR],
  ["spiffe://trustdomain/path$", BAD_PATH_CHAR],
];
const goSpiffeTrustDomainFail: Array<[string, string]> = [
  ["", "trust domain is missing"],
  ["spiffe:/trustdomain/path", "scheme is missing or invalid"],
  ["spiffe://", "trust domain is missing"],
  ["spiffe:///path", "trust domain is missing"],
  ["spiffe://trustdomain/", "path cannot have a trailing slash"],
  ["spiffe://trustdomain/path/", "path cannot have a trailing slash"],
  ["spiffe://%F0%9F%A4%AF/path", BAD_TD_CHAR],
  ["spiffe://trustdomain/%F0%9F%A4%AF", BAD_PATH_CHAR],
];

describe("SPIFFE IDs per the spec (go-spiffe's vectors)", () => {
  it.each(goSpiffeIdOk)("accepts %s", (id, trustDomain, path) => {
    expect(parseSpiffeUri(id)).toMatchObject({ trustDomain, path });
  });

  it.each(goSpiffeIdFail)("refuses %j: %s", (id, reason) => {
    expect(() => parseSpiffeUri(id)).toThrow(IdentityError);
    expect(() => parseSpiffeUri(id)).toThrow(reason);
  });

  it("admits exactly the spec's characters, code points 0-255, in the trust domain and the path", () => {
    for (let i = 0; i < 256; i++) {
      if (i === 0x2f) continue; // `/` delimits segments (go-spiffe skips it too)
      const s = String.fromCharCode(i);
      const td = `spiffe://trustdomain${s}/path`;
      if (TD_CHARS.has(s)) expect(parseSpiffeUri(td)).toMatchObject({ trustDomain: `trustdomain${s}`, path: "/path" });
      else expect(() => parseSpiffeUri(td), td).toThrow(BAD_TD_CHAR);
      const path = `spiffe://trustdomain/path${s}`;
      if (PATH_CHARS.has(s)) expect(parseSpiffeUri(path)).toMatchObject({ trustDomain: "trustdomain", path: `/path${s}` });
      else expect(() => parseSpiffeUri(path), path).toThrow(BAD_PATH_CHAR);
    }
  });

  it("trust domains given bare or as an ID", () => {
    expect(parseTrustDomain("spiffe://trustdomain")).toBe("trustdomain");
    expect(parseTrustDomain("spiffe://trustdomain/path")).toBe("trustdomain");
    for (const [value, reason] of goSpiffeTrustDomainFail) expect(() => parseTrustDomain(value), value).toThrow(reason);
    for (let i = 0; i < 256; i++) {
      const s = String.fromCharCode(i);
      if (TD_CHARS.has(s)) {
        expect(parseTrustDomain(`trustdomain${s}`)).toBe(`trustdomain${s}`);
        expect(parseTrustDomain(`spiffe://trustdomain${s}`)).toBe(`trustdomain${s}`);
      } else expect(() => parseTrustDomain(`trustdomain${s}`)).toThrow(BAD_TD_CHAR);
    }
  });

  it("refuses IDs over the spec's 2048 bytes, and no port, user info, query or fragment", () => {
    const at = (n: number) => `spiffe://td/${"a".repeat(n - "spiffe://td/".length)}`;
    expect(parseSpiffeUri(at(MAX_SPIFFE_ID_LENGTH)).trustDomain).toBe("td");
    expect(() => parseSpiffeUri(at(MAX_SPIFFE_ID_LENGTH + 1))).toThrow(/longer than 2048 bytes/);
    for (const bad of [
      "spiffe://domain.test:8080/path/element",
      "spiffe://user:password@test.org/path/element",
      "spiffe://domain.test/path/element?query=1",
      "spiffe://domain.test/path/element#fragment-1",
      "spiffe://domain.test:/path",
      "SPIFFE://domain.test/path",
      "spiffe://Domain.test/path",
    ])
      expect(() => parseSpiffeUri(bad), bad).toThrow(IdentityError);
  });
});

describe("Ambit workload identities", () => {
  it("round-trips spiffe://<td>/ns/<ns>/sa/<sa>, service accounts with dots included", () => {
    for (const uri of ["spiffe://cluster.local/ns/demo/sa/orders", "spiffe://td_1/ns/a-b/sa/x.y-z", `spiffe://td/ns/${"a".repeat(63)}/sa/b`]) {
      expect(formatSpiffeId(parseSpiffeId(uri))).toBe(uri);
    }
  });

  it.each([
    ["spiffe://cluster.local/ns/demo", "the path must be"],
    ["spiffe://cluster.local/ns/demo/sa/x/extra", "the path must be"],
    ["spiffe://cluster.local/sa/x/ns/demo", "the path must be"],
    ["spiffe://cluster.local/ns/de.mo/sa/x", "namespace"],
    ["spiffe://cluster.local/ns/Demo/sa/x", "namespace"],
    ["spiffe://cluster.local/ns/-demo/sa/x", "namespace"],
    [`spiffe://cluster.local/ns/${"a".repeat(64)}/sa/x`, "namespace"],
    ["spiffe://cluster.local/ns/demo/sa/a..b", "service account"],
    ["spiffe://cluster.local/ns/demo/sa/x_y", "service account"],
    ["spiffe://cluster.local/ns/demo/sa/X", "service account"],
    ["https://cluster.local/ns/demo/sa/x", "scheme is missing or invalid"],
    ["spiffe://cluster.local/ns/demo/sa/x/", "trailing slash"],
    ["spiffe://cluster.local/ns//sa/x", "empty segments"],
    ["spiffe://cluster.local:443/ns/demo/sa/x", BAD_TD_CHAR],
  ])("refuses %s (%s)", (uri, reason) => {
    expect(() => parseSpiffeId(uri)).toThrow(IdentityError);
    expect(() => parseSpiffeId(uri)).toThrow(reason);
  });
});

describe("URI SANs from Node's subjectAltName text", () => {
  it("finds URI entries among others", () => {
    expect(urisOfSubjectAltName("DNS:a.example, URI:spiffe://td/ns/a/sa/b, IP Address:10.0.0.1")).toEqual(["spiffe://td/ns/a/sa/b"]);
    expect(urisOfSubjectAltName(undefined)).toEqual([]);
  });

  it("reads quoted values whole, so a DNS name cannot smuggle a URI entry", () => {
    const smuggled = 'DNS:"evil, URI:spiffe://td/ns/ambit-system/sa/ambit-agent, DNS:x"';
    expect(urisOfSubjectAltName(smuggled)).toEqual([]);
    expect(() => spiffeIdFromSubjectAltName(smuggled)).toThrow(/exactly one URI SAN, found 0/);
    expect(urisOfSubjectAltName('URI:"spiffe://td/ns/a/sa/b,c"')).toEqual(["spiffe://td/ns/a/sa/b,c"]);
    expect(() => spiffeIdFromSubjectAltName('URI:"spiffe://td/ns/a/sa/b,c"')).toThrow(IdentityError);
  });

  it("an X.509-SVID carries exactly one URI SAN", () => {
    expect(spiffeIdFromSubjectAltName("URI:spiffe://td/ns/a/sa/b")).toEqual({ trustDomain: "td", namespace: "a", serviceAccount: "b" });
    expect(() => spiffeIdFromSubjectAltName("URI:spiffe://td/ns/ambit-system/sa/ambit-agent, URI:spiffe://td/ns/a/sa/b")).toThrow(/found 2/);
  });
});
