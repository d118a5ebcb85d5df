// Label and field selectors of the sandbox API server: query-string grammar, LabelSelector and Service selector semantics.
import { describe, expect, it } from "vitest";
import { apiErrorOf } from "../support/api-errors.ts";
import { labelSelectorMatches, parseFieldSelector, parseLabelSelector, selectorFromMap } from "../../sandbox/apiserver/selectors.ts";

import type { KubeObject } from "../../sandbox/apiserver/types.ts";

const orders = { app: "orders", tier: "backend", "app.kubernetes.io/version": "2" };
const web = { app: "web", tier: "frontend" };

describe("parseLabelSelector", () => {
  it("matches everything when empty", () => {
    for (const selector of [undefined, "", "   "]) {
      const match = parseLabelSelector(selector);
      expect(match(orders)).toBe(true);
      expect(match(undefined)).toBe(true);
    }
  });

  it("supports equality, inequality and existence", () => {
    expect(parseLabelSelector("app=orders")(orders)).toBe(true);
    expect(parseLabelSelector("app==orders")(web)).toBe(false);
    expect(parseLabelSelector("app != orders")(web)).toBe(true);
    expect(parseLabelSelector("app!=orders")({})).toBe(true);
    expect(parseLabelSelector("app.kubernetes.io/version")(orders)).toBe(true);
    expect(parseLabelSelector("app.kubernetes.io/version")(web)).toBe(false);
    expect(parseLabelSelector("!app.kubernetes.io/version")(web)).toBe(true);
    expect(parseLabelSelector("! tier")(web)).toBe(false);
    expect(parseLabelSelector("app=")({ app: "" })).toBe(true);
    expect(parseLabelSelector("app=")({})).toBe(false);
  });

  it("supports set-based requirements with commas inside the parentheses", () => {
    const inSet = parseLabelSelector("app in (orders, web),tier notin (cache)");
    expect(inSet(orders)).toBe(true);
    expect(inSet(web)).toBe(true);
    expect(inSet({ app: "other", tier: "backend" })).toBe(false);
    expect(inSet({ app: "web", tier: "cache" })).toBe(false);
    expect(parseLabelSelector("app notin (orders)")({})).toBe(true);
    expect(parseLabelSelector("app in (orders)")({})).toBe(false);
    expect(parseLabelSelector("app in(orders)")(orders)).toBe(true);
  });

  it("requires every requirement to hold", () => {
    const match = parseLabelSelector("app=orders, tier=backend, !canary");
    expect(match(orders)).toBe(true);
    expect(match({ ...orders, canary: "true" })).toBe(false);
    expect(match({ app: "orders" })).toBe(false);
  });

  it("supports the numeric comparisons Kubernetes allows", () => {
    expect(parseLabelSelector("app.kubernetes.io/version>1")(orders)).toBe(true);
    expect(parseLabelSelector("app.kubernetes.io/version<2")(orders)).toBe(false);
    expect(parseLabelSelector("tier>1")(orders)).toBe(false);
  });

  it("rejects invalid selectors with 400 naming the bad requirement", () => {
    const cases: Array<[string, string]> = [
      ["a in x", 'unable to parse requirement: "a in x"'],
      ["app=orders,a in (x", 'unable to parse requirement: "a in (x"'],
      ["a in ()", 'unable to parse requirement: "a in ()"'],
      ["a=b=c", 'unable to parse requirement: "a=b=c"'],
      ["app=orders,", 'unable to parse requirement: ""'],
      ["-bad=x", 'unable to parse requirement: "-bad=x"'],
      ["a=has space", 'unable to parse requirement: "a=has space"'],
      ["Example.COM/x=y", 'unable to parse requirement: "Example.COM/x=y"'],
      ["a=" + "v".repeat(64), "label value"],
      ["a>x", 'unable to parse requirement: "a>x"'],
    ];
    for (const [selector, message] of cases) {
      const err = apiErrorOf(() => parseLabelSelector(selector));
      expect(err.httpStatus, selector).toBe(400);
      expect(err.reason).toBe("BadRequest");
      expect(err.message, selector).toContain(message);
    }
  });
});

describe("labelSelectorMatches", () => {
  it("selects nothing for null/undefined and everything for {}", () => {
    expect(labelSelectorMatches(undefined, orders)).toBe(false);
    expect(labelSelectorMatches(null, orders)).toBe(false);
    expect(labelSelectorMatches({}, orders)).toBe(true);
    expect(labelSelectorMatches({}, undefined)).toBe(true);
  });

  it("combines matchLabels and matchExpressions", () => {
    const selector = {
      matchLabels: { app: "orders" },
      matchExpressions: [
        { key: "tier", operator: "In" as const, values: ["backend", "worker"] },
        { key: "canary", operator: "DoesNotExist" as const },
        { key: "app.kubernetes.io/version", operator: "Exists" as const },
        { key: "zone", operator: "NotIn" as const, values: ["b"] },
      ],
    };
    expect(labelSelectorMatches(selector, orders)).toBe(true);
    expect(labelSelectorMatches(selector, { ...orders, zone: "b" })).toBe(false);
    expect(labelSelectorMatches(selector, { ...orders, canary: "1" })).toBe(false);
    expect(labelSelectorMatches(selector, { ...orders, tier: "frontend" })).toBe(false);
    expect(labelSelectorMatches(selector, web)).toBe(false);
  });

  it("selects nothing when the selector is one Kubernetes would refuse", () => {
    expect(labelSelectorMatches({ matchExpressions: [{ key: "app", operator: "In", values: [] }] }, orders)).toBe(false);
    expect(labelSelectorMatches({ matchExpressions: [{ key: "app", operator: "Exists", values: ["orders"] }] }, orders)).toBe(false);
    expect(labelSelectorMatches({ matchExpressions: [{ key: "app", operator: "Near" as "In", values: ["orders"] }] }, orders)).toBe(false);
  });
});

