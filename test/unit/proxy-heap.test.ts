// The L7 proxies' V8 heap flags: the young generation they allow must be one the old-generation cap can absorb.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { PROXY_OLD_SPACE_MIB, maxActiveRequests, proxyNodeOptions } from "../../contract/proxy-heap.ts";
import { waypointObjects } from "../../controller/waypoints/index.ts";
import { defaultInjectionSettings, injectPod } from "../../sidecar/index.ts";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What V8 itself makes of NODE_OPTIONS: its old-space cap and its whole heap limit (old + young generation), MiB. */
function heapOf(nodeOptions: string): { oldSpaceMiB: number; youngMiB: number } {
  const out = execFileSync(process.execPath, ["-e", "const v=require('node:v8');console.log(JSON.stringify(v.getHeapStatistics()))"], {
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
  }).toString();
  const limitMiB = (JSON.parse(out) as { heap_size_limit: number }).heap_size_limit / 2 ** 20;
  const oldSpaceMiB = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
  return { oldSpaceMiB, youngMiB: limitMiB - oldSpaceMiB };
}

const envValue = (container: Obj, name: string): string => (container.env as Obj[]).find((e) => e.name === name)?.value as string;

describe("proxy heap flags", () => {
  // V8 starts marking whenever the old generation's free room is smaller than the new space: a young generation as
  // large as the cap (Node 24's default with --max-old-space-size=96 is 192 MiB) made an idle proxy collect non-stop.
  it.each([16, 48, PROXY_OLD_SPACE_MIB, 128, 512])("a %i MiB cap reserves at most half of it for the young generation", (cap) => {
    const { oldSpaceMiB, youngMiB } = heapOf(proxyNodeOptions(cap));
    expect(oldSpaceMiB).toBe(cap);
    expect(youngMiB).toBeGreaterThan(0);
    expect(youngMiB).toBeLessThanOrEqual(cap / 2);
  });

  it("the waypoint Deployment and the injected sidecar run with them", () => {
    const gateway = { apiVersion: "gateway.networking.k8s.io/v1", kind: "Gateway", metadata: { name: "waypoint", namespace: "ns", uid: "u1" } };
    const objects = waypointObjects(
      gateway as never,
      { image: "ambit/waypoint:test", pullPolicy: "IfNotPresent", trustDomain: "cluster.local", controllerAddress: "ctl", logLevel: "info", resources: {} },
      "roots",
    ) as Obj[];
    const waypoint = objects.find((o) => o.kind === "Deployment")!.spec.template.spec.containers[0] as Obj;
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "p", namespace: "ns" }, spec: { containers: [{ name: "app", image: "app" }] } };
    const sidecar = (injectPod(pod, defaultInjectionSettings()).object as Obj).spec.containers.find((c: Obj) => c.name === "ambit-proxy") as Obj;
    for (const container of [waypoint, sidecar]) {
      const { oldSpaceMiB, youngMiB } = heapOf(envValue(container, "NODE_OPTIONS"));
      expect(oldSpaceMiB).toBe(PROXY_OLD_SPACE_MIB);
      expect(youngMiB).toBeLessThanOrEqual(oldSpaceMiB / 2);
    }
  });

  it("sizes the requests a proxy serves at once from its heap limit", () => {
    // The default cap's heap limit (96 MiB old + 48 MiB young): 64 KiB each, twice what one took in flight.
    expect(maxActiveRequests(144 * 2 ** 20)).toBe(2304);
    expect(maxActiveRequests(4288 * 2 ** 20)).toBe(68608);
    expect(maxActiveRequests(1 * 2 ** 20)).toBe(64);
  });

  it("refuses a cap too small to run a proxy", () => {
    expect(() => proxyNodeOptions(8)).toThrow(/at least 16/);
    expect(() => proxyNodeOptions(96.5)).toThrow(/whole number/);
  });
});
