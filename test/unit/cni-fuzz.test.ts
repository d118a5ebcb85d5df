// Property-based tests of the CNI surfaces a hostile or broken runtime reaches: the plugin's env and stdin, and the agent's socket.
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CniEventServer, type CniRequest, parseCniRequest, startCniEventServer } from "../../cni/index.ts";
import { PluginFailure, runPlugin } from "../../cni/plugin.ts";

const RUNS = { numRuns: 300, seed: 20261206 };

/** One raw line over the agent's socket, as the plugin (or anything else on the node) would send it. */
function exchange(socket: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket);
    let data = "";
    s.setEncoding("utf8");
    s.on("connect", () => s.write(line));
    s.on("data", (c: string) => (data += c));
    s.on("end", () => resolve(data));
    s.on("error", reject);
    s.setTimeout(5_000, () => s.destroy(new Error("no answer within 5 s")));
  });
}

// Shapes near the real requests reach the per-field checks; arbitrary JSON and text cover the rest.
const nearRequest = fc.record(
  {
    command: fc.constantFrom("ADD", "CHECK", "DEL", "STATUS", "GC", "add", ""),
    containerId: fc.oneof(fc.string(), fc.integer()),
    netns: fc.oneof(fc.constant("/run/netns/p"), fc.string()),
    ifName: fc.string(),
    podNamespace: fc.oneof(fc.string(), fc.constant(null)),
    podName: fc.string(),
    podUid: fc.string(),
    ips: fc.oneof(fc.array(fc.oneof(fc.ipV4(), fc.string())), fc.string()),
    validAttachments: fc.oneof(fc.array(fc.record({ containerID: fc.string(), ifname: fc.string() })), fc.jsonValue()),
  },
  { requiredKeys: [] },
);

describe("the agent's CNI socket", () => {
  let dir: string;
  let socket: string;
  let server: CniEventServer;
  const handled: CniRequest[] = [];

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-cni-fuzz-"));
    socket = path.join(dir, "cni.sock");
    server = await startCniEventServer(socket, async (req) => {
      handled.push(req);
      return { ok: true };
    });
  });
  afterAll(async () => {
    await server.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("refuses a request with missing fields, naming each, before the agent acts on it", async () => {
    const answer = JSON.parse(await exchange(socket, '{"command":"ADD"}\n'));
    expect(answer).toMatchObject({ ok: false, code: "AMBIT_E_CNI_BAD_REQUEST" });
    for (const field of ["containerId", "netns", "ifName", "podNamespace", "podName", "podUid", "ips"]) expect(answer.message).toContain(field);
    expect(handled).toEqual([]);
  });

  it("answers every line with one JSON object and hands the agent only well-formed requests", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          nearRequest.map((r) => JSON.stringify(r)),
          fc.json(),
          fc.string({ maxLength: 200 }),
        ),
        async (line) => {
          handled.length = 0;
          const answer = JSON.parse(await exchange(socket, `${line.replace(/\n/g, " ")}\n`)) as { ok: boolean; code?: string };
          expect(typeof answer.ok).toBe("boolean");
          for (const req of handled) expect(parseCniRequest(JSON.stringify(req))).toEqual(req);
          if (!answer.ok) expect(answer.code).toMatch(/^AMBIT_E_CNI_/);
        },
      ),
      { ...RUNS, numRuns: 200 },
    );
  });
});

describe("the plugin on hostile env and stdin", () => {
  it("fails only with the spec's error shape, never with an unexpected exception", async () => {
    // Mostly valid values with hostile ones mixed in, so runs get past the first checks to the deeper ones.
    const orGarbage = <T, G = string>(valid: fc.Arbitrary<T>, garbage?: fc.Arbitrary<G>) =>
      fc.oneof({ weight: 6, arbitrary: valid as fc.Arbitrary<T | G> }, { weight: 1, arbitrary: (garbage ?? fc.string()) as fc.Arbitrary<T | G> });
    const env = fc.record({
      CNI_COMMAND: fc.oneof(fc.constantFrom("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"), fc.string()),
      CNI_CONTAINERID: orGarbage(fc.constant("c0ffee")),
      CNI_NETNS: orGarbage(fc.constant("/run/netns/p")),
      CNI_IFNAME: orGarbage(fc.constant("eth0")),
      CNI_ARGS: orGarbage(fc.constant("K8S_POD_NAMESPACE=demo;K8S_POD_NAME=x;K8S_POD_UID=u")),
    });
    // An unreachable agent socket: every request that gets that far fails fast and cleanly.
    const conf = fc.record({
      cniVersion: orGarbage(fc.constantFrom("1.0.0", "0.4.0")),
      name: fc.string(),
      type: orGarbage(fc.constant("ambit-cni")),
      agentSocket: fc.constant("/nonexistent/ambit.sock"),
      timeoutMs: orGarbage(fc.constant(200), fc.jsonValue()),
      kubeconfig: orGarbage(fc.constant(undefined), fc.jsonValue()),
      excludeNamespaces: orGarbage(fc.constant(undefined), fc.jsonValue()),
      prevResult: fc.oneof(
        fc.jsonValue(),
        fc.constant({ ips: [{ address: "10.0.0.1/24" }] }),
        fc.record({ ips: fc.oneof(fc.array(fc.jsonValue(), { maxLength: 2 }), fc.jsonValue()) }),
      ),
      "cni.dev/valid-attachments": orGarbage(fc.constant(undefined), fc.jsonValue()),
    });
    const stdin = fc.oneof(
      { weight: 1, arbitrary: fc.string() },
      { weight: 1, arbitrary: fc.json() },
      { weight: 4, arbitrary: conf.map((o) => JSON.stringify(o)) },
    );
    await fc.assert(
      fc.asyncProperty(env, stdin, async (e, input) => {
        try {
          const out = await runPlugin(e, input);
          if (out !== undefined) JSON.parse(out);
        } catch (err) {
          expect(err).toBeInstanceOf(PluginFailure);
          expect(Number.isInteger((err as PluginFailure).cniCode)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});
