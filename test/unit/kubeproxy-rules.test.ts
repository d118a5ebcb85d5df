// kube-proxy rule rendering and the hosts file: pure functions over Service and EndpointSlice objects.
import { describe, expect, it } from "vitest";
import { type KubeEndpointSlice, type KubeService, renderHostsFile, renderProxyRules, servicePortRules } from "../../sandbox/kubeproxy/index.ts";

const service = (
  namespace: string,
  name: string,
  clusterIP: string,
  ports: NonNullable<KubeService["spec"]>["ports"],
  extra: Partial<NonNullable<KubeService["spec"]>> = {},
): KubeService => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace },
  spec: { type: "ClusterIP", clusterIP, clusterIPs: [clusterIP], ports, ...extra },
});

const slice = (
  namespace: string,
  serviceName: string,
  sliceName: string,
  ports: KubeEndpointSlice["ports"],
  endpoints: KubeEndpointSlice["endpoints"],
): KubeEndpointSlice => ({
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: sliceName, namespace, labels: { "kubernetes.io/service-name": serviceName } },
  addressType: "IPv4",
  ports,
  endpoints,
});

const ready = (ip: string, nodeName = "node-1", isReady: boolean | undefined = true) => ({
  addresses: [ip],
  conditions: isReady === undefined ? {} : { ready: isReady },
  nodeName,
});

describe("servicePortRules", () => {
  it("takes endpoint ports from the slice port named like the service port (named targetPort resolved per pod)", () => {
    const web = service("shop", "web", "10.96.0.20", [
      { name: "http", port: 80, targetPort: "web-http", protocol: "TCP" },
      { name: "admin", port: 9000, targetPort: 9901, protocol: "TCP" },
    ]);
    const s = slice(
      "shop",
      "web",
      "web-abc",
      [
        { name: "admin", port: 9901, protocol: "TCP" },
        { name: "http", port: 8080, protocol: "TCP" },
      ],
      [ready("10.244.1.5")],
    );

    const rules = servicePortRules([web], [s], { nodeName: "node-1" });

    expect(rules).toEqual([
      { service: "shop/web", portName: "admin", protocol: "tcp", clusterIP: "10.96.0.20", port: 9000, endpoints: [{ ip: "10.244.1.5", port: 9901 }] },
      { service: "shop/web", portName: "http", protocol: "tcp", clusterIP: "10.96.0.20", port: 80, endpoints: [{ ip: "10.244.1.5", port: 8080 }] },
    ]);
  });

  it("leaves out endpoints that are not ready, counts an unset condition as ready, and merges slices", () => {
    const web = service("shop", "web", "10.96.0.20", [{ port: 80, targetPort: 8080 }]);
    const slices = [
      slice("shop", "web", "web-1", [{ name: "", port: 8080, protocol: "TCP" }], [ready("10.244.2.9"), ready("10.244.1.10", "node-1", false)]),
      slice("shop", "web", "web-2", [{ port: 8080 }], [ready("10.244.1.9", "node-1", undefined), ready("10.244.2.9")]),
      slice("other", "web", "web-3", [{ port: 8080 }], [ready("10.244.1.77")]),
    ];
    expect(servicePortRules([web], slices, { nodeName: "node-1" })[0]?.endpoints).toEqual([
      { ip: "10.244.1.9", port: 8080 },
      { ip: "10.244.2.9", port: 8080 },
    ]);
  });

  it("skips headless, ExternalName, IPv6 and SCTP ports; keeps only local endpoints for internalTrafficPolicy Local", () => {
    const services = [
      service("a", "headless", "None", [{ port: 80 }]),
      { metadata: { name: "ext", namespace: "a" }, spec: { type: "ExternalName", ports: [{ port: 80 }] } },
      service("a", "v6", "fd00::10", [{ port: 80 }]),
      service("a", "sctp", "10.96.0.5", [{ port: 80, protocol: "SCTP" }]),
      service("a", "local", "10.96.0.6", [{ port: 53, protocol: "UDP" }], { internalTrafficPolicy: "Local" }),
    ];
    const slices = [slice("a", "local", "local-1", [{ port: 5353, protocol: "UDP" }], [ready("10.244.1.2", "node-1"), ready("10.244.2.2", "node-2")])];
    expect(servicePortRules(services, slices, { nodeName: "node-2" })).toEqual([
      { service: "a/local", portName: "", protocol: "udp", clusterIP: "10.96.0.6", port: 53, endpoints: [{ ip: "10.244.2.2", port: 5353 }] },
    ]);
  });
});

