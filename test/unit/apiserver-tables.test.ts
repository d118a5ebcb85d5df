// Server-side printing of the sandbox API server: Table shapes per kind, -o wide columns, CRD printer columns, ages.
import { describe, expect, it } from "vitest";
import { humanDuration, toTable } from "../../sandbox/apiserver/tables.ts";
import type { KubeObject } from "../../sandbox/apiserver/types.ts";

const now = new Date("2026-03-01T12:00:00Z");
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000).toISOString();

const names = (table: ReturnType<typeof toTable>) => table.columnDefinitions.map((c) => c.name);
const wideNames = (table: ReturnType<typeof toTable>) => table.columnDefinitions.filter((c) => c.priority > 0).map((c) => c.name);

const runningPod = (): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "orders-1", namespace: "demo", uid: "u1", creationTimestamp: ago(300), labels: { app: "orders" } },
  spec: { nodeName: "node-1", containers: [{ name: "app" }, { name: "proxy" }] },
  status: {
    phase: "Running",
    podIP: "10.244.1.5",
    podIPs: [{ ip: "10.244.1.5" }],
    conditions: [{ type: "Ready", status: "True" }],
    containerStatuses: [
      { name: "app", ready: true, restartCount: 2, state: { running: {} }, lastState: { terminated: { exitCode: 1, finishedAt: ago(90) } } },
      { name: "proxy", ready: true, restartCount: 1, state: { running: {} } },
    ],
  },
});

describe("humanDuration", () => {
  it("formats like kubectl", () => {
    const cases: Array<[number, string]> = [
      [5, "5s"],
      [119, "119s"],
      [192, "3m12s"],
      [300, "5m"],
      [45 * 60, "45m"],
      [2 * 3600 + 30 * 60, "150m"],
      [3 * 3600 + 30 * 60, "3h30m"],
      [5 * 3600, "5h"],
      [30 * 3600, "30h"],
      [3 * 86400, "3d"],
      [3 * 86400 + 5 * 3600, "3d5h"],
      [45 * 86400, "45d"],
      [800 * 86400, "2y70d"],
      [-1, "0s"],
      [-10, "<invalid>"],
    ];
    for (const [seconds, expected] of cases) expect(humanDuration(ago(seconds), now), `${seconds}s`).toBe(expected);
    expect(humanDuration(undefined, now)).toBe("<unknown>");
    expect(humanDuration("not a date", now)).toBe("<unknown>");
  });
});

describe("toTable: Pods", () => {
  it("has the real server's columns, with the -o wide ones at priority 1", () => {
    const table = toTable("Pod", [runningPod()], { includeObject: "None", now, resourceVersion: "42" });
    expect(table.kind).toBe("Table");
    expect(table.apiVersion).toBe("meta.k8s.io/v1");
    expect(table.metadata).toEqual({ resourceVersion: "42" });
    expect(names(table)).toEqual(["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]);
    expect(wideNames(table)).toEqual(["IP", "Node", "Nominated Node", "Readiness Gates"]);
    expect(table.columnDefinitions[0]).toMatchObject({ name: "Name", type: "string", format: "name", priority: 0 });
    expect(table.columnDefinitions.every((c) => c.type === "string" && c.description !== "")).toBe(true);
    expect(table.rows).toEqual([{ cells: ["orders-1", "2/2", "Running", "3 (90s ago)", "5m", "10.244.1.5", "node-1", "<none>", "<none>"] }]);
  });

  it("shows waiting reasons, Terminating and <none> for unscheduled pods", () => {
    const creating = runningPod();
    creating.spec.nodeName = undefined;
    creating.status = {
      phase: "Pending",
      containerStatuses: [{ name: "app", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } } }],
    };
    const crashing = runningPod();
    crashing.status.containerStatuses[0] = { name: "app", ready: false, restartCount: 4, state: { waiting: { reason: "CrashLoopBackOff" } } };
    const terminating = runningPod();
    terminating.metadata.deletionTimestamp = ago(1);
    const rows = toTable("Pod", [creating, crashing, terminating], { includeObject: "None", now }).rows.map((r) => r.cells);
    expect(rows[0]!.slice(1, 4)).toEqual(["0/2", "ContainerCreating", "0"]);
    expect(rows[0]!.slice(5, 7)).toEqual(["<none>", "<none>"]);
    expect(rows[1]!.slice(1, 3)).toEqual(["1/2", "CrashLoopBackOff"]);
    expect(rows[2]![2]).toBe("Terminating");
  });

  it("shows init progress and readiness gates", () => {
    const initializing = runningPod();
    initializing.spec.initContainers = [{ name: "setup" }, { name: "migrate" }];
    initializing.spec.readinessGates = [{ conditionType: "example.com/ready" }];
    initializing.status = {
      phase: "Pending",
      conditions: [{ type: "example.com/ready", status: "True" }],
      initContainerStatuses: [
        { name: "setup", state: { terminated: { exitCode: 0 } } },
        { name: "migrate", state: { running: {} } },
      ],
    };
    const [cells] = toTable("Pod", [initializing], { includeObject: "None", now }).rows.map((r) => r.cells);
    expect(cells![2]).toBe("Init:1/2");
    expect(cells![8]).toBe("1/1");
  });

  it("attaches PartialObjectMetadata, the full object, or nothing", () => {
    const pod = runningPod();
    expect(toTable("Pod", [pod], { includeObject: "Metadata", now }).rows[0]!.object).toEqual({
      kind: "PartialObjectMetadata",
      apiVersion: "meta.k8s.io/v1",
      metadata: pod.metadata,
    });
    expect(toTable("Pod", [pod], { includeObject: "Object", now }).rows[0]!.object).toEqual(pod);
    expect(toTable("Pod", [pod], { includeObject: "None", now }).rows[0]).not.toHaveProperty("object");
    expect(toTable("Pod", [], { includeObject: "None", now }).metadata).toEqual({});
  });
});