describe("selectorFromMap", () => {
  it("matches pods carrying every pair and selects nothing when empty", () => {
    const match = selectorFromMap({ app: "orders", tier: "backend" });
    expect(match(orders)).toBe(true);
    expect(match({ app: "orders" })).toBe(false);
    expect(match(undefined)).toBe(false);
    expect(selectorFromMap({})(orders)).toBe(false);
    expect(selectorFromMap(undefined)(orders)).toBe(false);
  });
});

describe("parseFieldSelector", () => {
  const pod = (name: string, nodeName: string | undefined, phase: string): KubeObject => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "demo" },
    spec: { ...(nodeName === undefined ? {} : { nodeName }), serviceAccountName: "default", hostNetwork: false },
    status: { phase, podIPs: [{ ip: "10.244.1.5" }] },
  });

  it("matches everything when empty", () => {
    expect(parseFieldSelector(undefined, "Pod")(pod("a", "n1", "Running"))).toBe(true);
    expect(parseFieldSelector("", "Pod")(pod("a", "n1", "Running"))).toBe(true);
  });

  it("selects pods by node, phase and name, as kubelets and kubectl do", () => {
    const onNode = parseFieldSelector("spec.nodeName=node-1,status.phase!=Succeeded", "Pod");
    expect(onNode(pod("a", "node-1", "Running"))).toBe(true);
    expect(onNode(pod("a", "node-2", "Running"))).toBe(false);
    expect(onNode(pod("a", "node-1", "Succeeded"))).toBe(false);
    expect(parseFieldSelector("spec.nodeName=", "Pod")(pod("a", undefined, "Pending"))).toBe(true);
    expect(parseFieldSelector("metadata.name==a", "Pod")(pod("a", "n", "Running"))).toBe(true);
    expect(parseFieldSelector("metadata.namespace=demo", "Pod")(pod("a", "n", "Running"))).toBe(true);
    expect(parseFieldSelector("status.podIP=10.244.1.5", "Pod")(pod("a", "n", "Running"))).toBe(true);
    expect(parseFieldSelector("spec.hostNetwork=false", "Pod")(pod("a", "n", "Running"))).toBe(true);
  });

  it("supports Secret, Event and Node fields and escaped values", () => {
    const secret: KubeObject = { apiVersion: "v1", kind: "Secret", metadata: { name: "s" }, type: "kubernetes.io/service-account-token" };
    expect(parseFieldSelector("type=kubernetes.io/service-account-token", "Secret")(secret)).toBe(true);
    const event: KubeObject = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "e", namespace: "demo" },
      involvedObject: { kind: "Pod", name: "a,b", namespace: "demo", uid: "u1" },
      reason: "Started",
      type: "Normal",
    };
    expect(parseFieldSelector("involvedObject.kind=Pod,involvedObject.name=a\\,b,involvedObject.uid=u1,reason=Started,type=Normal", "Event")(event)).toBe(true);
    expect(parseFieldSelector("involvedObject.namespace=other", "Event")(event)).toBe(false);
    const node: KubeObject = { apiVersion: "v1", kind: "Node", metadata: { name: "n" }, spec: {} };
    expect(parseFieldSelector("spec.unschedulable=false", "Node")(node)).toBe(true);
    expect(parseFieldSelector("metadata.namespace=", "Node")(node)).toBe(true);
  });

  it("rejects unsupported fields with Kubernetes' message", () => {
    const err = apiErrorOf(() => parseFieldSelector("spec.nodeName=n1", "Service"));
    expect(err.httpStatus).toBe(400);
    expect(err.reason).toBe("BadRequest");
    expect(err.message).toBe("field label not supported: spec.nodeName");
    expect(apiErrorOf(() => parseFieldSelector("type=Opaque", "Widget")).message).toBe("field label not supported: type");
  });

  it("rejects terms without an operator and bad escapes", () => {
    expect(apiErrorOf(() => parseFieldSelector("metadata.name", "Pod")).message).toBe("invalid selector: 'metadata.name'; can't understand 'metadata.name'");
    expect(apiErrorOf(() => parseFieldSelector("metadata.name=a\\x", "Pod")).httpStatus).toBe(400);
  });
});
