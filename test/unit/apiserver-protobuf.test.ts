// The sandbox API server's protobuf decoding: kubectl's envelope, Go's JSON names and omitempty rules, special types, bad input.
import * as k8s from "@kubernetes/client-node";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../sandbox/apiserver/types.ts";
import { decodeProtobufObject, goDuration, kubernetesProtos } from "../../sandbox/apiserver/protobuf.ts";

const { root, rules } = kubernetesProtos();
const type = (name: string) => root.lookupType(name);

/** A body as client-go writes it: "k8s\0", then runtime.Unknown{typeMeta, raw}. */
function envelope(apiVersion: string, kind: string, raw: Uint8Array, extra: Record<string, unknown> = {}): Buffer {
  const unknown = type("k8s.io.apimachinery.pkg.runtime.Unknown");
  const bytes = unknown.encode(unknown.fromObject({ typeMeta: { apiVersion, kind }, raw, ...extra })).finish();
  return Buffer.concat([Buffer.from("k8s\0", "latin1"), bytes]);
}

function encode(apiVersion: string, kind: string, message: string, object: Record<string, unknown>): Buffer {
  const t = type(message);
  return envelope(apiVersion, kind, t.encode(t.fromObject(object)).finish());
}

function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("no error thrown");
}

describe("decodeProtobufObject", () => {
  it("decodes the bytes kubectl 1.32 sends for `kubectl create namespace foo`, dropping the zero values Go omits", () => {
    // Captured with kubectl -v=9: gogo-protobuf writes every non-pointer field, so the empty strings, generation 0
    // and the zero creationTimestamp are all on the wire.
    const body = Buffer.from("6b3873000a0f0a02763112094e616d65737061636512" + "1b0a130a03666f6f12001a0022002a00320038004200120" + "01a020a001a002200", "hex");
    expect(decodeProtobufObject(body)).toEqual({ apiVersion: "v1", kind: "Namespace", metadata: { name: "foo" }, spec: {}, status: {} });
  });

  it("keeps zeros Go writes (pointer fields, fields without omitempty) and converts special types", () => {
    const body = encode("apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment", {
      metadata: { name: "web", namespace: "", generation: 0, labels: { app: "web" }, creationTimestamp: {} },
      spec: {
        replicas: 0,
        minReadySeconds: 0,
        paused: false,
        selector: { matchLabels: { app: "web" } },
        strategy: { rollingUpdate: { maxSurge: { type: 1, strVal: "50%" }, maxUnavailable: { type: 0, intVal: 0 } } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: {
            automountServiceAccountToken: false,
            hostNetwork: false,
            containers: [
              {
                name: "web",
                image: "nginx",
                args: [""],
                ports: [{ containerPort: 8080, protocol: "" }],
                resources: { limits: { cpu: { string: "500m" } } },
                env: [{ name: "K", valueFrom: { configMapKeyRef: { localObjectReference: { name: "cm" }, key: "k" } } }],
                readinessProbe: { handler: { httpGet: { path: "/", port: { type: 1, strVal: "http" } } }, periodSeconds: 5 },
              },
            ],
            volumes: [{ name: "v", volumeSource: { emptyDir: {} } }],
          },
        },
      },
    });
    expect(decodeProtobufObject(body)).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", labels: { app: "web" } },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: "web" } },
        strategy: { rollingUpdate: { maxSurge: "50%", maxUnavailable: 0 } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: {
            automountServiceAccountToken: false,
            containers: [
              {
                name: "web",
                image: "nginx",
                args: [""],
                ports: [{ containerPort: 8080 }],
                resources: { limits: { cpu: "500m" } },
                env: [{ name: "K", valueFrom: { configMapKeyRef: { name: "cm", key: "k" } } }],
                readinessProbe: { httpGet: { path: "/", port: "http" }, periodSeconds: 5 },
              },
            ],
            volumes: [{ name: "v", emptyDir: {} }],
          },
        },
      },
    });
  });

  it("writes bytes as base64, times in RFC 3339, and renames uID to uid", () => {
    const secret = encode("v1", "Secret", "k8s.io.api.core.v1.Secret", {
      metadata: { name: "s", creationTimestamp: { seconds: 1767225600 } },
      data: { a: Buffer.from("b"), empty: Buffer.alloc(0) },
      type: "Opaque",
    });
    expect(decodeProtobufObject(secret)).toEqual({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "s", creationTimestamp: "2026-01-01T00:00:00Z" },
      data: { a: "Yg==", empty: "" },
      type: "Opaque",
    });
    const token = encode("authentication.k8s.io/v1", "TokenRequest", "k8s.io.api.authentication.v1.TokenRequest", {
      metadata: {},
      spec: { audiences: ["x"], expirationSeconds: 600, boundObjectRef: { kind: "Pod", name: "p", uID: "u-1" } },
    });
    expect(decodeProtobufObject(token)).toMatchObject({
      spec: { audiences: ["x"], expirationSeconds: 600, boundObjectRef: { kind: "Pod", name: "p", uid: "u-1" } },
    });
    const event = encode("v1", "Event", "k8s.io.api.core.v1.Event", {
      metadata: { name: "e" },
      eventTime: { seconds: 1767225600, nanos: 123456789 },
      count: 2,
      reason: "Started",
    });
    // reportingComponent and reportingInstance have no omitempty in Go: written even when empty.
    expect(decodeProtobufObject(event)).toMatchObject({ eventTime: "2026-01-01T00:00:00.123456Z", count: 2, reason: "Started" });
  });

  it("refuses what is not a Kubernetes protobuf message with 400, and kinds it has no definitions for with 415", () => {
    expect(apiError(() => decodeProtobufObject(Buffer.alloc(0))).httpStatus).toBe(400);
    const wrongMagic = apiError(() => decodeProtobufObject(Buffer.from('{"kind":"Namespace"}')));
    expect(wrongMagic.httpStatus).toBe(400);
    expect(wrongMagic.message).toContain('"k8s\\x00"');
    expect(apiError(() => decodeProtobufObject(Buffer.concat([Buffer.from("k8s\0", "latin1"), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])]))).httpStatus).toBe(
      400,
    );
    expect(apiError(() => decodeProtobufObject(envelope("v1", "Namespace", Buffer.from([0x0a, 0x05, 0x01])))).httpStatus).toBe(400);
    expect(apiError(() => decodeProtobufObject(envelope("", "", new Uint8Array()))).httpStatus).toBe(400);
    const crd = apiError(() => decodeProtobufObject(envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition", new Uint8Array())));
    expect(crd.httpStatus).toBe(415);
    expect(crd.message).toContain("apiextensions.k8s.io/v1 CustomResourceDefinition");
    expect(apiError(() => decodeProtobufObject(envelope("v1", "..Secret", new Uint8Array()))).httpStatus).toBe(415);
    expect(apiError(() => decodeProtobufObject(envelope("v1", "Namespace", new Uint8Array(), { contentEncoding: "gzip" }))).httpStatus).toBe(415);
  });

  it("never throws anything but an ApiError on random bytes after the magic", () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
    const valid = [
      encode("v1", "ConfigMap", "k8s.io.api.core.v1.ConfigMap", { metadata: { name: "c", creationTimestamp: { seconds: 1 } }, data: { a: "b" } }),
      encode("v1", "Pod", "k8s.io.api.core.v1.Pod", {
        metadata: { name: "p", managedFields: [{ fieldsV1: { Raw: Buffer.from("{}") } }] },
        spec: { containers: [{ name: "c", resources: { requests: { cpu: { string: "1" } } }, ports: [{ containerPort: 80 }] }] },
        status: { startTime: { seconds: 5 } },
      }),
    ];
    for (let i = 0; i < 4000; i++) {
      const body = Buffer.from(valid[i % valid.length]!);
      for (let j = 0; j < 3; j++) body[4 + (random() % (body.length - 4))] = random();
      try {
        decodeProtobufObject(body);
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
      }
    }
  });
});