describe("toTable: other built-in kinds", () => {
  it("prints Nodes with status, roles and wide system info", () => {
    const node: KubeObject = {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-1", creationTimestamp: ago(3 * 86400), labels: { "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge" } },
      spec: { unschedulable: true },
      status: {
        conditions: [{ type: "Ready", status: "True" }],
        addresses: [{ type: "InternalIP", address: "172.31.250.11" }],
        nodeInfo: { kubeletVersion: "v1.31.0-ambit", osImage: "Debian", kernelVersion: "6.1", containerRuntimeVersion: "ambit://0.1" },
      },
    };
    const table = toTable("Node", [node, { apiVersion: "v1", kind: "Node", metadata: { name: "node-2" } }], { includeObject: "None", now });
    expect(names(table)).toEqual([
      "Name",
      "Status",
      "Roles",
      "Age",
      "Version",
      "Internal-IP",
      "External-IP",
      "OS-Image",
      "Kernel-Version",
      "Container-Runtime",
    ]);
    expect(table.rows[0]!.cells).toEqual([
      "node-1",
      "Ready,SchedulingDisabled",
      "control-plane,edge",
      "3d",
      "v1.31.0-ambit",
      "172.31.250.11",
      "<none>",
      "Debian",
      "6.1",
      "ambit://0.1",
    ]);
    expect(table.rows[1]!.cells.slice(1, 3)).toEqual(["Unknown", "<none>"]);
  });

  it("prints Services with ports and the wide selector", () => {
    const service: KubeObject = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "orders", creationTimestamp: ago(60) },
      spec: {
        type: "ClusterIP",
        clusterIP: "10.96.0.10",
        clusterIPs: ["10.96.0.10"],
        selector: { tier: "backend", app: "orders" },
        ports: [
          { port: 80, protocol: "TCP" },
          { port: 53, protocol: "UDP" },
        ],
      },
    };
    const nodePort: KubeObject = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "np" },
      spec: { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] },
    };
    const table = toTable("Service", [service, nodePort], { includeObject: "None", now });
    expect(names(table)).toEqual(["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]);
    expect(wideNames(table)).toEqual(["Selector"]);
    expect(table.rows[0]!.cells).toEqual(["orders", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "60s", "app=orders,tier=backend"]);
    expect(table.rows[1]!.cells).toEqual(["np", "NodePort", "<none>", "<none>", "80:30080/TCP", "<unknown>", "<none>"]);
  });

  it("prints Deployments with ready counts and wide containers, images and selector", () => {
    const deployment: KubeObject = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "orders", creationTimestamp: ago(7200) },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: "orders" }, matchExpressions: [{ key: "track", operator: "In", values: ["stable", "canary"] }] },
        template: {
          spec: {
            containers: [
              { name: "app", image: "orders:1" },
              { name: "log", image: "log:1" },
            ],
          },
        },
      },
      status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 },
    };
    const table = toTable("Deployment", [deployment], { includeObject: "None", now });
    expect(names(table)).toEqual(["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
    expect(table.rows[0]!.cells).toEqual(["orders", "2/3", 3, 2, "120m", "app,log", "orders:1,log:1", "app=orders,track in (canary,stable)"]);
  });

  it("prints EndpointSlices, ServiceAccounts, Secrets, ConfigMaps, Leases and Namespaces", () => {
    const meta = (name: string) => ({ name, creationTimestamp: ago(10) });
    const slice: KubeObject = {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: meta("orders-abc"),
      addressType: "IPv4",
      ports: [{ port: 8080 }],
      endpoints: ["1", "2", "3", "4", "5"].map((i) => ({ addresses: [`10.244.1.${i}`] })),
    };
    expect(toTable("EndpointSlice", [slice], { includeObject: "None", now }).rows[0]!.cells).toEqual([
      "orders-abc",
      "IPv4",
      "8080",
      "10.244.1.1,10.244.1.2,10.244.1.3 + 2 more...",
      "10s",
    ]);
    const emptySlice = { ...slice, ports: [], endpoints: [] };
    expect(toTable("EndpointSlice", [emptySlice], { includeObject: "None", now }).rows[0]!.cells.slice(2, 4)).toEqual(["<unset>", "<unset>"]);

    const sa: KubeObject = { apiVersion: "v1", kind: "ServiceAccount", metadata: meta("default") };
    expect(toTable("ServiceAccount", [sa], { includeObject: "None", now }).rows[0]!.cells).toEqual(["default", 0, "10s"]);
    const secret: KubeObject = { apiVersion: "v1", kind: "Secret", metadata: meta("s"), type: "Opaque", data: { a: "YQ==", b: "Yg==" } };
    const secretTable = toTable("Secret", [secret], { includeObject: "None", now });
    expect(names(secretTable)).toEqual(["Name", "Type", "Data", "Age"]);
    expect(secretTable.rows[0]!.cells).toEqual(["s", "Opaque", 2, "10s"]);
    const cm: KubeObject = { apiVersion: "v1", kind: "ConfigMap", metadata: meta("c"), data: { a: "1" }, binaryData: { b: "AA==" } };
    expect(toTable("ConfigMap", [cm], { includeObject: "None", now }).rows[0]!.cells).toEqual(["c", 2, "10s"]);
    const lease: KubeObject = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: meta("leader"), spec: { holderIdentity: "controller-1" } };
    const leaseTable = toTable("Lease", [lease], { includeObject: "None", now });
    expect(names(leaseTable)).toEqual(["Name", "Holder", "Age"]);
    expect(leaseTable.rows[0]!.cells).toEqual(["leader", "controller-1", "10s"]);
    const ns: KubeObject = { apiVersion: "v1", kind: "Namespace", metadata: meta("demo"), status: { phase: "Active" } };
    expect(toTable("Namespace", [ns], { includeObject: "None", now }).rows[0]!.cells).toEqual(["demo", "Active", "10s"]);
  });

  it("prints CRDs with their creation time and anything else with name and age", () => {
    const crd: KubeObject = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "widgets.example.com", creationTimestamp: "2026-01-02T03:04:05Z" },
    };
    const crdTable = toTable("CustomResourceDefinition", [crd], { includeObject: "None", now });
    expect(names(crdTable)).toEqual(["Name", "Created At"]);
    expect(crdTable.columnDefinitions[1]!.type).toBe("date");
    expect(crdTable.rows[0]!.cells).toEqual(["widgets.example.com", "2026-01-02T03:04:05Z"]);

    const role: KubeObject = { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "reader", creationTimestamp: ago(600) } };
    const roleTable = toTable("Role", [role], { includeObject: "None", now });
    expect(names(roleTable)).toEqual(["Name", "Age"]);
    expect(roleTable.rows[0]!.cells).toEqual(["reader", "10m"]);
  });
});