describe("renderProxyRules", () => {
  const web = service("shop", "web", "10.96.0.20", [{ name: "http", port: 80, targetPort: "http" }]);
  const dns = service("kube-system", "dns", "10.96.0.10", [{ name: "dns", port: 53, protocol: "UDP" }]);
  const webSlice = slice("shop", "web", "web-1", [{ name: "http", port: 8080, protocol: "TCP" }], [ready("10.244.2.3"), ready("10.244.1.4")]);

  it("renders complete filter and nat tables: DNAT with random balancing, hairpin masquerade, reject without endpoints", () => {
    const text = renderProxyRules([web, dns], [webSlice], { nodeName: "node-1" });
    const lines = text.trim().split("\n");
    const hashOf = (prefix: string) => lines.filter((l) => l.startsWith(`:${prefix}`)).map((l) => l.slice(1, l.indexOf(" ")));
    const [svc] = hashOf("AMBIT-SVC-");
    const [sepA, sepB] = lines.filter((l) => l.startsWith(`-A ${svc} `)).map((l) => l.slice(l.lastIndexOf(" ") + 1));
    expect(svc).toMatch(/^AMBIT-SVC-[0-9A-F]{16}$/);
    expect(hashOf("AMBIT-SEP-").sort()).toEqual([sepA, sepB].sort());

    expect(text).toBe(
      [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":AMBIT-SERVICES - [0:0]",
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "ambit service portals" -j AMBIT-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "ambit service portals" -j AMBIT-SERVICES',
        '-A AMBIT-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/dns:dns has no endpoints" -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable',
        "COMMIT",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":AMBIT-MARK-MASQ - [0:0]",
        ":AMBIT-POSTROUTING - [0:0]",
        ...[`:${sepA} - [0:0]`, `:${sepB} - [0:0]`].sort(),
        ":AMBIT-SERVICES - [0:0]",
        `:${svc} - [0:0]`,
        '-A PREROUTING -m comment --comment "ambit service portals" -j AMBIT-SERVICES',
        '-A OUTPUT -m comment --comment "ambit service portals" -j AMBIT-SERVICES',
        '-A POSTROUTING -m comment --comment "ambit postrouting rules" -j AMBIT-POSTROUTING',
        "-A AMBIT-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A AMBIT-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE",
        `-A AMBIT-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "shop/web:http cluster IP" -m tcp --dport 80 -j ${svc}`,
        `-A ${svc} -m comment --comment "shop/web:http -> 10.244.1.4:8080" -m statistic --mode random --probability 0.5000000000 -j ${sepA}`,
        `-A ${svc} -m comment --comment "shop/web:http -> 10.244.2.3:8080" -j ${sepB}`,
        `-A ${sepA} -s 10.244.1.4/32 -m comment --comment "shop/web:http" -j AMBIT-MARK-MASQ`,
        `-A ${sepA} -p tcp -m comment --comment "shop/web:http" -m tcp -j DNAT --to-destination 10.244.1.4:8080`,
        `-A ${sepB} -s 10.244.2.3/32 -m comment --comment "shop/web:http" -j AMBIT-MARK-MASQ`,
        `-A ${sepB} -p tcp -m comment --comment "shop/web:http" -m tcp -j DNAT --to-destination 10.244.2.3:8080`,
        "COMMIT",
        "",
      ].join("\n"),
    );
  });

  it("gives every one of n endpoints an equal share: probabilities 1/n, 1/(n-1), ..., then unconditional", () => {
    const eps = ["10.244.1.2", "10.244.1.3", "10.244.2.2", "10.244.2.3"].map((ip) => ready(ip));
    const text = renderProxyRules([web], [slice("shop", "web", "w", [{ name: "http", port: 8080 }], eps)], { nodeName: "node-1" });
    const picks = text.split("\n").filter((l) => l.includes("-> 10.244."));
    expect(picks.map((l) => /--probability (\S+)/.exec(l)?.[1] ?? "always")).toEqual(["0.2500000000", "0.3333333333", "0.5000000000", "always"]);
  });

  it("is deterministic whatever order the objects arrive in, and empty input still flushes our chains", () => {
    const other = service("shop", "api", "10.96.0.30", [{ port: 8443 }]);
    const apiSlice = slice("shop", "api", "api-1", [{ port: 8443 }], [ready("10.244.2.8")]);
    const a = renderProxyRules([web, dns, other], [webSlice, apiSlice], { nodeName: "node-1" });
    const b = renderProxyRules([other, dns, web], [apiSlice, { ...webSlice, endpoints: [...(webSlice.endpoints ?? [])].reverse() }], { nodeName: "node-1" });
    expect(b).toBe(a);
    expect(a.indexOf('"shop/api cluster IP"')).toBeLessThan(a.indexOf('"shop/web:http cluster IP"'));

    const empty = renderProxyRules([], [], { nodeName: "node-1" });
    expect(empty).toContain(":AMBIT-SERVICES - [0:0]");
    expect(empty).not.toContain("AMBIT-SVC-");
  });
});

describe("renderHostsFile", () => {
  it("maps service names like cluster DNS, short names only for the pod's namespace, skipping headless services", () => {
    const services = [
      service("shop", "web", "10.96.0.20", [{ port: 80 }]),
      service("default", "kubernetes", "10.96.0.1", [{ port: 443 }]),
      service("shop", "db", "None", [{ port: 5432 }]),
      service("shop", "api", "10.96.0.30", [{ port: 80 }]),
    ];
    expect(renderHostsFile(services, "shop", "cluster.local", [{ ip: "10.244.1.5", names: ["web-7d9f"] }])).toBe(
      [
        "127.0.0.1 localhost",
        "::1 localhost",
        "10.244.1.5 web-7d9f",
        "10.96.0.1 kubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default",
        "10.96.0.30 api.shop.svc.cluster.local api.shop.svc api.shop api",
        "10.96.0.20 web.shop.svc.cluster.local web.shop.svc web.shop web",
        "",
      ].join("\n"),
    );
  });
});
