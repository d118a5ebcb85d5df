// Container environment: service links, downward API, ConfigMap/Secret references and $(VAR) expansion.
import { describe, expect, it } from "vitest";
import { containerEnv, expandVars, fieldRef } from "../../sandbox/kubelet/env.ts";
import { containerArgv } from "../../sandbox/kubelet/images.ts";
import type { KubeObject } from "../../kube/client.ts";

const pod: KubeObject = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "orders-1", namespace: "demo", uid: "u-1", labels: { app: "orders" } },
  spec: { nodeName: "node-1", serviceAccountName: "orders" },
  status: { podIP: "10.244.1.5", hostIP: "172.31.250.11" },
};
const svc = (name: string, ip: string, ports: object[]): KubeObject => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace: "demo" },
  spec: { clusterIP: ip, ports },
});
const sources = {
  services: [svc("payments-api", "10.96.0.20", [{ name: "http", port: 80, protocol: "TCP" }])],
  kubernetesService: svc("kubernetes", "10.96.0.1", [{ port: 443 }]),
  configMap: async (_ns: string, name: string) =>
    name === "cfg" ? ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data: { MODE: "fast" } } as KubeObject) : undefined,
  secret: async (_ns: string, name: string) =>
    name === "sec"
      ? ({ apiVersion: "v1", kind: "Secret", metadata: { name }, data: { KEY: Buffer.from("s3cret").toString("base64") } } as KubeObject)
      : undefined,
};

describe("container environment", () => {
  it("adds service links and the kubernetes service like the kubelet", async () => {
    const env = await containerEnv(pod, {}, sources);
    expect(env.PAYMENTS_API_SERVICE_HOST).toBe("10.96.0.20");
    expect(env.PAYMENTS_API_SERVICE_PORT).toBe("80");
    expect(env.PAYMENTS_API_SERVICE_PORT_HTTP).toBe("80");
    expect(env.PAYMENTS_API_PORT_80_TCP).toBe("tcp://10.96.0.20:80");
    expect(env.KUBERNETES_SERVICE_HOST).toBe("10.96.0.1");
    expect(env.HOSTNAME).toBe("orders-1");
  });

  it("omits service links when enableServiceLinks is false", async () => {
    const env = await containerEnv({ ...pod, spec: { ...pod.spec, enableServiceLinks: false } }, {}, sources);
    expect(env.PAYMENTS_API_SERVICE_HOST).toBeUndefined();
    expect(env.KUBERNETES_SERVICE_HOST).toBe("10.96.0.1");
  });

  it("resolves downward API, ConfigMap and Secret references and expands $(VAR)", async () => {
    const env = await containerEnv(
      pod,
      {
        env: [
          { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
          { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: "MODE", valueFrom: { configMapKeyRef: { name: "cfg", key: "MODE" } } },
          { name: "KEY", valueFrom: { secretKeyRef: { name: "sec", key: "KEY" } } },
          { name: "URL", value: "http://$(POD_IP):8080/$(MISSING)/$$(POD_IP)" },
        ],
        envFrom: [{ configMapRef: { name: "cfg" }, prefix: "CFG_" }],
      },
      sources,
    );
    expect(env).toMatchObject({ POD_IP: "10.244.1.5", APP: "orders", MODE: "fast", KEY: "s3cret", CFG_MODE: "fast" });
    expect(env.URL).toBe("http://10.244.1.5:8080/$(MISSING)/$(POD_IP)");
  });

  it("fails with a clear error when a required ConfigMap key is missing, and skips optional ones", async () => {
    await expect(containerEnv(pod, { env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "cfg", key: "NOPE" } } }] }, sources)).rejects.toThrow(
      /key "NOPE" of ConfigMap "demo\/cfg" not found/,
    );
    const env = await containerEnv(pod, { env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "none", key: "K", optional: true } } }] }, sources);
    expect(env.X).toBeUndefined();
  });

  it("rejects unsupported field paths", () => {
    expect(() => fieldRef(pod, "spec.containers")).toThrow(/unsupported fieldRef/);
    expect(expandVars("$(A)-$(B)", { A: "1" })).toBe("1-$(B)");
  });
});

describe("sandbox images", () => {
  it("maps image names to programs and honours command/args", () => {
    expect(containerArgv({ image: "ambit.dev/toolbox:0.1" })).toEqual(["sleep", "infinity"]);
    expect(containerArgv({ image: "ambit.dev/demo-service:0.1" })[1]).toMatch(/demo\/app\/service\.ts$/);
    expect(containerArgv({ image: "anything", command: ["sh", "-c"], args: ["true"] })).toEqual(["sh", "-c", "true"]);
    expect(() => containerArgv({ image: "nginx:1.27" })).toThrow(/image "nginx:1.27" is not available in the sandbox/);
  });
});
