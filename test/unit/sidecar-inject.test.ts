// Sidecar injection: every workload kind, what is added (checked against Kubernetes' schemas), the rules that skip or refuse, and `ambit inject`.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { type InjectIo, injectDocuments, runInject } from "../../cli/inject.ts";
import { CA_TOKEN_AUDIENCE } from "../../contract/certificates.ts";
import { CA_ROOT_CONFIGMAP, SIDECAR_MOUNTS, SIDECAR_STATUS_ANNOTATION } from "../../contract/sidecar.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { type SidecarInjectionSettings, defaultInjectionSettings, injectPod, injectSidecar } from "../../sidecar/index.ts";
import { problems } from "../support/kube-schemas.ts";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

const settings = defaultInjectionSettings();
const meta = { name: "web", namespace: "demo", labels: { app: "web" } };
const podSpec = (extra: Obj = {}) => ({ containers: [{ name: "web", image: "nginx:1.27", ports: [{ name: "http", containerPort: 8080 }] }], ...extra });
const template = (spec: Obj = {}, metadata: Obj = {}) => ({ metadata: { labels: { app: "web" }, ...metadata }, spec: podSpec(spec) });
const selector = { matchLabels: { app: "web" } };

/** One object of every kind injection knows, each with the same pod. */
const WORKLOADS: Record<string, () => Obj> = {
  Pod: () => ({ apiVersion: "v1", kind: "Pod", metadata: meta, spec: podSpec() }),
  Deployment: () => ({ apiVersion: "apps/v1", kind: "Deployment", metadata: meta, spec: { replicas: 2, selector, template: template() } }),
  StatefulSet: () => ({ apiVersion: "apps/v1", kind: "StatefulSet", metadata: meta, spec: { serviceName: "web", selector, template: template() } }),
  DaemonSet: () => ({ apiVersion: "apps/v1", kind: "DaemonSet", metadata: meta, spec: { selector, template: template() } }),
  ReplicaSet: () => ({ apiVersion: "apps/v1", kind: "ReplicaSet", metadata: meta, spec: { selector, template: template() } }),
  ReplicationController: () => ({ apiVersion: "v1", kind: "ReplicationController", metadata: meta, spec: { selector: { app: "web" }, template: template() } }),
  Job: () => ({ apiVersion: "batch/v1", kind: "Job", metadata: meta, spec: { template: template({ restartPolicy: "Never" }) } }),
  CronJob: () => ({
    apiVersion: "batch/v1",
    kind: "CronJob",
    metadata: meta,
    spec: { schedule: "*/5 * * * *", jobTemplate: { spec: { template: template({ restartPolicy: "OnFailure" }) } } },
  }),
};

/** The pod template of an object (the Pod itself for a Pod). */
const templateOf = (o: Obj): Obj => (o.kind === "Pod" ? o : o.kind === "CronJob" ? o.spec.jobTemplate.spec.template : o.spec.template);
const deployment = (spec: Obj = {}, metadata: Obj = {}) => ({ ...WORKLOADS.Deployment!(), spec: { selector, template: template(spec, metadata) } });