describe("toTable: Events", () => {
  const event = (extra: Record<string, unknown>): KubeObject => ({
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: "web-1.17f0", namespace: "demo", creationTimestamp: ago(600) },
    involvedObject: { kind: "Pod", name: "web-1", namespace: "demo", fieldPath: "spec.containers{app}" },
    reason: "Unhealthy",
    message: "Readiness probe failed: HTTP probe failed with statuscode: 503\n",
    type: "Warning",
    source: { component: "kubelet", host: "node-1" },
    ...extra,
  });

  it("has kubectl's columns: last seen, type, reason, object, message, and the wide ones", () => {
    const table = toTable("Event", [event({ firstTimestamp: ago(600), lastTimestamp: ago(30), count: 7 })], { includeObject: "None", now });
    expect(names(table)).toEqual(["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]);
    expect(wideNames(table)).toEqual(["Subobject", "Source", "First Seen", "Count", "Name"]);
    expect(table.rows[0]!.cells).toEqual([
      "30s",
      "Warning",
      "Unhealthy",
      "pod/web-1",
      "spec.containers{app}",
      "kubelet, node-1",
      "Readiness probe failed: HTTP probe failed with statuscode: 503",
      "10m",
      7,
      "web-1.17f0",
    ]);
  });

  it("falls back to eventTime, the reporting controller and a count of 1 for events.k8s.io events, and reads series", () => {
    const single = toTable("Event", [event({ eventTime: ago(5), source: {}, reportingComponent: "default-scheduler", reportingInstance: "" })], {
      includeObject: "None",
      now,
    });
    expect(single.rows[0]!.cells).toEqual(expect.arrayContaining(["5s", "default-scheduler", 1]));
    const series = toTable("Event", [event({ eventTime: ago(300), series: { count: 4, lastObservedTime: ago(2) } })], { includeObject: "None", now });
    expect(series.rows[0]!.cells[0]).toBe("2s");
    expect(series.rows[0]!.cells[8]).toBe(4);
  });
});

describe("toTable: CRD additionalPrinterColumns", () => {
  const widget = (name: string, ready: string | undefined): KubeObject => ({
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name, creationTimestamp: ago(120), labels: { "app.kubernetes.io/name": "w" } },
    spec: { size: 3.7, enabled: true, mode: { fast: true }, items: ["x", "y"] },
    status: {
      conditions:
        ready === undefined
          ? []
          : [
              { type: "Synced", status: "False" },
              { type: "Ready", status: ready },
            ],
      seenAt: ago(30),
    },
  });

  it("evaluates simple JSONPath and renders cells by column type, adding Age when no date column exists", () => {
    const printerColumns = [
      { name: "Size", type: "integer", jsonPath: ".spec.size" },
      { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: "Enabled", type: "boolean", jsonPath: ".spec.enabled", priority: 1 },
      { name: "Mode", type: "string", jsonPath: ".spec.mode", description: "how fast" },
      { name: "First", type: "string", jsonPath: ".spec.items[0]" },
      { name: "App", type: "string", jsonPath: ".metadata.labels['app.kubernetes.io/name']" },
      { name: "Missing", type: "string", jsonPath: ".spec.nothing.here" },
    ];
    const table = toTable("Widget", [widget("a", "True"), widget("b", undefined)], { includeObject: "None", now, printerColumns });
    expect(names(table)).toEqual(["Name", "Size", "Ready", "Enabled", "Mode", "First", "App", "Missing", "Age"]);
    expect(table.columnDefinitions[3]).toMatchObject({ type: "boolean", priority: 1 });
    expect(table.columnDefinitions[4]!.description).toBe("how fast");
    expect(table.columnDefinitions[1]!.description).toBe("Custom resource definition column (in JSONPath format): .spec.size");
    expect(table.rows[0]!.cells).toEqual(["a", 3, "True", true, '{"fast":true}', "x", "w", null, "2m"]);
    expect(table.rows[1]!.cells[2]).toBeNull();
  });

  it("renders date columns as ages and then adds no extra Age column", () => {
    const printerColumns = [
      { name: "Seen", type: "date", jsonPath: ".status.seenAt" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ];
    const table = toTable("Widget", [widget("a", "True")], { includeObject: "None", now, printerColumns });
    expect(names(table)).toEqual(["Name", "Seen", "Age"]);
    expect(table.rows[0]!.cells).toEqual(["a", "30s", "2m"]);
  });

  it("prints custom resources without printer columns with name and age", () => {
    const table = toTable("Widget", [widget("a", "True")], { includeObject: "None", now });
    expect(names(table)).toEqual(["Name", "Age"]);
    expect(table.rows[0]!.cells).toEqual(["a", "2m"]);
  });
});
