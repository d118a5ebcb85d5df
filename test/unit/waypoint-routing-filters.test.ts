// Filter semantics: the API's ReplacePrefixMatch table, redirect Location ports, header modifier details.
import { describe, expect, it } from "vitest";
import { applyHeaderModifier, compileRoutes, type MeshRoute, replacePrefix, RoutingTable } from "../../waypoint/routing/index.ts";
import { MESH_NS, meshContext, send } from "../support/gamma.ts";

describe("ReplacePrefixMatch (the table in HTTPPathModifier.replacePrefixMatch)", () => {
  it.each([
    ["/foo/bar", "/foo", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo", "/xyz/", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz/", "/xyz/bar"],
    ["/foo", "/foo", "/xyz", "/xyz"],
    ["/foo/", "/foo", "/xyz", "/xyz/"],
    ["/foo/bar", "/foo", "", "/bar"],
    ["/foo/", "/foo", "", "/"],
    ["/foo", "/foo", "", "/"],
    ["/foo/", "/foo", "/", "/"],
    ["/foo", "/foo", "/", "/"],
    ["/anything", "/", "/xyz", "/xyz/anything"],
  ])("%s with prefix %j replaced by %j is %s", (path, prefix, replacement, expected) => {
    expect(replacePrefix(path, prefix, replacement)).toBe(expected);
  });
});

const redirectTable = (redirect: object, parentPort = 8080): RoutingTable =>
  new RoutingTable(
    compileRoutes(
      [
        {
          kind: "HTTPRoute",
          metadata: { namespace: MESH_NS, name: "r" },
          spec: {
            parentRefs: [{ group: "", kind: "Service", name: "echo", port: parentPort }],
            rules: [{ matches: [{ path: { value: "/old" } }], filters: [{ type: "RequestRedirect", requestRedirect: redirect }] }],
          },
        } as MeshRoute,
      ],
      meshContext(),
    ).servicePorts,
  );

describe("redirect Location: port elision and defaults", () => {
  it.each([
    ["no scheme, no port: the Service port stays", {}, "http", "http://echo:8080/old/x?a=1"],
    ["scheme https, no port: 443, elided", { scheme: "https" }, "http", "https://echo/old/x?a=1"],
    ["scheme http, no port: 80, elided", { scheme: "http" }, "https", "http://echo/old/x?a=1"],
    ["https with port 443 given: elided", { scheme: "https", port: 443 }, "http", "https://echo/old/x?a=1"],
    ["http with port 443: kept", { scheme: "http", port: 443 }, "http", "http://echo:443/old/x?a=1"],
    ["client on https, no scheme, port 443 given: elided", { port: 443 }, "https", "https://echo/old/x?a=1"],
    [
      "prefix replaced, query kept",
      { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/new" }, hostname: "example.org" },
      "http",
      "http://example.org:8080/new/x?a=1",
    ],
  ] as const)("%s", (_title, redirect, scheme, location) => {
    expect(send(redirectTable(redirect), { port: 8080, path: "/old/x?a=1", host: "echo:8080", scheme })).toMatchObject({
      action: "redirect",
      status: 302,
      location,
    });
  });

  it("an IPv6 Host keeps its brackets", () => {
    expect(send(redirectTable({ port: 9000 }), { port: 8080, path: "/old", host: "[fd00::1]:8080" })).toMatchObject({ location: "http://[fd00::1]:9000/old" });
  });
});

describe("header modifiers", () => {
  it("set replaces every value, add keeps earlier values as separate lines (Set-Cookie safe), remove drops all, names case-insensitive", () => {
    const out = applyHeaderModifier(
      { "X-Set": ["a", "b"], "set-cookie": "a=1", "x-gone": "1" },
      { set: [{ name: "x-set", value: "c" }], add: [{ name: "set-cookie", value: "b=2" }], remove: ["x-gone"] },
    );
    expect(out).toEqual({ "x-set": "c", "set-cookie": ["a=1", "b=2"] });
  });

  it("URLRewrite hostname replaces the authority the backend sees; response modifiers of rule then backend apply in order", () => {
    const t = new RoutingTable(
      compileRoutes(
        [
          {
            kind: "HTTPRoute",
            metadata: { namespace: MESH_NS, name: "r" },
            spec: {
              parentRefs: [{ group: "", kind: "Service", name: "echo", port: 80 }],
              rules: [
                {
                  filters: [
                    { type: "URLRewrite", urlRewrite: { hostname: "internal.example" } },
                    { type: "ResponseHeaderModifier", responseHeaderModifier: { set: [{ name: "x-from", value: "rule" }] } },
                  ],
                  backendRefs: [
                    {
                      name: "echo-v1",
                      port: 80,
                      filters: [{ type: "ResponseHeaderModifier", responseHeaderModifier: { set: [{ name: "x-from", value: "backend" }] } }],
                    },
                  ],
                },
              ],
            },
          },
        ],
        meshContext(),
      ).servicePorts,
    );
    const plan = send(t, { path: "/p" });
    if (plan.action !== "forward") throw new Error(plan.action);
    expect(plan.request.authority).toBe("internal.example");
    expect(plan.responseModifiers.reduce(applyHeaderModifier, {})).toEqual({ "x-from": "backend" });
  });
});