describe("json-fields.json", () => {
  /** client-node's model of a type: its JSON field names, from Kubernetes' OpenAPI spec. */
  const modelFields = (fullName: string): string[] | undefined => {
    const [, pkg, name] = /^k8s\.io\.(?:api\.(\w+)\.v1|apimachinery\.pkg\.apis\.meta\.v1)\.(\w+)$/.exec(fullName) ?? [];
    if (!name) return undefined;
    const models = k8s as unknown as Record<string, { attributeTypeMap?: Array<{ baseName: string }> } | undefined>;
    const prefixed = pkg ? `${pkg[0]!.toUpperCase()}${pkg.slice(1)}V1${name}` : undefined;
    const model = (prefixed ? models[prefixed] : undefined) ?? models[`V1${name}`];
    return model?.attributeTypeMap?.map((a) => a.baseName);
  };
  const jsonNames = (t: protobuf.Type): string[] => {
    const r = rules[t.fullName.slice(1)] ?? {};
    return t.fieldsArray.flatMap((f) => (r.inline?.includes(f.name) ? jsonNames(f.resolvedType as protobuf.Type) : [r.json?.[f.name] ?? f.name]));
  };

  it("maps every field of every vendored message to a JSON name Kubernetes' OpenAPI spec has", () => {
    const types: protobuf.Type[] = [];
    const collect = (ns: protobuf.NamespaceBase) => {
      for (const n of ns.nestedArray) {
        if (n instanceof protobuf.Type) types.push(n);
        if (n instanceof protobuf.Namespace || n instanceof protobuf.Type) collect(n);
      }
    };
    collect(root);
    let checked = 0;
    const wrong: string[] = [];
    for (const t of types) {
      const expected = modelFields(t.fullName.slice(1));
      if (!expected) continue;
      checked++;
      for (const name of jsonNames(t)) if (!expected.includes(name)) wrong.push(`${t.fullName}.${name}`);
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(300);
  });

  it("names only fields that exist", () => {
    for (const [message, r] of Object.entries(rules)) {
      const t = type(message);
      for (const f of [...(r.inline ?? []), ...Object.keys(r.json ?? {}), ...(r.keepZero ?? [])]) expect(t.fields[f], `${message}.${f}`).toBeDefined();
    }
  });
});

it("formats durations as Go's time.Duration.String()", () => {
  expect(goDuration(0)).toBe("0s");
  expect(goDuration(1.5e9)).toBe("1.5s");
  expect(goDuration(3_723e9)).toBe("1h2m3s");
  expect(goDuration(60e9)).toBe("1m0s");
  expect(goDuration(5e5)).toBe("500µs");
  expect(goDuration(-2e6)).toBe("-2ms");
});
