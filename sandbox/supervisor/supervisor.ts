// The sandbox supervisor: one long-running process holding the API server, controllers, kubelets and kube-proxies.
import fs from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import type { Logger } from "pino";
import { KubeConfig } from "@kubernetes/client-node";
import { type SandboxConfig, REPO_ROOT, sandboxPaths } from "../config.ts";
import { type ApiServer, startApiServer } from "../apiserver/index.ts";
import { type NodeNetwork, createNodeNetwork, createUnderlay, routeBetweenNodes, teardownAllNetworks, writeNodeConflist } from "../network/index.ts";
import { KubeProxy } from "../kubeproxy/index.ts";
import { KubeClient, pathFor } from "../../kube/client.ts";
import { SharedInformers } from "../../kube/informers.ts";
import { Scheduler } from "../controllers/scheduler.ts";
import { DeploymentController } from "../controllers/deployments.ts";
import { EndpointSliceController } from "../controllers/endpointslices.ts";
import { DaemonSetController } from "../controllers/daemonsets.ts";
import { Kubelet } from "../kubelet/kubelet.ts";
import { processStartTicks, writeState } from "../state.ts";
import { registerSandbox } from "../shared-mounts.ts";
import { step } from "./progress.ts";

const KUBELET_VERSION = "v1.32.0-ambit-dev";

export class Supervisor {
  readonly #cfg: SandboxConfig;
  readonly #log: Logger;
  #api: ApiServer | undefined;
  #client: KubeClient | undefined;
  #informers: SharedInformers | undefined;
  #nodes: NodeNetwork[] = [];
  readonly #forwarders: Array<{ kill(signal?: NodeJS.Signals): boolean }> = [];
  readonly #stoppers: Array<() => void | Promise<void>> = [];
  #proxySyncTimer: NodeJS.Timeout | undefined;

  constructor(cfg: SandboxConfig, log: Logger) {
    this.#cfg = cfg;
    this.#log = log;
  }

