// The Helm chart in daemonset/, rendered as `helm template` would: what a user installs, checked object by object.
import fs from "node:fs";
import path from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadAgentConfig } from "../../agent/config.ts";
import { loadControllerConfig } from "../../controller/config.ts";
import { type KubeManifest, loadChart, renderChartDir } from "../../helm/chart.ts";
import { mergeValues } from "../../helm/engine.ts";
import { REPO_ROOT } from "../../sandbox/config.ts";

const CHART = path.join(REPO_ROOT, "daemonset");
type Container = {
  image: string;
  env: Array<{ name: string; value?: string }>;
  securityContext: { capabilities: { drop: string[]; add?: string[] }; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
};
const find = (objects: KubeManifest[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as (KubeManifest & { spec: Record<string, any> }) | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
const envOf = (c: Container) => Object.fromEntries(c.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));

describe("the Ambit chart", () => {
  it("renders with its defaults: every namespaced object in the release namespace, CRDs apart, the next step in NOTES", async () => {
    const { crds, objects, notes } = await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" } });
    expect(crds.map((c) => c.metadata.name).sort()).toEqual([
      "authorizationpolicies.security.ambit.dev",
      "backendtrafficpolicies.networking.ambit.dev",
      "peerauthentications.security.ambit.dev",
    ]);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        "ClusterRole/ambit-agent",
        "ClusterRole/ambit-controller",
        "ClusterRoleBinding/ambit-agent",
        "ClusterRoleBinding/ambit-controller",
        "DaemonSet/ambit-agent",
        "Deployment/ambit-controller",
        "PodDisruptionBudget/ambit-controller",
        "Role/ambit-agent",
        "Role/ambit-controller",
        "RoleBinding/ambit-agent",
        "RoleBinding/ambit-controller",
        "Service/ambit-controller",
        "ServiceAccount/ambit-agent",
        "ServiceAccount/ambit-controller",
      ].sort(),
    );
    for (const o of objects.filter((o) => !o.kind.startsWith("Cluster"))) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe("ambit-system");
    expect(notes).toContain("kubectl label namespace <namespace> ambit.dev/dataplane-mode=ambient");
  });

  it("the agent DaemonSet: three capabilities and no more, read-only root, node-critical, every taint tolerated, surge rollout", async () => {
    const { objects } = await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" } });
    const ds = find(objects, "DaemonSet", "ambit-agent")!;
    const pod = ds.spec.template.spec;
    const agent = pod.containers[0] as Container;
    expect(agent.securityContext.capabilities).toEqual({ drop: ["ALL"], add: ["NET_ADMIN", "SYS_ADMIN", "NET_RAW"] });
    expect(agent.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(pod).toMatchObject({
      priorityClassName: "system-node-critical",
      tolerations: [{ operator: "Exists" }],
      hostNetwork: true,
      terminationGracePeriodSeconds: 60,
    });
    expect(ds.spec.updateStrategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(agent.image).toBe("ambit/agent:0.1.0");
    expect(envOf(agent)).toMatchObject({
      AMBIT_SYSTEM_NAMESPACE: "ambit-system",
      AMBIT_CONTROLLER_ADDRESS: "ambit-controller.ambit-system.svc",
      AMBIT_HANDOVER_WAIT_MS: "20000",
      AMBIT_DRAIN_DEADLINE_MS: "30000",
      TRUST_DOMAIN: "cluster.local",
    });
    expect(ds.spec.template.metadata.annotations).toMatchObject({ "prometheus.io/scrape": "true", "prometheus.io/port": "15020" });
  });

  it("the CNI installer: a container of the agent's pod, no capability, the node's CNI dirs mounted at their host paths, ready only once chained", async () => {
    const render = async (values: Record<string, unknown> = {}) =>
      find((await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" }, values })).objects, "DaemonSet", "ambit-agent")!.spec.template
        .spec;
    const pod = await render();
    const installer = pod.containers.find((c: { name: string }) => c.name === "install-cni") as Container & {
      volumeMounts: Array<{ name: string; mountPath: string }>;
      readinessProbe: unknown;
    };
    expect(installer.image).toBe("ambit/cni:0.1.0");
    expect(installer.securityContext.capabilities).toEqual({ drop: ["ALL"] });
    expect(installer.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(envOf(installer)).toMatchObject({
      CNI_CONF_DIR: "/etc/cni/net.d",
      CNI_BIN_DIR: "/opt/cni/bin",
      AMBIT_CNI_AGENT_SOCKET: "/var/run/ambit/cni.sock",
      AMBIT_CNI_TIMEOUT_MS: "10000",
    });
    expect(envOf(installer).AMBIT_CNI_EXCLUDE_NAMESPACES).toBeUndefined();
    // Each host dir mounted where it is on the host: the chain entry names the plugin's kubeconfig by its host path.
    const hostPaths = Object.fromEntries(
      pod.volumes.filter((v: { hostPath?: unknown }) => v.hostPath).map((v: { name: string; hostPath: { path: string } }) => [v.name, v.hostPath.path]),
    );
    for (const m of installer.volumeMounts.filter((m) => m.name.startsWith("cni-") && m.name !== "cni-status")) expect(m.mountPath).toBe(hostPaths[m.name]);
    expect(installer.volumeMounts.map((m) => m.name).sort()).toEqual(["cni-bin", "cni-conf", "cni-status"]);
    expect(installer.readinessProbe).toMatchObject({ exec: { command: ["/bin/sh", "-c", "test -f /var/run/ambit-cni-status/ready"] } });
    // A k3s node's dirs, and namespaces passed through.
    const k3s = await render({
      cni: { confDir: "/var/lib/rancher/k3s/agent/etc/cni/net.d", binDir: "/var/lib/rancher/k3s/data/cni", excludeNamespaces: ["kube-system", "monitoring"] },
    });
    const k3sInstaller = k3s.containers.find((c: { name: string }) => c.name === "install-cni") as Container;
    expect(envOf(k3sInstaller)).toMatchObject({
      CNI_CONF_DIR: "/var/lib/rancher/k3s/agent/etc/cni/net.d",
      CNI_BIN_DIR: "/var/lib/rancher/k3s/data/cni",
      AMBIT_CNI_EXCLUDE_NAMESPACES: "kube-system,monitoring",
    });
    expect(k3s.volumes.find((v: { name: string }) => v.name === "cni-conf").hostPath).toEqual({
      path: "/var/lib/rancher/k3s/agent/etc/cni/net.d",
      type: "DirectoryOrCreate",
    });
  });

  it("values change what they name: namespace, images, replicas, trust domain; the controller never runs as root", async () => {
    const { objects } = await renderChartDir(CHART, {
      release: { name: "mesh", namespace: "mesh-system" },
      values: { trustDomain: "corp.example", agent: { image: { tag: "1.2.3" }, prometheusScrape: false }, controller: { replicas: 3 } },
    });
    const ds = find(objects, "DaemonSet", "ambit-agent")!;
    const agent = ds.spec.template.spec.containers[0] as Container;
    expect(agent.image).toBe("ambit/agent:1.2.3");
    expect(envOf(agent)).toMatchObject({ AMBIT_CONTROLLER_ADDRESS: "ambit-controller.mesh-system.svc", TRUST_DOMAIN: "corp.example" });
    expect(ds.spec.template.metadata.annotations).toBeUndefined();
    const deployment = find(objects, "Deployment", "ambit-controller")!;
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.template.spec.containers[0].securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    const binding = find(objects, "RoleBinding", "ambit-agent")!;
    expect((binding as unknown as { subjects: unknown[] }).subjects).toEqual([{ kind: "ServiceAccount", name: "ambit-agent", namespace: "mesh-system" }]);
  });

  it("is loaded as Helm's loader loads it: .Files holds crds/ and the other files, not templates/, Chart.yaml or values.yaml", async () => {
    const chart = await loadChart(CHART);
    const files = Object.keys(chart.files ?? {});
    expect(files).toEqual(expect.arrayContaining(["crds/authorizationpolicies.security.ambit.dev.yaml", "README.md"]));
    expect(files.filter((f) => /^(templates|charts)\/|^(Chart\.yaml|values\.yaml|values\.schema\.json)$/.test(f))).toEqual([]);
    expect(Object.keys(chart.templates)).toContain("agent.yaml");
  });
});

type Schema = {
  $ref?: string;
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
  definitions?: Record<string, Schema>;
};
const SCHEMA = JSON.parse(fs.readFileSync(path.join(CHART, "values.schema.json"), "utf8")) as Schema;
const VALUES = parseYaml(fs.readFileSync(path.join(CHART, "values.yaml"), "utf8")) as Record<string, unknown>;
/** A schema node with its $ref (into #/definitions) followed. */
const resolve = (s: Schema): Schema => (s.$ref ? resolve(SCHEMA.definitions![s.$ref.replace("#/definitions/", "")]!) : s);
const at = (keyPath: string): Schema => keyPath.split(".").reduce((s, k) => resolve(resolve(s).properties![k]!), SCHEMA);

/** The chart rendered with `values`; the ValuesError's lines when the values are refused. */
async function refusal(values: Record<string, unknown>): Promise<{ code: string; lines: string[] }> {
  try {
    await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" }, values });
  } catch (err) {
    const e = err as Error & { code: string };
    return { code: e.code, lines: e.message.split("\n") };
  }
  throw new Error(`values accepted: ${JSON.stringify(values)}`);
}

describe("values.schema.json", () => {
  it("compiles in ajv's strict mode (no misspelt keyword passes unnoticed) and values.yaml meets it, unknown keys refused at every level", () => {
    const validate = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true }).compile(SCHEMA);
    // additionalProperties is false wherever values.yaml has a map: a key added to values.yaml and not to the schema fails here.
    expect(validate(VALUES), JSON.stringify(validate.errors)).toBe(true);
    const sandbox = parseYaml(fs.readFileSync(path.join(REPO_ROOT, "sandbox", "chart-values.yaml"), "utf8")) as Record<string, unknown>;
    // What the sandbox installs with, merged over the defaults as Helm merges it.
    expect(validate(mergeValues(VALUES, sandbox)), JSON.stringify(validate.errors)).toBe(true);
  });

  it("has every key of values.yaml and no key values.yaml lacks, each described; the required ones are every key values.yaml sets", () => {
    const walk = (schema: Schema, values: Record<string, unknown>, where: string) => {
      const s = resolve(schema);
      expect(s.additionalProperties, `${where || "(root)"} refuses unknown keys`).toBe(false);
      // Kubernetes' ResourceRequirements: any of its resource names may be set, values.yaml sets some.
      if (s.properties!.requests && s.properties!.limits) return;
      const keys = Object.keys(s.properties!).filter((k) => !(where === "" && k === "global"));
      expect(keys.sort(), `keys of ${where || "(root)"}`).toEqual(Object.keys(values).sort());
      expect((s.required ?? []).sort(), `required keys of ${where || "(root)"}`).toEqual(keys);
      for (const k of keys) {
        const child = s.properties![k]!;
        expect(child.description ?? resolve(child).description, `description of ${where}${k}`).toBeTruthy();
        if (resolve(child).type === "object") walk(child, values[k] as Record<string, unknown>, `${where}${k}.`);
      }
    };
    walk(SCHEMA, VALUES, "");
  });

  it("refuses bad values before rendering, naming each key: wrong type, unknown key, bad enum, negative replicas, bad quantity, bad trust domain", async () => {
    const heading = ["values don't meet the specifications of the schema(s) in the following chart(s):", "ambit:"];
    expect(await refusal({ agent: { image: { pullPolicy: "Sometimes" } } })).toEqual({
      code: "AMBIT_E_VALUES_INVALID",
      lines: [...heading, '- agent.image.pullPolicy: must be one of Always, IfNotPresent, Never, not "Sometimes"'],
    });
    expect((await refusal({ controller: { replicas: -1 } })).lines).toEqual([...heading, "- controller.replicas: must be >= 1, not -1"]);
    expect((await refusal({ controller: { replicas: "3" } })).lines).toEqual([...heading, '- controller.replicas: must be integer, not string ("3")']);
    expect((await refusal({ agent: { image: { tga: "1.2.3" } } })).lines).toEqual([
      ...heading,
      "- agent.image.tga: unknown key (agent.image takes repository, tag, pullPolicy)",
    ]);
    expect((await refusal({ cni: { confDir: "etc/cni/net.d" } })).lines.at(-1)).toBe('- cni.confDir: must match ^/[^\\s]*$, not "etc/cni/net.d"');
    expect((await refusal({ cni: { excludeNamespaces: ["Kube_System"] } })).lines.at(-1)).toBe(
      '- cni.excludeNamespaces[0]: must match ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$, not "Kube_System"',
    );
    expect((await refusal({ agnet: {} })).lines).toEqual([
      ...heading,
      "- agnet: unknown key (the top level takes global, trustDomain, logLevel, agent, cni, controller, waypoint, dashboards)",
    ]);
    expect((await refusal({ agent: { resources: { limits: { memroy: "1Gi" } } } })).lines[2]).toMatch(/^- agent\.resources\.limits\.memroy: unknown key/);
    expect((await refusal({ agent: { resources: { limits: { memory: "1 GB" } } } })).lines[2]).toMatch(
      /^- agent\.resources\.limits\.memory: must match .*, not "1 GB"$/,
    );
    expect((await refusal({ trustDomain: "Corp.Example" })).lines[2]).toMatch(/^- trustDomain: must match \^\[a-z0-9\._-\]\+\$, not "Corp.Example"$/);
    expect((await refusal({ logLevel: "verbose" })).lines[2]).toBe('- logLevel: must be one of fatal, error, warn, info, debug, trace, silent, not "verbose"');
    expect((await refusal({ agent: { image: { tag: 1.2 } } })).lines[2]).toBe("- agent.image.tag: must be string, not number (1.2)");
    // null deletes a default in Helm; the templates need this one.
    expect((await refusal({ controller: { image: { repository: null } } })).lines[2]).toMatch(/^- controller\.image\.repository: is required/);
    // Several problems: all of them, one line each.
    expect(
      (await refusal({ agent: { prometheusScrape: "yes", handoverWaitMs: 1.5 }, controller: { workloadCertTtlSeconds: 30 } })).lines.slice(2).sort(),
    ).toEqual(
      [
        "- agent.handoverWaitMs: must be integer, not number (1.5)",
        '- agent.prometheusScrape: must be boolean, not string ("yes")',
        "- controller.workloadCertTtlSeconds: must be >= 60, not 30",
      ].sort(),
    );
  });

  it("accepts what the programs accept and refuses what they refuse: bounds, log levels and trust domains checked through the rendered env", async () => {
    const envOfRendered = async (values: Record<string, unknown>) => {
      const { objects } = await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" }, values });
      const agent = envOf(find(objects, "DaemonSet", "ambit-agent")!.spec.template.spec.containers[0] as Container);
      const controller = envOf(find(objects, "Deployment", "ambit-controller")!.spec.template.spec.containers[0] as Container);
      return { agent: { ...agent, NODE_NAME: "node-1" }, controller };
    };
    const bounded: Array<[string, "agent" | "controller"]> = [
      ["agent.handoverWaitMs", "agent"],
      ["agent.drainDeadlineMs", "agent"],
      ["controller.workloadCertTtlSeconds", "controller"],
    ];
    for (const [key, program] of bounded) {
      const { minimum, maximum } = at(key);
      const [group, name] = key.split(".") as [string, string];
      for (const edge of [minimum!, maximum!]) {
        const env = await envOfRendered({ [group]: { [name]: edge } });
        expect(() => (program === "agent" ? loadAgentConfig(env.agent) : loadControllerConfig(env.controller)), `${key}=${edge}`).not.toThrow();
      }
      // One past each bound: the schema refuses it, and so would the program had it been rendered.
      const envName = {
        "agent.handoverWaitMs": "AMBIT_HANDOVER_WAIT_MS",
        "agent.drainDeadlineMs": "AMBIT_DRAIN_DEADLINE_MS",
        "controller.workloadCertTtlSeconds": "AMBIT_WORKLOAD_CERT_TTL_SECONDS",
      }[key]!;
      for (const outside of [minimum! - 1, maximum! + 1]) {
        expect((await refusal({ [group]: { [name]: outside } })).lines[2]).toContain(`- ${key}: must be`);
        const env = { NODE_NAME: "node-1", [envName]: String(outside) };
        expect(() => (program === "agent" ? loadAgentConfig(env) : loadControllerConfig(env)), `${envName}=${outside}`).toThrow(/must be an integer from/);
      }
    }
    for (const level of at("logLevel").enum as string[]) {
      const env = await envOfRendered({ logLevel: level });
      expect(loadAgentConfig(env.agent).logLevel).toBe(level);
      expect(loadControllerConfig(env.controller).logLevel).toBe(level);
    }
    expect(() => loadAgentConfig({ NODE_NAME: "n", AMBIT_LOG_LEVEL: "verbose" })).toThrow();
    const trustDomain = new RegExp(at("trustDomain").pattern!);
    for (const td of ["cluster.local", "corp_example-1.io", "Corp.example", "a/b", "a b", ""]) {
      const program = (() => {
        try {
          loadAgentConfig({ NODE_NAME: "n", TRUST_DOMAIN: td });
          return true;
        } catch {
          return false;
        }
      })();
      // An empty TRUST_DOMAIN the program takes as unset; the schema refuses it.
      expect(trustDomain.test(td), td).toBe(td === "" ? false : program);
    }
  });

  it("gives the controller what it deploys for a waypoint: image, pull policy and resources, as the values say", async () => {
    const controllerEnv = async (values: Record<string, unknown>) => {
      const { objects } = await renderChartDir(CHART, { release: { name: "ambit", namespace: "ambit-system" }, values });
      return envOf(find(objects, "Deployment", "ambit-controller")!.spec.template.spec.containers[0] as Container);
    };
    const defaults = loadControllerConfig(await controllerEnv({})).waypoint;
    expect(defaults).toMatchObject({
      image: "ambit/waypoint:0.1.0",
      pullPolicy: "IfNotPresent",
      resources: { requests: { cpu: "100m", memory: "64Mi" }, limits: { memory: "512Mi" } },
    });
    const custom = loadControllerConfig(
      await controllerEnv({
        waypoint: { image: { repository: "reg.example/waypoint", tag: "1.2", pullPolicy: "Always" }, resources: { limits: { memory: "1Gi" } } },
      }),
    ).waypoint;
    expect(custom).toMatchObject({ image: "reg.example/waypoint:1.2", pullPolicy: "Always", resources: { limits: { memory: "1Gi" } } });
    expect(() => loadControllerConfig({ AMBIT_WAYPOINT_RESOURCES: '{"limit": {}}' })).toThrow(
      'AMBIT_WAYPOINT_RESOURCES="{\\"limit\\": {}}" has "limit"; only requests and limits are allowed',
    );
    expect(() => loadControllerConfig({ AMBIT_WAYPOINT_PULL_POLICY: "Sometimes" })).toThrow(
      /AMBIT_WAYPOINT_PULL_POLICY="Sometimes" must be Always, IfNotPresent or Never/,
    );
  });
});
