// Envoy's response flags for waypoint requests: printed as Envoy prints them, and set from how forwarding's attempts ended.
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ResponseFlags, WaypointError, WaypointErrorCode } from "../../waypoint/proxy/index.ts";
import { forward } from "../../waypoint/proxy/forward.ts";
import { type Endpoint, UpstreamConnectError, type UpstreamPool, type UpstreamResponse } from "../../waypoint/proxy/upstream.ts";

describe("ResponseFlags", () => {
  it("prints - when none is set", () => expect(String(new ResponseFlags())).toBe("-"));

  it("prints several in Envoy's order, whatever order they were set in, each once", () => {
    expect(new ResponseFlags(["URX", "UF"]).toString()).toBe("UF,URX");
    expect(new ResponseFlags(["OM", "DC"]).toString()).toBe("DC,OM");
    expect(new ResponseFlags().add("DC", "UT", "UT").toString()).toBe("UT,DC");
    expect(new ResponseFlags(["NR"]).has("NR")).toBe(true);
  });
});

const ENDPOINT: Endpoint = { ip: "10.244.1.10", port: 8080, identity: { trustDomain: "cluster.local", namespace: "demo", serviceAccount: "reviews" } };
const response = (status: number): UpstreamResponse => ({ status, headers: {}, body: Readable.from([]) });

/** An upstream whose attempts answer, in turn, with each of `outcomes` (a status, or an error to throw). */
function upstreamOf(outcomes: Array<number | Error | "hang">): UpstreamPool {
  let i = 0;
  const send = (_e: Endpoint, _v: "http1" | "http2", _r: unknown, signal: AbortSignal): Promise<UpstreamResponse> => {
    const outcome = outcomes[Math.min(i++, outcomes.length - 1)]!;
    if (outcome === "hang") return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error)));
    return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(response(outcome));
  };
  return { send } as unknown as UpstreamPool;
}

async function flagsOf(outcomes: Array<number | Error | "hang">, opts: { retries?: number; requestMs?: number; backendRequestMs?: number } = {}) {
  const result = await forward({
    upstream: upstreamOf(outcomes),
    pick: () => ENDPOINT,
    version: "http1",
    request: { method: "GET", path: "/", authority: "reviews", headers: {}, body: Buffer.alloc(0) },
    retry: opts.retries === undefined ? undefined : { codes: [503], attempts: opts.retries, backoffMs: 1 },
    timeouts: { ...(opts.requestMs ? { requestMs: opts.requestMs } : {}), ...(opts.backendRequestMs ? { backendRequestMs: opts.backendRequestMs } : {}) },
    random: () => 0,
  });
  return { flags: String(new ResponseFlags(result.flags)), attempts: result.attempts };
}

describe("forwarding's flags", () => {
  it("none for a backend's answer, also a retried one that succeeded", async () => {
    expect(await flagsOf([200])).toEqual({ flags: "-", attempts: 1 });
    expect(await flagsOf([503, 200], { retries: 2 })).toEqual({ flags: "-", attempts: 2 });
    // A 503 without a retry policy is the backend's answer, not a retry that ran out.
    expect(await flagsOf([503])).toEqual({ flags: "-", attempts: 1 });
  });

  it("URX when the last allowed attempt still got a retriable answer", async () => {
    expect(await flagsOf([503, 503, 503], { retries: 2 })).toEqual({ flags: "URX", attempts: 3 });
  });

  it("UF when the HBONE stream could not be opened, UC when the exchange broke after it was", async () => {
    expect((await flagsOf([new UpstreamConnectError(new Error("connection refused"))])).flags).toBe("UF");
    expect((await flagsOf([new Error("socket hang up")])).flags).toBe("UC");
    expect(await flagsOf([new UpstreamConnectError(new Error("refused"))], { retries: 1 })).toEqual({ flags: "UF,URX", attempts: 2 });
  });

  it("UT when a timeout passed; URX only when the per-try timeouts used up the retries", async () => {
    expect((await flagsOf(["hang"], { requestMs: 20 })).flags).toBe("UT");
    expect(await flagsOf(["hang"], { backendRequestMs: 10, retries: 1 })).toEqual({ flags: "UT,URX", attempts: 2 });
  });

  it("UH when no endpoint can be picked", async () => {
    const result = await forward({
      upstream: upstreamOf([200]),
      pick: () => new WaypointError(WaypointErrorCode.noEndpoint, 503, "demo/reviews:80 has no ready endpoint"),
      version: "http1",
      request: { method: "GET", path: "/", authority: "reviews", headers: {}, body: Buffer.alloc(0) },
      retry: undefined,
      timeouts: undefined,
      random: () => 0,
    });
    expect(result.flags).toEqual(["UH"]);
  });
});