function deepFreeze<T>(o: T): T {
  if (typeof o === "object" && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Injects, and checks the input was left as it was (frozen: a write would throw). */
function inject(o: Obj, s: SidecarInjectionSettings = settings) {
  const before = structuredClone(o);
  const result = injectSidecar(deepFreeze(o), s);
  expect(o).toEqual(before);
  return result;
}

const codeOf = (run: () => unknown): string | undefined => {
  try {
    run();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe("injectSidecar: every workload kind", () => {
  for (const [kind, make] of Object.entries(WORKLOADS)) {
    it(`${kind}: the init container and the proxy lead their lists, the volumes, annotations and label are added, and Kubernetes' schema accepts it`, async () => {
      const { object, report } = inject(make());
      expect(report).toEqual([{ kind, name: "web", namespace: "demo", outcome: "injected" }]);
      const t = templateOf(object);
      expect(t.spec.initContainers.map((c: Obj) => c.name)).toEqual(["ambit-init"]);
      expect(t.spec.containers.map((c: Obj) => c.name)).toEqual(["ambit-proxy", "web"]);
      expect(t.spec.volumes.map((v: Obj) => v.name)).toEqual(["ambit-ca-token", "ambit-ca-root"]);
      expect(JSON.parse(t.metadata.annotations[SIDECAR_STATUS_ANNOTATION])).toEqual({
        version: 1,
        initContainers: ["ambit-init"],
        containers: ["ambit-proxy"],
        volumes: ["ambit-ca-token", "ambit-ca-root"],
      });
      expect(t.metadata.labels).toEqual({ app: "web", "ambit.dev/dataplane-mode": "none" });
      // The rest of the object is as it was.
      const { spec: _s, metadata: _m, ...rest } = t;
      const { spec: _os, metadata: _om, ...originalRest } = templateOf(make());
      expect(rest).toEqual(originalRest);
      // A workload's own metadata is not the pod's.
      if (kind !== "Pod") expect(object.metadata).toEqual(meta);
      expect(await problems(object)).toEqual([]);
    });
  }

  it("the proxy container: downward-API identity, settings, ports, readiness, resources, an unprivileged user and the CA mounts", () => {
    const proxy = templateOf(inject(WORKLOADS.Deployment!()).object).spec.containers[0];
    expect(proxy).toEqual({
      name: "ambit-proxy",
      image: "ambit/sidecar:0.1.0",
      imagePullPolicy: "IfNotPresent",
      args: ["proxy"],
      env: [
        { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
        { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
        { name: "SERVICE_ACCOUNT", valueFrom: { fieldRef: { fieldPath: "spec.serviceAccountName" } } },
        { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
        { name: "TRUST_DOMAIN", value: "cluster.local" },
        { name: "AMBIT_CONTROLLER_ADDRESS", value: "ambit-controller.ambit-system.svc" },
        { name: "AMBIT_LOG_LEVEL", value: "info" },
        { name: "NODE_OPTIONS", value: "--max-old-space-size=96 --max-semi-space-size=16" },
      ],
      ports: [
        { name: "ambit-hbone", containerPort: 15008, protocol: "TCP" },
        { name: "ambit-metrics", containerPort: 15020, protocol: "TCP" },
        { name: "ambit-ready", containerPort: 15021, protocol: "TCP" },
      ],
      readinessProbe: { httpGet: { path: "/healthz/ready", port: 15021 }, periodSeconds: 2, failureThreshold: 3 },
      resources: { requests: { cpu: "10m", memory: "40Mi" } },
      securityContext: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        runAsUser: 1337,
        runAsGroup: 1337,
        capabilities: { drop: ["ALL"] },
      },
      volumeMounts: [
        { name: "ambit-ca-token", mountPath: SIDECAR_MOUNTS.caToken, readOnly: true },
        { name: "ambit-ca-root", mountPath: SIDECAR_MOUNTS.caRoot, readOnly: true },
      ],
    });
  });

  it("the init container runs as root with NET_ADMIN and NET_RAW only, and the volumes hold the CA token and roots", () => {
    const spec = templateOf(inject(WORKLOADS.Deployment!()).object).spec;
    expect(spec.initContainers[0]).toMatchObject({
      name: "ambit-init",
      image: "ambit/sidecar:0.1.0",
      args: ["init"],
      env: [
        { name: "AMBIT_PROXY_UID", value: "1337" },
        { name: "HOST_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
      ],
      securityContext: { runAsUser: 0, runAsNonRoot: false, allowPrivilegeEscalation: false, capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] } },
    });
    expect(spec.volumes).toEqual([
      { name: "ambit-ca-token", projected: { sources: [{ serviceAccountToken: { audience: CA_TOKEN_AUDIENCE, expirationSeconds: 3600, path: "token" } }] } },
      { name: "ambit-ca-root", configMap: { name: CA_ROOT_CONFIGMAP, items: [{ key: "root-cert.pem", path: "root-cert.pem" }] } },
    ]);
  });

  it("makes the proxy's CA token readable through the pod's fsGroup (1337 unless the pod chose one)", () => {
    expect(templateOf(inject(deployment()).object).spec.securityContext).toEqual({ fsGroup: 1337 });
    expect(templateOf(inject(deployment({ securityContext: { fsGroup: 2000, runAsNonRoot: true } })).object).spec.securityContext).toEqual({
      fsGroup: 2000,
      runAsNonRoot: true,
    });
  });

  it("the pod's own init containers and volumes stay, after the init container and before the sidecar's volumes", async () => {
    const d = deployment({ initContainers: [{ name: "migrate", image: "migrate:1" }], volumes: [{ name: "data", emptyDir: {} }] });
    const { object } = inject(d);
    const spec = templateOf(object).spec;
    expect(spec.initContainers.map((c: Obj) => c.name)).toEqual(["ambit-init", "migrate"]);
    expect(spec.volumes.map((v: Obj) => v.name)).toEqual(["data", "ambit-ca-token", "ambit-ca-root"]);
    expect(Object.keys(spec)).toEqual(["containers", "initContainers", "volumes", "securityContext"]);
    // A template without init containers gets them just before its containers.
    expect(Object.keys(templateOf(inject(deployment({ restartPolicy: "Always" })).object).spec)).toEqual([
      "initContainers",
      "containers",
      "restartPolicy",
      "volumes",
      "securityContext",
    ]);
    expect(await problems(object)).toEqual([]);
  });

  it("takes image, pull policy, trust domain, controller address, log level, resources and heap cap from the settings", async () => {
    const s: SidecarInjectionSettings = {
      image: "registry.example.com/ambit/sidecar:1.2.3",
      pullPolicy: "Always",
      trustDomain: "corp.example",
      controllerAddress: "ctl.mesh.svc",
      logLevel: "debug",
      resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
      oldSpaceMiB: 128,
    };
    const { object } = inject(WORKLOADS.StatefulSet!(), s);
    const [init, proxy] = [templateOf(object).spec.initContainers[0], templateOf(object).spec.containers[0]];
    for (const c of [init, proxy]) expect(c).toMatchObject({ image: s.image, imagePullPolicy: "Always", resources: s.resources });
    expect(Object.fromEntries(proxy.env.filter((e: Obj) => "value" in e).map((e: Obj) => [e.name, e.value]))).toEqual({
      TRUST_DOMAIN: "corp.example",
      AMBIT_CONTROLLER_ADDRESS: "ctl.mesh.svc",
      AMBIT_LOG_LEVEL: "debug",
      NODE_OPTIONS: "--max-old-space-size=128 --max-semi-space-size=16",
    });
    // The injected containers have their own copy of the resources.
    expect(proxy.resources).not.toBe(s.resources);
    expect(proxy.resources).not.toBe(init.resources);
    expect(await problems(object)).toEqual([]);
  });

  it("a List: every item injected or passed through, in order, one report entry per workload", async () => {
    const service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: "demo" },
      spec: { selector: { app: "web" }, ports: [{ port: 80 }] },
    };
    const hostPod = { apiVersion: "v1", kind: "Pod", metadata: { name: "node-exporter" }, spec: podSpec({ hostNetwork: true }) };
    const list = { apiVersion: "v1", kind: "List", metadata: {}, items: [WORKLOADS.Deployment!(), service, hostPod, WORKLOADS.CronJob!()] };
    const { object, report } = inject(list);
    expect(report).toEqual([
      { kind: "Deployment", name: "web", namespace: "demo", outcome: "injected" },
      { kind: "Pod", name: "node-exporter", outcome: "skipped", reason: "hostNetwork" },
      { kind: "CronJob", name: "web", namespace: "demo", outcome: "injected" },
    ]);
    expect(object.items[1]).toEqual(service);
    expect(object.items[2]).toEqual(hostPod);
    expect(templateOf(object.items[3]).spec.containers[0].name).toBe("ambit-proxy");
    for (const item of object.items) expect(await problems(item)).toEqual([]);
  });

  it("other kinds, and workload kinds of other API groups, come back unchanged with no report", () => {
    const others = [
      { apiVersion: "v1", kind: "Service", metadata: { name: "web" }, spec: { ports: [{ port: 80 }] } },
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cfg" }, data: { a: "b" } },
      { apiVersion: "batch.volcano.sh/v1alpha1", kind: "Job", metadata: { name: "train" }, spec: { tasks: [{ template: template() }] } },
      { apiVersion: "example.com/v1", kind: "Deployment", metadata: { name: "x" }, spec: { template: template() } },
      { metadata: { name: "no-kind" } },
    ];
    for (const o of others) {
      const { object, report } = inject(o);
      expect(object).toEqual(o);
      expect(object).not.toBe(o);
      expect(report).toEqual([]);
    }
  });
});

describe("injectSidecar: the rules", () => {
  it("is idempotent: injecting an injected object changes nothing and reports it already injected", () => {
    for (const make of Object.values(WORKLOADS)) {
      const once = inject(make()).object;
      const twice = inject(once);
      expect(twice.object).toEqual(once);
      expect(twice.report.map((r) => r.outcome)).toEqual(["already-injected"]);
    }
  });

  it("a template with a container named ambit-proxy but no status annotation counts as injected, and is left alone", () => {
    const d = deployment();
    d.spec.template.spec.containers.push({ name: "ambit-proxy", image: "ambit.dev/sidecar:old" });
    const { object, report } = inject(d);
    expect(object).toEqual(d);
    expect(report[0]!.outcome).toBe("already-injected");
  });

  it("skips hostNetwork pods and pods opted out with ambit.dev/inject: false, leaving them unchanged", () => {
    const cases: Array<[Obj, string]> = [
      [deployment({ hostNetwork: true }), "hostNetwork"],
      [deployment({}, { annotations: { "ambit.dev/inject": "false" } }), "ambit.dev/inject=false"],
      [deployment({}, { annotations: { "ambit.dev/inject": "False" } }), "ambit.dev/inject=false"],
      [{ ...WORKLOADS.Pod!(), spec: podSpec({ hostNetwork: true }) }, "hostNetwork"],
    ];
    for (const [o, reason] of cases) {
      const { object, report } = inject(o);
      expect(object).toEqual(o);
      expect(report).toEqual([expect.objectContaining({ outcome: "skipped", reason })]);
    }
    // "true", or any other value, injects.
    expect(inject(deployment({}, { annotations: { "ambit.dev/inject": "true" } })).report[0]!.outcome).toBe("injected");
  });

  it("refuses a name the sidecar adds when the template already uses it (AMBIT_E_INJECT_CONFLICT)", () => {
    const cases = [
      deployment({ initContainers: [{ name: "ambit-init", image: "x" }] }),
      deployment({ initContainers: [{ name: "ambit-proxy", image: "x" }] }),
      deployment({ volumes: [{ name: "ambit-ca-root", emptyDir: {} }] }),
      deployment({ volumes: [{ name: "ambit-ca-token", emptyDir: {} }] }),
      deployment({ containers: [{ name: "ambit-init", image: "x" }] }),
    ];
    for (const d of cases)
      expect(
        codeOf(() => inject(d)),
        JSON.stringify(d.spec.template.spec),
      ).toBe("AMBIT_E_INJECT_CONFLICT");
    expect(() => inject(cases[2])).toThrow(/deployment\/web: volume ambit-ca-root already in spec\.template\.spec/);
  });

  it("refuses an application container that declares a port the sidecar uses (AMBIT_E_INJECT_PORT_CONFLICT)", () => {
    for (const port of [15000, 15001, 15006, 15008, 15020, 15021]) {
      expect(codeOf(() => inject(deployment({ containers: [{ name: "app", image: "x", ports: [{ containerPort: port }] }] })))).toBe(
        "AMBIT_E_INJECT_PORT_CONFLICT",
      );
    }
    const native = deployment({ initContainers: [{ name: "log", image: "x", restartPolicy: "Always", ports: [{ containerPort: 15020 }] }] });
    expect(() => inject(native)).toThrow(/log port 15020/);
    // Ports next to them are the application's.
    const near = deployment({
      containers: [{ name: "app", image: "x", ports: [{ containerPort: 15002 }, { containerPort: 15010 }, { containerPort: 15022 }] }],
    });
    expect(inject(near).report[0]!.outcome).toBe("injected");
  });

  it("passes the exclusion annotations to the init container, checked and normalised", () => {
    const d = deployment(
      {},
      { annotations: { "ambit.dev/exclude-inbound-ports": " 9090, 8081,9090 ", "ambit.dev/exclude-outbound-cidrs": "10.0.0.0/8, fd00::/8" } },
    );
    expect(templateOf(inject(d).object).spec.initContainers[0].env).toEqual([
      { name: "AMBIT_PROXY_UID", value: "1337" },
      { name: "HOST_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
      { name: "AMBIT_EXCLUDE_INBOUND_PORTS", value: "9090,8081" },
      { name: "AMBIT_EXCLUDE_OUTBOUND_CIDRS", value: "10.0.0.0/8,fd00::/8" },
    ]);
    const bad = [
      { "ambit.dev/exclude-inbound-ports": "http" },
      { "ambit.dev/exclude-inbound-ports": "70000" },
      { "ambit.dev/exclude-inbound-ports": "0" },
      { "ambit.dev/exclude-outbound-cidrs": "10.0.0.0" },
      { "ambit.dev/exclude-outbound-cidrs": "10.0.0.0/33" },
      { "ambit.dev/exclude-outbound-cidrs": "example.com/8" },
      { "ambit.dev/exclude-outbound-cidrs": "fd00::/129" },
    ];
    for (const annotations of bad)
      expect(
        codeOf(() => inject(deployment({}, { annotations }))),
        JSON.stringify(annotations),
      ).toBe("AMBIT_E_INJECT_INPUT");
    expect(() => inject(deployment({}, { annotations: bad[1] }))).toThrow('"70000" is not a port (1-65535)');
  });

  it("keeps the pod's own scrape annotations (all three) and default container", () => {
    const own = { "prometheus.io/port": "9102", "kubectl.kubernetes.io/default-container": "sidekick" };
    const annotations = templateOf(inject(deployment({}, { annotations: own })).object).metadata.annotations;
    expect(annotations["prometheus.io/port"]).toBe("9102");
    expect(annotations["prometheus.io/scrape"]).toBeUndefined();
    expect(annotations["kubectl.kubernetes.io/default-container"]).toBe("sidekick");
    const added = templateOf(inject(deployment()).object).metadata.annotations;
    expect(added).toMatchObject({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "15020",
      "prometheus.io/path": "/metrics",
      "kubectl.kubernetes.io/default-container": "web",
    });
  });

  it("refuses what is not a Kubernetes object or has no pod template or containers (AMBIT_E_INJECT_INPUT)", () => {
    const bad: unknown[] = [
      null,
      "kind: Pod",
      [WORKLOADS.Pod!()],
      { apiVersion: "apps/v1", kind: "Deployment", metadata: meta, spec: { selector } },
      { apiVersion: "v1", kind: "Pod", metadata: meta },
      deployment({ containers: [] }),
      deployment({ containers: "web" }),
      { apiVersion: "v1", kind: "List", items: [42] },
      { apiVersion: "v1", kind: "List" },
      { ...deployment(), spec: { selector, template: { metadata: { annotations: ["a"] }, spec: podSpec() } } },
    ];
    for (const o of bad)
      expect(
        codeOf(() => injectSidecar(o, settings)),
        JSON.stringify(o),
      ).toBe("AMBIT_E_INJECT_INPUT");
    expect(() => injectSidecar(bad[3], settings)).toThrow("deployment/web has no pod template at spec.template");
  });

  it("a List with one workload it refuses throws, so nothing is half injected", () => {
    const list = { apiVersion: "v1", kind: "List", items: [WORKLOADS.Deployment!(), deployment({ volumes: [{ name: "ambit-ca-root", emptyDir: {} }] })] };
    expect(codeOf(() => inject(list))).toBe("AMBIT_E_INJECT_CONFLICT");
  });
});

describe("injectPod (the sandbox API server's pod creation)", () => {
  it("injects a bare pod, named by generateName before it has a name, and follows the same rules", async () => {
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { generateName: "web-7d9f-", namespace: "demo" }, spec: podSpec() };
    const before = structuredClone(pod);
    const { object, report } = injectPod(deepFreeze(pod), settings);
    expect(pod).toEqual(before);
    expect(report).toEqual({ kind: "Pod", name: "web-7d9f-", namespace: "demo", outcome: "injected" });
    expect(object).toEqual(inject(pod).object);
    expect(await problems(object)).toEqual([]);
    expect(injectPod(object, settings).report.outcome).toBe("already-injected");
    expect(injectPod({ ...pod, spec: podSpec({ hostNetwork: true }) }, settings).report).toMatchObject({ outcome: "skipped", reason: "hostNetwork" });
    expect(codeOf(() => injectPod(undefined, settings))).toBe("AMBIT_E_INJECT_INPUT");
  });
});

/** A manifest as a user writes it: YAML 1.1 values kubectl reads its way, a comment, an empty document. */
const MANIFEST = `# the web app
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {feature: "yes", build: "0755", when: "2024-01-01"}
    spec:
      containers:
      - name: web
        image: nginx:1.27
      volumes:
      - name: cfg
        configMap: {name: web, defaultMode: 0644}
---
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: demo}
spec: {hostNetwork: true, containers: [{name: probe, image: busybox}]}
`;

function fakeIo(files: Record<string, string> = {}, stdin = "") {
  const out: string[] = [];
  const err: string[] = [];
  const io: InjectIo = {
    readFile: async (p) => {
      if (!(p in files)) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: "ENOENT" });
      return files[p]!;
    },
    readStdin: async () => stdin,
    writeFile: async (p, t) => {
      files[p] = t;
    },
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
  };
  return { io, files, out, err };
}

const parseAll = (text: string) => YAML.parseAllDocuments(text, { version: "1.1" }).map((d) => d.toJS());

describe("ambit inject", () => {
  it("injects every document, writes them back as YAML separated by ---, and reports each workload", async () => {
    const { yaml, report } = injectDocuments(MANIFEST, settings, "app.yaml");
    const docs = parseAll(yaml);
    expect(docs.map((d) => d.kind)).toEqual(["Deployment", "Service", "Pod"]);
    expect(yaml.split(/^---$/m)).toHaveLength(3);
    expect(report.map((r) => `${r.outcome} ${r.kind}/${r.name}`)).toEqual(["injected Deployment/web", "skipped Pod/probe"]);
    expect(docs[0]).toEqual(injectSidecar(parseAll(MANIFEST)[0], settings).object);
    for (const d of docs) expect(await problems(d)).toEqual([]);
    // Strings stay strings for a YAML 1.1 reader (kubectl), and 0644 is the octal mode kubectl would have read.
    const t = docs[0].spec.template;
    expect(t.metadata.annotations).toMatchObject({ feature: "yes", build: "0755", when: "2024-01-01" });
    expect(t.spec.volumes[0].configMap.defaultMode).toBe(0o644);
    expect(yaml).toContain('feature: "yes"');
    // Injecting the output again changes nothing.
    const again = injectDocuments(yaml, settings);
    expect(again.yaml).toBe(yaml);
    expect(again.report.map((r) => r.outcome)).toEqual(["already-injected", "skipped"]);
  });

  it("runInject reads a file or stdin, writes stdout or -o, and prints one report line per workload on stderr", async () => {
    const fromFile = fakeIo({ "app.yaml": MANIFEST });
    await runInject({ filename: "app.yaml", image: "reg.example/sidecar:1", logLevel: "debug" }, fromFile.io);
    expect(fromFile.err).toEqual(["injected deployment/web\n", "skipped pod/probe: hostNetwork\n"]);
    const proxy = parseAll(fromFile.out.join(""))[0].spec.template.spec.containers[0];
    expect(proxy.image).toBe("reg.example/sidecar:1");
    expect(proxy.env).toContainEqual({ name: "AMBIT_LOG_LEVEL", value: "debug" });

    const fromStdin = fakeIo({}, MANIFEST);
    await runInject({ filename: "-", output: "out.yaml", trustDomain: "corp.example", controllerAddress: "ctl.example" }, fromStdin.io);
    expect(fromStdin.out).toEqual([]);
    const env = parseAll(fromStdin.files["out.yaml"]!)[0].spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: "TRUST_DOMAIN", value: "corp.example" });
    expect(env).toContainEqual({ name: "AMBIT_CONTROLLER_ADDRESS", value: "ctl.example" });
  });

  it("bad YAML, a document that is not an object, or a refused workload: an error with its code and nothing written", async () => {
    const cases: Array<[string, string, RegExp]> = [
      ["a: [1\n", "AMBIT_E_INJECT_INPUT", /in\.yaml: document 1: not valid YAML: .* at line 2, column 1$/],
      ["a: 1\na: 2\n", "AMBIT_E_INJECT_INPUT", /Map keys must be unique/],
      [`${MANIFEST}---\n- just\n- a list\n`, "AMBIT_E_INJECT_INPUT", /document 5 is a list, not a Kubernetes object/],
      ["42\n", "AMBIT_E_INJECT_INPUT", /document 1 is the number 42/],
      [
        `${MANIFEST}---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: p, image: x, ports: [{containerPort: 15008}]}]}\n`,
        "AMBIT_E_INJECT_PORT_CONFLICT",
        /document 5: pod\/p: p port 15008/,
      ],
    ];
    for (const [text, code, message] of cases) {
      const { io, files, out, err } = fakeIo({ "in.yaml": text });
      const run = runInject({ filename: "in.yaml", output: "out.yaml" }, io);
      await expect(run, text).rejects.toMatchObject({ code });
      await expect(runInject({ filename: "in.yaml" }, io)).rejects.toThrow(message);
      expect([files["out.yaml"], out, err]).toEqual([undefined, [], []]);
    }
    await expect(runInject({ filename: "missing.yaml" }, fakeIo().io)).rejects.toMatchObject({
      code: "AMBIT_E_INJECT_INPUT",
      message: /cannot read missing\.yaml/,
    });
    await expect(runInject({ filename: "-", image: " " }, fakeIo().io)).rejects.toMatchObject({ code: "AMBIT_E_USAGE" });
  });

  it("as a program: `ambit inject -f -` from stdin to stdout; bad YAML exits 1 with the code and no output", async () => {
    const bin = path.join(REPO_ROOT, "bin", "ambit.ts");
    const ok = await execa(process.execPath, [bin, "inject", "-f", "-", "--image", "reg.example/sidecar:2"], { input: MANIFEST, reject: false });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stderr).toBe("injected deployment/web\nskipped pod/probe: hostNetwork");
    expect(parseAll(ok.stdout)[0].spec.template.spec.containers[0].image).toBe("reg.example/sidecar:2");

    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ambit-inject-"));
    try {
      await fs.writeFile(path.join(dir, "bad.yaml"), "kind: Pod\n  metadata: [\n");
      const out = path.join(dir, "out.yaml");
      const bad = await execa(process.execPath, [bin, "inject", "-f", path.join(dir, "bad.yaml"), "-o", out], { reject: false });
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout).toBe("");
      expect(bad.stderr).toMatch(/^error \[AMBIT_E_INJECT_INPUT\]: .*bad\.yaml: document 1: not valid YAML/);
      await expect(fs.access(out)).rejects.toThrow();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
