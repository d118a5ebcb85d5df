// Property-based tests of the wire decoders that read untrusted bytes: CSRs (hand-written DER) and the config stream.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { meshConfigFromView } from "../../agent/config-client/mesh-config.ts";
import { PolicyStore } from "../../agent/authorization/index.ts";
import { ConfigStreamError, NdjsonLineSplitter, type Resource, parseAgentMessage, parseServerMessage } from "../../contract/stream.ts";
import { CsrError, buildCsr, generateP256, parseCsr } from "../../pki/index.ts";

const RUNS = { numRuns: 500, seed: 20261206 };
const ID = "spiffe://cluster.local/ns/demo/sa/orders";

/** Runs `f`; an error must be one of `types` (what the caller maps to a clear refusal), never anything else. */
function onlyThrows(f: () => unknown, ...types: Array<abstract new (...args: never[]) => Error>): void {
  try {
    f();
  } catch (err) {
    if (!types.some((t) => err instanceof t)) throw new Error(`unexpected ${(err as Error).constructor.name}: ${(err as Error).message}`);
  }
}

describe("CSR parser on hostile DER", () => {
  const valid = buildCsr(generateP256().privateKey, ID);

  it("a valid CSR parses to its one URI", () => {
    expect(parseCsr(valid).uris).toEqual([ID]);
  });

  it("arbitrary bytes fail only with CsrError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => onlyThrows(() => parseCsr(Buffer.from(bytes)), CsrError)),
      RUNS,
    );
  });

  it("a valid CSR with bytes flipped, cut or inserted fails only with CsrError, and never yields another identity", () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(valid.length - 1), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat(valid.length - 1) }),
      fc.record({ kind: fc.constant("insert" as const), at: fc.nat(valid.length - 1), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        let der = Buffer.from(valid);
        for (const m of mutations) {
          const at = Math.min(m.at, der.length - 1);
          if (m.kind === "flip") der[at] = der[at]! ^ m.xor;
          else if (m.kind === "cut") der = der.subarray(0, at);
          else der = Buffer.concat([der.subarray(0, at), Buffer.from(m.bytes), der.subarray(at)]);
        }
        try {
          // A mutation the signature does not cover (e.g. in the outer length) may leave it valid: same identity.
          expect(parseCsr(der).uris).toEqual([ID]);
        } catch (err) {
          if (!(err instanceof CsrError)) throw err;
        }
      }),
      RUNS,
    );
  });
});

describe("config stream decoders on hostile lines", () => {
  const ref = fc.record(
    {
      type: fc.oneof(fc.constantFrom("workload", "service", "authorization", "peerauthentication", "trustbundle", "network"), fc.string()),
      key: fc.string(),
      value: fc.jsonValue(),
    },
    { requiredKeys: ["type", "key"] },
  );
  const nearMessage = fc.record(
    {
      kind: fc.oneof(fc.constantFrom("hello", "ack", "nack", "ping", "snapshot", "delta"), fc.string()),
      node: fc.oneof(fc.string(), fc.jsonValue()),
      epoch: fc.oneof(fc.string(), fc.jsonValue()),
      version: fc.oneof(fc.nat(), fc.jsonValue()),
      fromVersion: fc.oneof(fc.nat(), fc.jsonValue()),
      error: fc.oneof(fc.string(), fc.jsonValue()),
      resources: fc.oneof(fc.array(ref, { maxLength: 4 }), fc.jsonValue()),
      upserts: fc.oneof(fc.array(ref, { maxLength: 4 }), fc.jsonValue()),
      removes: fc.oneof(fc.array(ref, { maxLength: 4 }), fc.jsonValue()),
    },
    { requiredKeys: ["kind"] },
  );
  const line = fc.oneof(
    fc.string(),
    fc.json(),
    nearMessage.map((m) => JSON.stringify(m)),
  );

  it("either side's parser returns a message or throws ConfigStreamError", () => {
    fc.assert(
      fc.property(line, (l) => {
        onlyThrows(() => parseServerMessage(l), ConfigStreamError);
        onlyThrows(() => parseAgentMessage(l), ConfigStreamError);
      }),
      RUNS,
    );
  });

  it("a snapshot that parses is applied whole or refused whole, never with an unexpected error", () => {
    fc.assert(
      fc.property(fc.array(ref, { maxLength: 6 }), (resources) => {
        const view = new Map<string, Resource>((resources as Resource[]).map((r) => [`${r.type}/${r.key}`, r]));
        let config: ReturnType<typeof meshConfigFromView> | undefined;
        try {
          config = meshConfigFromView(view);
        } catch (err) {
          if ((err as { code?: string }).code !== "AMBIT_E_CONFIG_INVALID") throw err;
          return;
        }
        onlyThrows(() => new PolicyStore({ rootNamespace: "ambit-system" }).replace(config.authorizations, config.peerAuthentications), Error);
      }),
      RUNS,
    );
  });

  it("the line splitter gives the same lines however the bytes are chunked, and bounds a line's length", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: "grapheme", maxLength: 40 }).map((s) => s.replace(/\n/g, "")),
          { maxLength: 8 },
        ),
        fc.array(fc.nat(60), { maxLength: 10 }),
        (lines, cuts) => {
          const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(""));
          const splitter = new NdjsonLineSplitter(1000);
          const got: string[] = [];
          let at = 0;
          for (const c of [...cuts, bytes.length]) {
            const end = Math.min(bytes.length, at + c);
            got.push(...splitter.push(bytes.subarray(at, end)));
            at = end;
          }
          expect(got).toEqual(lines.filter((l) => l.trim() !== ""));
        },
      ),
      RUNS,
    );
    expect(() => new NdjsonLineSplitter(10).push(Buffer.from("x".repeat(11)))).toThrow(ConfigStreamError);
  });
});
