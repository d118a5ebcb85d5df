// The real kubectl against the sandbox API server: the commands users run, without extra flags.
import fs from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../sandbox/config.ts";
import { type TestApiServer, startTestApiServer } from "../support/apiserver.ts";

const hasKubectl = (await execa("sh", ["-c", "command -v kubectl"], { reject: false })).exitCode === 0;

describe.skipIf(!hasKubectl)(`kubectl against the sandbox API server${hasKubectl ? "" : " (kubectl not installed: run scripts/setup.sh)"}`, () => {
  let t: TestApiServer;
  const kubectl = async (args: string[], input?: string) => {
    const r = await execa("kubectl", args, {
      env: { KUBECONFIG: t.kubeconfigPath },
      reject: false,
      timeout: 30_000,
      ...(input !== undefined ? { input } : {}),
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const manifest = (value: string) => `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: "${value}"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: ambit.dev/demo-service:0.1
        env: [{name: MODE, value: "${value}"}]
`;

  beforeAll(async () => {
    t = await startTestApiServer();
  });
  afterAll(async () => {
    await t?.close();
  });

  it("create -f, then apply -f of a changed manifest updates the objects", async () => {
    const file = path.join(t.dir, "app.yaml");
    await fs.writeFile(file, manifest("fast"));
    const created = await kubectl(["create", "-f", file]);
    expect(created.exitCode, created.stderr).toBe(0);
    expect(created.stdout).toContain("deployment.apps/web created");
    await fs.writeFile(file, manifest("safe"));
    const applied = await kubectl(["apply", "-f", file]);
    expect(applied.exitCode, applied.stderr).toBe(0);
    const cm = JSON.parse((await kubectl(["get", "configmap", "-n", "shop", "settings", "-o", "json"])).stdout);
    expect(cm.data.mode).toBe("safe");
    const deploy = JSON.parse((await kubectl(["get", "deploy", "-n", "shop", "web", "-o", "json"])).stdout);
    expect(deploy.spec.template.spec.containers[0].env).toEqual([{ name: "MODE", value: "safe" }]);
    expect(deploy.metadata.generation).toBe(2);
    // A second apply of the same file changes nothing.
    const again = await kubectl(["apply", "-f", file]);
    expect(again.stdout).toContain("configmap/settings unchanged");
  });

  it("get -A -o wide prints the server-side table with wide columns", async () => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p1", namespace: "shop" },
      spec: { nodeName: "node-1", containers: [{ name: "c", image: "x" }] },
    };
    expect((await kubectl(["create", "-f", "-"], JSON.stringify(pod))).exitCode).toBe(0);
    await t.client.mergePatch("/api/v1/namespaces/shop/pods/p1/status", { status: { phase: "Running", podIP: "10.244.1.9" } });
    const { stdout, exitCode } = await kubectl(["get", "pods", "-A", "-o", "wide"]);
    expect(exitCode).toBe(0);
    const [header, row] = stdout.trim().split("\n");
    expect(header).toMatch(/^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$/);
    expect(row!.split(/\s+/)).toEqual(expect.arrayContaining(["shop", "p1", "0/1", "Running", "10.244.1.9", "node-1"]));
  });

  it("label adds and removes labels, and selectors see them", async () => {
    expect((await kubectl(["label", "configmap", "-n", "shop", "settings", "tier=gold"])).exitCode).toBe(0);
    expect((await kubectl(["get", "cm", "-n", "shop", "-l", "tier=gold", "-o", "name"])).stdout.trim()).toBe("configmap/settings");
    expect((await kubectl(["label", "configmap", "-n", "shop", "settings", "tier-"])).exitCode).toBe(0);
    expect((await kubectl(["get", "cm", "-n", "shop", "-l", "tier", "-o", "name"])).stdout.trim()).toBe("");
  });

  it("get -w prints ADDED and MODIFIED events as they happen", async () => {
    const watch = execa("kubectl", ["get", "configmaps", "-n", "shop", "-w", "--output-watch-events"], {
      env: { KUBECONFIG: t.kubeconfigPath },
      reject: false,
      timeout: 20_000,
    });
    let out = "";
    watch.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    try {
      await expect.poll(() => out, { timeout: 10_000 }).toMatch(/ADDED\s+settings/);
      await t.client.mergePatch("/api/v1/namespaces/shop/configmaps/settings", { data: { extra: "1" } });
      await expect.poll(() => out, { timeout: 10_000 }).toMatch(/MODIFIED\s+settings\s+2/);
    } finally {
      watch.kill("SIGTERM");
    }
  });

  it("registers a CRD and serves its objects, with printer columns", async () => {
    const crd = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "widgets.example.com" },
      spec: {
        group: "example.com",
        scope: "Namespaced",
        names: { kind: "Widget", plural: "widgets", singular: "widget", shortNames: ["wd"] },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
            additionalPrinterColumns: [{ name: "Size", type: "integer", jsonPath: ".spec.size" }],
          },
        ],
      },
    };
    expect((await kubectl(["apply", "-f", "-"], JSON.stringify(crd))).exitCode).toBe(0);
    const widget = { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w1", namespace: "shop" }, spec: { size: 3 } };
    const applied = await kubectl(["apply", "-f", "-"], JSON.stringify(widget));
    expect(applied.exitCode, applied.stderr).toBe(0);
    const table = await kubectl(["get", "wd", "-n", "shop"]);
    expect(table.stdout).toMatch(/NAME\s+SIZE\s+AGE\nw1\s+3\s+/);
    widget.spec.size = 5;
    expect((await kubectl(["apply", "-f", "-"], JSON.stringify(widget))).exitCode).toBe(0);
    expect((await kubectl(["get", "widget", "-n", "shop", "w1", "-o", "jsonpath={.spec.size}"])).stdout).toBe("5");
  });

  it("validates custom resources against their CRD schema: kubectl apply refuses a typo, wrong types and bad enums", async () => {
    const crds = path.join(REPO_ROOT, "daemonset", "crds");
    expect((await kubectl(["apply", "-f", crds])).exitCode).toBe(0);
    expect((await kubectl(["apply", "-f", "-"], "apiVersion: v1\nkind: Namespace\nmetadata: {name: policies}\n")).exitCode).toBe(0);
    const policy = (spec: string) => `apiVersion: security.ambit.dev/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: policies}\nspec: ${spec}\n`;
    // kubectl's default is fieldValidation=Strict: the typo is refused, nothing is stored.
    const typo = await kubectl(["apply", "-f", "-"], policy("{action: DENY, rule: [{from: [{source: {namespaces: [legacy]}}]}]}"));
    expect(typo.exitCode).not.toBe(0);
    expect(typo.stderr).toContain('strict decoding error: unknown field "spec.rule"');
    expect((await kubectl(["get", "authorizationpolicy", "-n", "policies", "p"])).exitCode).not.toBe(0);
    const nested = await kubectl(["apply", "-f", "-"], policy("{rules: [{frm: [{source: {namespaces: [demo]}}]}]}"));
    expect(nested.stderr).toContain('unknown field "spec.rules[0].frm"');
    const peer = await kubectl(
      ["apply", "-f", "-"],
      "apiVersion: security.ambit.dev/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: policies}\nspec: {mtl: {mode: STRICT}}\n",
    );
    expect(peer.stderr).toContain('unknown field "spec.mtl"');
    // Types and enums are refused whatever the validation mode.
    const badEnum = await kubectl(["apply", "--validate=false", "-f", "-"], policy("{action: DENYY}"));
    expect(badEnum.stderr).toContain('spec.action: Unsupported value: "DENYY": supported values: "ALLOW", "DENY", "AUDIT", "CUSTOM"');
    const badType = await kubectl(["apply", "--validate=false", "-f", "-"], policy("{rules: allow-all}"));
    expect(badType.stderr).toContain("spec.rules in body must be of type array");
    // --validate=warn: stored without the unknown field, and the user is told.
    const warned = await kubectl(
      ["apply", "--validate=warn", "-f", "-"],
      policy("{action: DENY, rule: [], rules: [{from: [{source: {namespaces: [legacy]}}]}]}"),
    );
    expect(warned.exitCode, warned.stderr).toBe(0);
    expect(warned.stderr).toContain('unknown field "spec.rule"');
    const stored = JSON.parse((await kubectl(["get", "authorizationpolicy", "-n", "policies", "p", "-o", "json"])).stdout);
    expect(stored.spec).toEqual({ action: "DENY", rules: [{ from: [{ source: { namespaces: ["legacy"] } }] }] });
  });

  it("applies the rendered chart twice: every kind it holds takes kubectl's strategic merge patch", async () => {
    const { renderChartDir } = await import("../../helm/chart.ts");
    const { stringify } = await import("yaml");
    const chart = await renderChartDir(path.join(REPO_ROOT, "daemonset"), { release: { name: "ambit", namespace: "chart-twice" } });
    const yaml = [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "chart-twice" } }, ...chart.objects].map((o) => stringify(o)).join("---\n");
    expect((await kubectl(["apply", "-f", path.join(REPO_ROOT, "daemonset", "crds")])).exitCode).toBe(0);
    for (const round of [1, 2]) {
      const applied = await kubectl(["apply", "-f", "-"], yaml);
      expect(applied.exitCode, `round ${round}: ${applied.stderr}`).toBe(0);
    }
  });

  it("delete removes the object and a missing object is NotFound", async () => {
    const deleted = await kubectl(["delete", "configmap", "-n", "shop", "settings"]);
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    const missing = await kubectl(["get", "configmap", "-n", "shop", "settings"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('Error from server (NotFound): configmaps "settings" not found');
  });

  it("kubectl's generators send protobuf: create namespace, deployment, configmap, secret, service, token, then run and expose", async () => {
    const ok = async (args: string[], expected: string) => {
      const r = await kubectl(args);
      expect(r.exitCode, `kubectl ${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout.trim()).toBe(expected);
    };
    const get = async (args: string[]) => JSON.parse((await kubectl(["get", "-n", "gen", ...args, "-o", "json"])).stdout);
    await ok(["create", "namespace", "gen"], "namespace/gen created");
    await ok(["create", "deployment", "web", "-n", "gen", "--image=nginx:1.27", "--replicas=2", "--port=8080"], "deployment.apps/web created");
    await ok(["create", "deployment", "idle", "-n", "gen", "--image=nginx:1.27", "--replicas=0"], "deployment.apps/idle created");
    await ok(["create", "configmap", "settings", "-n", "gen", "--from-literal=mode=fast", "--from-literal=empty="], "configmap/settings created");
    await ok(["create", "secret", "generic", "creds", "-n", "gen", "--from-literal=user=admin"], "secret/creds created");
    await ok(["create", "service", "clusterip", "api", "-n", "gen", "--tcp=80:8080"], "service/api created");
    await ok(["run", "solo", "-n", "gen", "--image=busybox", "--restart=Never", "--labels=app=solo", "--", "sleep", "60"], "pod/solo created");
    await ok(["expose", "deployment", "web", "-n", "gen", "--port=80", "--target-port=8080"], "service/web exposed");

    const ns = JSON.parse((await kubectl(["get", "namespace", "gen", "-o", "json"])).stdout);
    expect(ns.metadata.labels).toEqual({ "kubernetes.io/metadata.name": "gen" });
    expect(ns.status.phase).toBe("Active");
    const web = await get(["deployment", "web"]);
    expect(web.metadata.labels).toEqual({ app: "web" });
    expect(web.spec.replicas).toBe(2);
    expect(web.spec.selector).toEqual({ matchLabels: { app: "web" } });
    expect(web.spec.strategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: "25%" } });
    expect(web.spec.template.metadata.labels).toEqual({ app: "web" });
    expect(web.spec.template.spec.containers).toEqual([{ name: "nginx", image: "nginx:1.27", ports: [{ containerPort: 8080 }], resources: {} }]);
    // An explicit zero of a pointer field survives protobuf: no replica starts.
    expect((await get(["deployment", "idle"])).spec.replicas).toBe(0);
    expect((await get(["configmap", "settings"])).data).toEqual({ mode: "fast", empty: "" });
    const creds = await get(["secret", "creds"]);
    expect(creds.type).toBe("Opaque");
    expect(creds.data).toEqual({ user: Buffer.from("admin").toString("base64") });
    const api = await get(["service", "api"]);
    expect(api.metadata.labels).toEqual({ app: "api" });
    expect(api.spec).toMatchObject({ type: "ClusterIP", selector: { app: "api" }, ports: [{ name: "80-8080", port: 80, protocol: "TCP", targetPort: 8080 }] });
    expect(api.spec.clusterIP).toMatch(/^10\.96\./);
    const exposed = await get(["service", "web"]);
    expect(exposed.spec).toMatchObject({ selector: { app: "web" }, ports: [{ port: 80, protocol: "TCP", targetPort: 8080 }] });
    const solo = await get(["pod", "solo"]);
    expect(solo.metadata.labels).toEqual({ app: "solo" });
    expect(solo.spec.restartPolicy).toBe("Never");
    expect(solo.spec.containers[0]).toMatchObject({ name: "solo", image: "busybox", args: ["sleep", "60"] });

    // TokenRequest, sent as authentication.k8s.io/v1 protobuf: a JWT for the service account comes back.
    const token = await kubectl(["create", "token", "default", "-n", "gen", "--duration=15m"]);
    expect(token.exitCode, token.stderr).toBe(0);
    const claims = JSON.parse(Buffer.from(token.stdout.trim().split(".")[1]!, "base64url").toString("utf8"));
    expect(claims.sub).toBe("system:serviceaccount:gen:default");
    expect(claims.exp - claims.iat).toBe(900);

    // Generators the sandbox has no resource for fail as on a cluster without that API, not on the encoding.
    const job = await kubectl(["create", "job", "j", "-n", "gen", "--image=busybox"]);
    expect(job.stderr).toContain("the server could not find the requested resource");
  });

  it("answers a body that is not Kubernetes protobuf with a Status error: 400 for garbage, 415 for a kind it has no definitions for", async () => {
    const post = (urlPath: string, body: Buffer) =>
      new Promise<{ status: number; body: { kind?: string; reason?: string; message?: string } }>((resolve, reject) => {
        const url = new URL(urlPath, t.api.url);
        const req = https.request(
          url,
          {
            method: "POST",
            ca: t.api.caPem,
            headers: { authorization: `Bearer ${t.api.adminToken}`, "content-type": "application/vnd.kubernetes.protobuf", accept: "application/json" },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    const wrongMagic = await post("/api/v1/namespaces", Buffer.from('{"kind":"Namespace"}'));
    expect(wrongMagic.status).toBe(400);
    expect(wrongMagic.body).toMatchObject({ kind: "Status", reason: "BadRequest" });
    expect(wrongMagic.body.message).toContain("not a Kubernetes protobuf message");
    const truncated = await post("/api/v1/namespaces", Buffer.from([0x6b, 0x38, 0x73, 0x00, 0x0a, 0x40, 0x0a]));
    expect(truncated.status).toBe(400);
    // runtime.Unknown{typeMeta: {apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition"}}.
    const typeMeta = Buffer.concat([
      Buffer.from([0x0a, 23]),
      Buffer.from("apiextensions.k8s.io/v1"),
      Buffer.from([0x12, 24]),
      Buffer.from("CustomResourceDefinition"),
    ]);
    const crd = await post(
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      Buffer.concat([Buffer.from("k8s\0", "latin1"), Buffer.from([0x0a, typeMeta.length]), typeMeta]),
    );
    expect(crd.status).toBe(415);
    expect(crd.body).toMatchObject({ kind: "Status", reason: "UnsupportedMediaType" });
    expect(crd.body.message).toContain("apiextensions.k8s.io/v1 CustomResourceDefinition");
    // The server is still there.
    expect((await kubectl(["get", "ns", "gen", "-o", "name"])).stdout.trim()).toBe("namespace/gen");
  });

  it("scale: kubectl scale reads and writes spec.replicas through the autoscaling/v1 Scale subresource", async () => {
    const scaled = await kubectl(["scale", "deployment/web", "-n", "gen", "--replicas=5"]);
    expect(scaled.exitCode, scaled.stderr).toBe(0);
    expect(scaled.stdout.trim()).toBe("deployment.apps/web scaled");
    const web = JSON.parse((await kubectl(["get", "deploy", "-n", "gen", "web", "-o", "json"])).stdout);
    expect(web.spec.replicas).toBe(5);
    expect(web.metadata.generation).toBe(2);
    const scale = JSON.parse((await kubectl(["get", "--raw", "/apis/apps/v1/namespaces/gen/deployments/web/scale"])).stdout);
    expect(scale).toMatchObject({
      kind: "Scale",
      apiVersion: "autoscaling/v1",
      metadata: { name: "web", namespace: "gen", uid: web.metadata.uid, resourceVersion: web.metadata.resourceVersion },
      spec: { replicas: 5 },
      status: { replicas: 0, selector: "app=web" },
    });
    // --current-replicas makes kubectl GET the Scale and PUT it back with its resourceVersion.
    const stale = await kubectl(["scale", "deployment", "web", "-n", "gen", "--current-replicas=2", "--replicas=3"]);
    expect(stale.exitCode).toBe(1);
    expect(stale.stderr).toContain("Expected replicas to be 2, was 5");
    expect((await kubectl(["scale", "deployment", "web", "-n", "gen", "--current-replicas=5", "--replicas=3"])).exitCode).toBe(0);
    // Every patch type on the subresource, as kubectl patch --subresource=scale sends them.
    for (const [type, patch, replicas] of [
      ["merge", '{"spec":{"replicas":4}}', 4],
      ["strategic", '{"spec":{"replicas":6}}', 6],
      ["json", '[{"op":"replace","path":"/spec/replicas","value":1}]', 1],
    ] as const) {
      const patched = await kubectl(["patch", "deployment", "web", "-n", "gen", "--subresource=scale", "--type", type, "-p", patch]);
      expect(patched.exitCode, `${type}: ${patched.stderr}`).toBe(0);
      expect((await kubectl(["get", "deploy", "-n", "gen", "web", "-o", "jsonpath={.spec.replicas}"])).stdout).toBe(String(replicas));
    }
    const negative = await kubectl(["patch", "deployment", "web", "-n", "gen", "--subresource=scale", "--type=merge", "-p", '{"spec":{"replicas":-1}}']);
    expect(negative.stderr).toContain('Scale "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0');
    expect((await kubectl(["scale", "daemonset", "x", "-n", "gen", "--replicas=1"])).exitCode).not.toBe(0);

    // RBAC sees deployments/scale: a service account allowed to get deployments and patch their scale can scale,
    // but not patch the Deployment itself.
    const rbac = [
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "scaler", namespace: "gen" } },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "scaler", namespace: "gen" },
        rules: [
          { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get"] },
          { apiGroups: ["apps"], resources: ["deployments/scale"], verbs: ["get", "patch", "update"] },
        ],
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "scaler", namespace: "gen" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "scaler" },
        subjects: [{ kind: "ServiceAccount", name: "scaler", namespace: "gen" }],
      },
    ];
    expect((await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: rbac }))).exitCode).toBe(0);
    const saToken = (await kubectl(["create", "token", "scaler", "-n", "gen"])).stdout.trim();
    const asScaler = (args: string[]) => kubectl([`--token=${saToken}`, ...args]);
    const byScaler = await asScaler(["scale", "deployment/web", "-n", "gen", "--replicas=2"]);
    expect(byScaler.exitCode, byScaler.stderr).toBe(0);
    expect((await kubectl(["get", "deploy", "-n", "gen", "web", "-o", "jsonpath={.spec.replicas}"])).stdout).toBe("2");
    const direct = await asScaler(["patch", "deployment", "web", "-n", "gen", "--type=merge", "-p", '{"spec":{"replicas":9}}']);
    expect(direct.stderr).toContain('User "system:serviceaccount:gen:scaler" cannot patch resource "deployments" in API group "apps"');
    const elsewhere = await asScaler(["scale", "deployment/web", "-n", "shop", "--replicas=1"]);
    expect(elsewhere.stderr).toContain('User "system:serviceaccount:gen:scaler" cannot get resource "deployments" in API group "apps" in the namespace "shop"');
  });
});