  async start(): Promise<void> {
    const cfg = this.#cfg;
    const paths = sandboxPaths(cfg.stateDir);
    await step("prepare state directory", async () => {
      for (const dir of [paths.stateDir, paths.logs, paths.pods, paths.cniIpamDir, paths.apiTls]) {
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      }
      // Mount point for the per-pod token bind mount, shared with other sandboxes: the last `down` removes it.
      await registerSandbox(cfg.stateDir, process.pid);
    });

    this.#nodes = await step(`create underlay and ${cfg.nodes} node network namespaces`, async () => {
      await createUnderlay();
      const nodes: NodeNetwork[] = [];
      for (let i = 1; i <= cfg.nodes; i++) nodes.push(await createNodeNetwork(cfg, i));
      await routeBetweenNodes(nodes);
      // The cluster's own CNI only; Ambit's installer (in the agent's pod) chains itself in, as on any cluster.
      for (const node of nodes) await writeNodeConflist(cfg, node);
      return nodes;
    });

    await step("build the mesh's programs (npm run build: the bundles its images run)", async () => {
      // Loaded only here: the CLI that forks the supervisor does not need the bundler.
      const { buildBundles, buildCniExecutable } = await import("../../scripts/build.ts");
      await buildBundles();
      // The CNI image's plugin, which its installer copies onto each node.
      await buildCniExecutable();
    });

    this.#api = await step("start API server", async () => {
      const api = await startApiServer({
        host: cfg.apiHost,
        port: cfg.apiPort,
        unixSocketPath: paths.apiSocket,
        pkiDir: paths.apiTls,
        serviceCidr: cfg.serviceCidr,
        clusterDomain: cfg.clusterDomain,
        extraSans: this.#nodes.map((n) => n.ip),
        ...(cfg.maxTokenSeconds ? { maxTokenExpirationSeconds: cfg.maxTokenSeconds } : {}),
        logger: this.#log.child({ component: "apiserver" }),
      });
      await api.writeKubeconfig(paths.kubeconfig);
      return api;
    });

    await step("expose the API server on every node", async () => {
      for (const node of this.#nodes) await this.#startForwarder(node, paths.apiSocket);
    });

    const kc = new KubeConfig();
    kc.loadFromFile(paths.kubeconfig);
    const client = new KubeClient(kc);
    this.#client = client;

    await step("register nodes", async () => {
      for (const node of this.#nodes) await client.create(pathFor("v1", "nodes"), await this.#nodeObject(node));
      await client.create(pathFor("discovery.k8s.io/v1", "endpointslices", "default"), {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name: "kubernetes",
          namespace: "default",
          labels: { "kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "sandbox.ambit.dev" },
        },
        addressType: "IPv4",
        endpoints: this.#nodes.map((n) => ({ addresses: [n.ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: n.name })),
        ports: [{ name: "https", port: cfg.nodeApiPort, protocol: "TCP" }],
      });
    });

    await step("start scheduler, controllers, kubelets and kube-proxies", async () => {
      const informers = new SharedInformers(client, ["pods", "services", "endpointslices", "deployments", "daemonsets", "nodes"], (resource, err) =>
        this.#log.warn({ resource, err: String(err) }, "informer error; restarting"),
      );
      this.#informers = informers;
      const scheduler = new Scheduler(client, informers, this.#log);
      const deployments = new DeploymentController(client, informers, this.#log);
      const slices = new EndpointSliceController(client, informers, this.#log);
      const daemonsets = new DaemonSetController(client, informers, this.#log);
      const kubelets = this.#nodes.map((n) => new Kubelet(cfg, n, client, informers, this.#api!.caPem, this.#log));
      // The API server reaches each node's kubelet for pods/log, exec, attach and portforward, as over its port 10250.
      const detachKubelets = kubelets.map((k) => this.#api!.attachNode(k.node.name, k));
      const proxies = this.#nodes.map((n) => new KubeProxy(n));
      const syncProxies = () => {
        clearTimeout(this.#proxySyncTimer);
        // Debounced: a rollout changes many slices at once; one iptables-restore per burst is enough.
        this.#proxySyncTimer = setTimeout(() => {
          const services = informers.list("services");
          const endpointSlices = informers.list("endpointslices");
          for (const proxy of proxies) {
            void proxy.sync(services as never, endpointSlices as never).catch((err: unknown) => this.#log.warn({ err: String(err) }, "kube-proxy sync failed"));
          }
        }, 30);
      };
      informers.on("services", syncProxies);
      informers.on("endpointslices", syncProxies);
      this.#stoppers.push(
        () => scheduler.stop(),
        () => deployments.stop(),
        () => slices.stop(),
        () => daemonsets.stop(),
        () => clearTimeout(this.#proxySyncTimer),
        () => detachKubelets.forEach((detach) => detach()),
        async () => {
          await Promise.all(kubelets.map((k) => k.stop()));
        },
      );
      await informers.start();
      syncProxies();
    });

    await writeState(cfg.stateDir, {
      version: 1,
      supervisorPid: process.pid,
      supervisorStartTicks: (await processStartTicks(process.pid)) ?? "",
      startedAt: new Date().toISOString(),
      apiUrl: this.#api.url,
      kubeconfig: paths.kubeconfig,
      nodes: this.#nodes,
    });
  }

  async #startForwarder(node: NodeNetwork, socketPath: string): Promise<void> {
    const script = path.join(REPO_ROOT, "sandbox", "supervisor", "forwarder.ts");
    const child = execa("nsenter", [`--net=/run/netns/${node.netns}`, "--", process.execPath, script, node.ip, String(this.#cfg.nodeApiPort), socketPath], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      reject: false,
    });
    this.#forwarders.push(child);
    await new Promise<void>((resolve, reject) => {
      child.once("message", () => resolve());
      void child.then((r) => reject(new Error(`API forwarder on ${node.name} exited early: ${r.stderr ?? r.exitCode}`)));
    });
  }

  async #nodeObject(node: NodeNetwork) {
    const kernel = (await fs.readFile("/proc/sys/kernel/osrelease", "utf8")).trim();
    const now = new Date().toISOString();
    return {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: node.name,
        labels: { "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": process.arch === "x64" ? "amd64" : process.arch },
        annotations: { "sandbox.ambit.dev/netns": node.netns },
      },
      spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] },
      status: {
        addresses: [
          { type: "InternalIP", address: node.ip },
          { type: "Hostname", address: node.name },
        ],
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "KubeletReady",
            message: "sandbox kubelet is posting ready status",
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          },
        ],
        nodeInfo: {
          kubeletVersion: KUBELET_VERSION,
          kubeProxyVersion: KUBELET_VERSION,
          osImage: "Ambit sandbox",
          kernelVersion: kernel,
          containerRuntimeVersion: "ambit-sandbox://0.1.0",
          operatingSystem: "linux",
          architecture: process.arch,
        },
        capacity: { cpu: "2", memory: "24Gi", pods: "110" },
        allocatable: { cpu: "2", memory: "24Gi", pods: "110" },
      },
    };
  }

  /** Stops everything and removes every trace; safe to call more than once. */
  async stop(): Promise<void> {
    for (const stop of this.#stoppers.splice(0)) await stop();
    await this.#informers?.stop().catch(() => {});
    this.#client?.close();
    for (const f of this.#forwarders.splice(0)) f.kill("SIGTERM");
    await this.#api?.close().catch(() => {});
    this.#api = undefined;
    await teardownAllNetworks(this.#cfg);
  }
}
