// Minimal kubelet for one sandbox node: runs its pods' processes inside pod netns wired by CNI, probes them, reports status.
import fs from "node:fs/promises";
import path from "node:path";
import type { Socket } from "node:net";
import { finished } from "node:stream/promises";
import { PassThrough, Writable, type Readable } from "node:stream";
import { execa, type Options, type ResultPromise } from "execa";
import type { Logger } from "pino";
import { type SandboxConfig, netnsNames, nodeRootDir, sandboxPaths } from "../config.ts";
import { type KubeClient, type KubeObject, pathFor, isNotFound } from "../../kube/client.ts";
import { type SharedInformers, keyOf, splitKey } from "../../kube/informers.ts";
import { WorkQueue } from "../../kube/queue.ts";
import { type NodeNetwork, addPodNetwork, createPodNetns, deleteNetns, pidsInNetns, removePodNetwork } from "../network/index.ts";
import { renderHostsFile } from "../kubeproxy/index.ts";
import { containerArgv, imageEnv } from "./images.ts";
import { containerEnv } from "./env.ts";
import { NETNS_ANNOTATION, type PodLaunchSpec, podCommand, writeLaunchSpec } from "./launcher.ts";
import { type Probe, probe } from "./probes.ts";
import { type VolumeMount, containerMounts, materializeVolumes } from "./volumes.ts";
import { recordSharedMountPoint } from "../shared-mounts.ts";
import { exposePodNetns, prepareNodeNetnsDir, unexposePodNetns } from "./netns-dir.ts";
import { type EventType, EventRecorder, containerFieldPath } from "../controllers/events.ts";
import { ApiError, type LogOptions, type PodRef, type PodStreams, type ProcessOptions, type ProcessResult, type ProcessSession } from "../apiserver/index.ts";
import { ContainerLog, type LogRun, readRun } from "./logs.ts";
import { NetnsDialer, ptyArgv, startExec, writeSize } from "./exec.ts";

export { NETNS_ANNOTATION };
const TOKEN_EXPIRATION_SECONDS = 3607;
/** File in the state directory listing mount points created on the host, one per line. */

/** A client attached to a container's process (kubectl attach): its share of the output. */
interface Attachment {
  stdout: PassThrough | undefined;
  stderr: PassThrough | undefined;
  detach(): void;
}

interface ContainerRuntime {
  name: string;
  argv: string[];
  env: Record<string, string>;
  mounts: VolumeMount[];
  /** The container's `stdin`, `stdinOnce` and `tty`: its process gets an open stdin, a terminal. */
  stdin: boolean;
  stdinOnce: boolean;
  tty: boolean;
  log: ContainerLog;
  attached: Set<Attachment>;
  /** The running process's stdin (when `stdin`) and its terminal's size control (when `tty`). */
  input?: Writable | undefined;
  sizeControl?: Writable | undefined;
  process?: ResultPromise;
  restartCount: number;
  ready: boolean;
  startedAt?: string;
  lastTermination?: { exitCode: number; finishedAt: string; reason: string };
  waitingReason?: string;
  backoffTimer?: NodeJS.Timeout;
  probeTimer?: NodeJS.Timeout;
  consecutive: { success: number; failure: number };
  liveFailures: number;
  livenessTimer?: NodeJS.Timeout;
}

interface PodRuntime {
  uid: string;
  key: string;
  podDir: string;
  spec: PodLaunchSpec;
  ip: string;
  hostNetwork: boolean;
  containers: ContainerRuntime[];
  /** `spec.initContainers`, run to completion in order before `containers` start. */
  initContainers: ContainerRuntime[];
  /** Every init container has succeeded (or there were none). */
  initialized: boolean;
  /** Token refreshes (default token and projected tokens). */
  timers: NodeJS.Timeout[];
  stopping: boolean;
  phase: "Running" | "Succeeded" | "Failed";
  /** exec sessions in the pod, ended with it (a host-network pod's are not in a netns of its own to sweep). */
  sessions: Set<ProcessSession>;
}

export class Kubelet implements PodStreams {
  readonly node: NodeNetwork;
  readonly #cfg: SandboxConfig;
  readonly #client: KubeClient;
  readonly #informers: SharedInformers;
  readonly #log: Logger;
  readonly #queue: WorkQueue;
  readonly #pods = new Map<string, PodRuntime>();
  readonly #caPem: string;
  readonly #events: EventRecorder;
  /** Port-forward dialers, one per network namespace forwarded into. */
  readonly #dialers = new Map<string, NetnsDialer>();
  #stopped = false;
  /** Set while the sandbox shuts down: pods then stop without Killing events (their API objects stay). */
  #shuttingDown = false;

  /** This node's netns directory (the agent's hostPath /var/run/netns), and whether it is mounted shared yet. */
  readonly #netnsDir: string;
  #netnsDirReady: Promise<void> | undefined;

  constructor(cfg: SandboxConfig, node: NodeNetwork, client: KubeClient, informers: SharedInformers, caPem: string, log: Logger) {
    this.#cfg = cfg;
    this.#netnsDir = path.join(nodeRootDir(cfg.stateDir, node.name), "var", "run", "netns");
    this.node = node;
    this.#client = client;
    this.#informers = informers;
    this.#caPem = caPem;
    this.#log = log.child({ component: "kubelet", node: node.name });
    this.#events = new EventRecorder(client, { component: "kubelet", host: node.name }, this.#log);
    this.#queue = new WorkQueue((key) => this.#sync(key), {
      onError: (key, err) => this.#log.warn({ pod: key, err: String(err) }, "pod sync failed, will retry"),
    });
    informers.on("pods", (_event, pod) => {
      if (pod.spec?.nodeName === node.name || this.#pods.has(keyOf(pod))) this.#queue.add(keyOf(pod));
    });
    // Hosts files follow Services, as cluster DNS would.
    informers.on("services", () => void this.#refreshHostsFiles());
  }

  async #sync(key: string): Promise<void> {
    if (this.#stopped) return;
    const { namespace, name } = splitKey(key);
    const pod = this.#informers.get("pods", name, namespace);
    const running = this.#pods.get(key);
    if (running && (!pod || pod.metadata.uid !== running.uid)) {
      await this.#teardown(running);
      if (pod) this.#queue.add(key);
      return;
    }
    if (!pod || pod.spec?.nodeName !== this.node.name) return;
    if (pod.metadata.deletionTimestamp) {
      if (running) await this.#teardown(running);
      await this.#finalizeDeletion(pod);
      return;
    }
    if (!running && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed") await this.#start(pod);
  }

  async #start(pod: KubeObject): Promise<void> {
    const key = keyOf(pod);
    const uid = pod.metadata.uid as string;
    const namespace = pod.metadata.namespace as string;
    const hostNetwork = pod.spec?.hostNetwork === true;
    const paths = sandboxPaths(this.#cfg.stateDir);
    const podDir = path.join(paths.pods, uid);
    const logDir = path.join(paths.logs, "pods", `${namespace}_${pod.metadata.name}_${uid}`);
    await fs.mkdir(podDir, { recursive: true, mode: 0o700 });
    // Bind-mounted into containers that may run as any user (runAsUser): traversable, as the kubelet's volume dirs are.
    await fs.mkdir(path.join(podDir, "serviceaccount"), { recursive: true, mode: 0o755 });
    await fs.mkdir(logDir, { recursive: true });
    const startedAt = new Date().toISOString();

    await this.#patchStatus(pod, {
      phase: "Pending",
      hostIP: this.node.ip,
      hostIPs: [{ ip: this.node.ip }],
      conditions: [condition("PodScheduled", true, startedAt)],
      containerStatuses: waitingStatuses(pod, { reason: "ContainerCreating" }),
    });

    const netns = hostNetwork ? this.node.netns : netnsNames.pod(uid);
    let ip = this.node.ip;
    if (!hostNetwork) {
      await createPodNetns(netns);
      const req = { node: this.node, podUid: uid, namespace, name: pod.metadata.name, netns };
      try {
        // In the node's netns directory before CNI ADD, as a runtime does: the agent finds it there after a restart.
        await (this.#netnsDirReady ??= prepareNodeNetnsDir(this.#netnsDir));
        await exposePodNetns(this.#netnsDir, netns);
        ip = (await addPodNetwork(this.#cfg, req)).ip;
      } catch (err) {
        await unexposePodNetns(this.#netnsDir, netns).catch(() => {});
        await deleteNetns(netns).catch(() => {});
        // As containerd reports a failed CNI ADD; the queue retries, and each retry counts on the same event.
        this.#events.event(
          pod,
          "Warning",
          "FailedCreatePodSandBox",
          `Failed to create pod sandbox: failed to set up network for sandbox "${uid}": ${(err as Error).message}`,
        );
        throw err;
      }
    }
    await this.#client.mergePatch(pathFor("v1", "pods", namespace, pod.metadata.name), {
      metadata: { annotations: { [NETNS_ANNOTATION]: netns } },
    });

    const withIp: KubeObject = { ...pod, status: { ...(pod.status ?? {}), podIP: ip, hostIP: this.node.ip } };
    const spec: PodLaunchSpec = {
      namespace,
      name: pod.metadata.name,
      uid,
      netns,
      hostname: hostNetwork ? this.node.name : pod.metadata.name.slice(0, 63),
      hostsFile: path.join(podDir, "hosts"),
      resolvFile: path.join(podDir, "resolv.conf"),
      serviceAccountDir: path.join(podDir, "serviceaccount"),
      env: {},
      logDir,
      mounts: [],
    };
    await fs.writeFile(spec.hostsFile, this.#hostsFor(namespace));
    await fs.writeFile(
      spec.resolvFile,
      `search ${namespace}.svc.${this.#cfg.clusterDomain} svc.${this.#cfg.clusterDomain} ${this.#cfg.clusterDomain}\nnameserver 127.0.0.1\noptions ndots:1 attempts:1 timeout:1\n`,
    );
    await fs.writeFile(path.join(spec.serviceAccountDir, "ca.crt"), this.#caPem);
    await fs.writeFile(path.join(spec.serviceAccountDir, "namespace"), namespace);

    const runtime: PodRuntime = {
      uid,
      key,
      podDir,
      spec,
      ip,
      hostNetwork,
      containers: [],
      initContainers: [],
      initialized: false,
      timers: [],
      stopping: false,
      phase: "Running",
      sessions: new Set(),
    };
    this.#pods.set(key, runtime);
    try {
      const configMap = (ns: string, n: string) => this.#getOptional(pathFor("v1", "configmaps", ns, n));
      const secret = (ns: string, n: string) => this.#getOptional(pathFor("v1", "secrets", ns, n));
      const token = (audience: string | undefined, expirationSeconds: number) => this.#requestToken(withIp, audience, expirationSeconds);
      const defaultToken = path.join(spec.serviceAccountDir, "token");
      await this.#keepFresh(runtime, {
        refresh: async () => {
          const issued = await token(undefined, TOKEN_EXPIRATION_SECONDS);
          await writeSecretFile(defaultToken, issued.token, (pod.spec?.securityContext as { fsGroup?: number } | undefined)?.fsGroup);
          return issued;
        },
      });
      const volumes = await materializeVolumes(withIp, podDir, { configMap, secret, token, nodeRoot: nodeRootDir(this.#cfg.stateDir, this.node.name) });
      for (const file of volumes.refreshing) await this.#keepFresh(runtime, file, file.lifetimeSeconds);
      const kubernetesService = this.#informers.get("services", "kubernetes", "default");
      const services = this.#informers.list("services", namespace);
      const sources = {
        services,
        ...(kubernetesService ? { kubernetesService } : {}),
        configMap,
        secret,
      };
      const build = async (c: KubeObject["spec"], into: ContainerRuntime[]) => {
        const env = { ...imageEnv(c), ...(await containerEnv(withIp, c, sources)) };
        if (into === runtime.containers) runtime.spec.env = { ...runtime.spec.env, ...env };
        const mounts = await containerMounts(
          c,
          volumes.dirs,
          (dir) =>
            void this.#recordMountPoint(dir).catch((err: unknown) =>
              this.#log.warn({ dir, err: String(err) }, "cannot record a mount point created for a pod; the last sandbox to go down will not remove it"),
            ),
        );
        if (runtime.containers.length === 0 && into === runtime.containers) spec.mounts = mounts;
        into.push({
          name: c.name,
          argv: asUser(containerArgv(c), c, pod),
          env,
          mounts,
          stdin: c.stdin === true,
          stdinOnce: c.stdinOnce === true,
          tty: c.tty === true,
          log: new ContainerLog(path.join(logDir, `${c.name}.log`)),
          attached: new Set(),
          restartCount: 0,
          ready: false,
          consecutive: { success: 0, failure: 0 },
          liveFailures: 0,
        });
      };
      for (const c of pod.spec?.initContainers ?? []) await build(c, runtime.initContainers);
      for (const c of pod.spec?.containers ?? []) await build(c, runtime.containers);
    } catch (err) {
      // A pod that cannot start reports why, like CreateContainerConfigError on a real node.
      this.#log.warn({ pod: key, err: String(err) }, "pod cannot start");
      for (const c of pod.spec?.containers ?? []) {
        this.#events.event(pod, "Warning", "Failed", `Error: ${String(err instanceof Error ? err.message : err)}`, containerFieldPath(c.name));
      }
      await this.#patchStatus(pod, {
        phase: "Pending",
        podIP: ip,
        podIPs: [{ ip }],
        containerStatuses: waitingStatuses(pod, { reason: "CreateContainerConfigError", message: String(err instanceof Error ? err.message : err) }),
      });
      await this.#teardown(runtime);
      throw err;
    }
    await writeLaunchSpec(podDir, spec);
    if (runtime.initContainers.length > 0) {
      // Init containers run one after another, each to success, before any container starts (in the background, so
      // one that keeps failing holds only its own pod).
      await this.#reportStatus(runtime);
      void this.#runInitContainers(runtime, pod).then((done) => {
        if (!done) return;
        runtime.initialized = true;
        for (const c of runtime.containers) this.#startContainer(runtime, c, pod);
        void this.#reportStatus(runtime).catch(() => {});
      });
      this.#log.info({ pod: key, ip, netns }, "pod initializing");
      return;
    }
    runtime.initialized = true;
    for (const c of runtime.containers) this.#startContainer(runtime, c, pod);
    await this.#reportStatus(runtime);
    this.#log.info({ pod: key, ip, netns }, "pod started");
  }

  /** Runs each init container to completion in order; a failure is retried with back-off (restartPolicy Never: the pod fails). False if the pod stopped first. */
  async #runInitContainers(runtime: PodRuntime, pod: KubeObject): Promise<boolean> {
    for (const c of runtime.initContainers) {
      for (;;) {
        if (runtime.stopping || this.#stopped) return false;
        const event = (type: EventType, reason: string, message: string) => this.#events.event(pod, type, reason, message, containerFieldPath(c.name));
        event("Normal", "Started", `Started container ${c.name}`);
        const run = c.log.startRun();
        const [program, ...args] = podCommand(runtime.spec, c.argv, c.mounts);
        const child = execa(program!, args, { env: c.env, extendEnv: false, detached: true, reject: false, stdio: ["ignore", "pipe", "pipe"], buffer: false });
        c.process = child;
        c.startedAt = new Date().toISOString();
        c.waitingReason = undefined;
        void this.#reportStatus(runtime).catch(() => {});
        const outputs = [this.#tapOutput(c, run, child.stdout, "stdout"), this.#tapOutput(c, run, child.stderr, "stderr")];
        const result = await child;
        await Promise.all(outputs);
        await run.finish();
        c.process = undefined;
        const exitCode = result.exitCode ?? (result.signal ? 128 : 1);
        c.lastTermination = { exitCode, finishedAt: new Date().toISOString(), reason: exitCode === 0 ? "Completed" : "Error" };
        if (exitCode === 0) break;
        this.#log.info({ pod: runtime.key, initContainer: c.name, exitCode }, "init container failed");
        if ((pod.spec?.restartPolicy ?? "Always") === "Never") {
          runtime.phase = "Failed";
          void this.#reportStatus(runtime).catch(() => {});
          return false;
        }
        c.restartCount++;
        c.waitingReason = "Init:CrashLoopBackOff";
        event(
          "Warning",
          "BackOff",
          `Back-off restarting failed container ${c.name} in pod ${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`,
        );
        void this.#reportStatus(runtime).catch(() => {});
        await new Promise((resolve) => {
          c.backoffTimer = setTimeout(resolve, Math.min(1000 * 2 ** Math.min(c.restartCount - 1, 5), 30_000));
        });
        c.backoffTimer = undefined;
      }
    }
    return true;
  }

  #startContainer(runtime: PodRuntime, c: ContainerRuntime, pod: KubeObject): void {
    if (runtime.stopping || this.#stopped) return;
    const containerSpec = (pod.spec?.containers ?? []).find((s: { name: string }) => s.name === c.name) ?? {};
    const event = (type: EventType, reason: string, message: string) => this.#events.event(pod, type, reason, message, containerFieldPath(c.name));
    event("Normal", "Pulled", `Container image "${containerSpec.image ?? ""}" already present on machine`);
    event("Normal", "Created", `Created container: ${c.name}`);
    const inPod = podCommand(runtime.spec, c.argv, c.mounts);
    // A `tty: true` container runs on a terminal of its own (its stderr is then the terminal too).
    const [program, ...args] = c.tty ? ptyArgv(inPod, 0) : inPod;
    const run = c.log.startRun();
    const options: Options = {
      env: c.tty ? { TERM: "xterm", ...c.env } : c.env,
      extendEnv: false,
      detached: true,
      reject: false,
      stdio: [c.stdin ? "pipe" : "ignore", "pipe", "pipe", c.tty ? "pipe" : "ignore"],
      buffer: false,
    };
    const child = execa(program!, args, options);
    c.input = child.stdin ?? undefined;
    c.input?.on("error", () => {});
    c.sizeControl = c.tty ? ((child.stdio[3] as Writable | null) ?? undefined) : undefined;
    c.sizeControl?.on("error", () => {});
    const outputs = [this.#tapOutput(c, run, child.stdout, "stdout"), this.#tapOutput(c, run, child.stderr, "stderr")];
    c.process = child;
    c.startedAt = new Date().toISOString();
    c.waitingReason = undefined;
    c.ready = false;
    c.consecutive = { success: 0, failure: 0 };
    event("Normal", "Started", `Started container ${c.name}`);
    this.#scheduleProbes(runtime, c, containerSpec, pod);
    void child.then(async (result) => {
      await Promise.all(outputs);
      for (const a of [...c.attached]) a.detach();
      await run.finish();
      clearTimeout(c.probeTimer);
      clearTimeout(c.livenessTimer);
      c.process = undefined;
      c.ready = false;
      const exitCode = result.exitCode ?? (result.signal ? 128 : 1);
      c.lastTermination = { exitCode, finishedAt: new Date().toISOString(), reason: exitCode === 0 ? "Completed" : "Error" };
      if (runtime.stopping || this.#stopped) return;
      this.#log.info({ pod: runtime.key, container: c.name, exitCode, signal: result.signal }, "container exited");
      const policy = pod.spec?.restartPolicy ?? "Always";
      if (policy === "Always" || (policy === "OnFailure" && exitCode !== 0)) {
        c.restartCount++;
        c.waitingReason = "CrashLoopBackOff";
        const delay = Math.min(1000 * 2 ** Math.min(c.restartCount - 1, 5), 30_000);
        event(
          "Warning",
          "BackOff",
          `Back-off restarting failed container ${c.name} in pod ${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`,
        );
        c.backoffTimer = setTimeout(() => this.#startContainer(runtime, c, pod), delay);
      } else if (runtime.containers.every((x) => !x.process && !x.backoffTimer)) {
        runtime.phase = runtime.containers.every((x) => x.lastTermination?.exitCode === 0) ? "Succeeded" : "Failed";
      }
      void this.#reportStatus(runtime).catch(() => {});
    });
  }

  /** Copies a container's output to its log and to the clients attached to it, at the pace the log file takes it. */
  #tapOutput(c: ContainerRuntime, run: LogRun, source: Readable | null | undefined, which: "stdout" | "stderr"): Promise<void> {
    if (!source) return Promise.resolve();
    source.on("data", (chunk: Buffer) => {
      for (const a of c.attached) (which === "stdout" ? a.stdout : (a.stderr ?? a.stdout))?.write(chunk);
      if (!run.write(chunk)) {
        source.pause();
        run.onceDrained(() => source.resume());
      }
    });
    return finished(source).catch(() => {});
  }

  // ---- streaming: what the API server asks of this node for pods/log, exec, attach and portforward --------------

  #runtimeOf(pod: PodRef): PodRuntime {
    const runtime = this.#pods.get(`${pod.namespace}/${pod.name}`);
    if (!runtime || runtime.uid !== pod.uid || runtime.stopping) throw new ApiError(404, "NotFound", `pod not found ("${pod.name}_${pod.namespace}")`);
    return runtime;
  }

  /** A running container of the pod, or the kubelet's error for one that is not (yet, or any more). */
  #runningContainer(pod: PodRef, name: string): { runtime: PodRuntime; c: ContainerRuntime } {
    const runtime = this.#pods.get(`${pod.namespace}/${pod.name}`);
    const c = runtime?.uid === pod.uid && !runtime.stopping ? runtime.containers.find((x) => x.name === name) : undefined;
    if (!runtime || !c?.process) throw new ApiError(400, "BadRequest", `container not found ("${name}")`);
    return { runtime, c };
  }

  async logs(pod: PodRef, opts: LogOptions): Promise<Readable> {
    const runtime = this.#pods.get(`${pod.namespace}/${pod.name}`);
    const c = runtime?.uid === pod.uid ? [...runtime.containers, ...runtime.initContainers].find((x) => x.name === opts.container) : undefined;
    if (!c) {
      // Not started (or its pod could not start): the reason its status gives, as the kubelet says it.
      const status = (this.#informers.get("pods", pod.name, pod.namespace)?.status?.containerStatuses ?? []) as Array<{
        name: string;
        state?: { waiting?: { reason?: string } };
      }>;
      const reason = status.find((s) => s.name === opts.container)?.state?.waiting?.reason ?? "ContainerCreating";
      throw new ApiError(400, "BadRequest", `container "${opts.container}" in pod "${pod.name}" is waiting to start: ${reason}`);
    }
    const latest = c.log.latest;
    if (opts.previous) {
      // As the kubelet: the last terminated instance, the latest one while it waits to be restarted.
      const run = !c.process && c.waitingReason === "CrashLoopBackOff" ? latest : c.log.previous;
      if (!run) throw new ApiError(400, "BadRequest", `previous terminated container "${opts.container}" in pod "${pod.name}" not found`);
      return readRun(run, opts);
    }
    if (!latest)
      throw new ApiError(
        400,
        "BadRequest",
        `container "${opts.container}" in pod "${pod.name}" is waiting to start: ${c.waitingReason ?? "ContainerCreating"}`,
      );
    return readRun(latest, opts);
  }

  async exec(pod: PodRef, opts: ProcessOptions): Promise<ProcessSession> {
    const { runtime, c } = this.#runningContainer(pod, opts.container);
    // In the container's namespaces, with its own mounts and environment, as the exec readiness probe runs.
    const argv = podCommand(runtime.spec, opts.command, c.mounts);
    const session = startExec(argv, opts.tty ? { TERM: "xterm", ...c.env } : c.env, opts);
    runtime.sessions.add(session);
    void session.done.then(() => runtime.sessions.delete(session));
    this.#log.info({ pod: runtime.key, container: c.name, command: opts.command, tty: opts.tty }, "exec");
    return session;
  }

  async attach(pod: PodRef, opts: ProcessOptions): Promise<ProcessSession> {
    const { runtime, c } = this.#runningContainer(pod, opts.container);
    this.#log.info({ pod: runtime.key, container: c.name, stdin: opts.stdin, tty: opts.tty }, "attach");
    let resolveDone: (r: ProcessResult) => void = () => {};
    const done = new Promise<ProcessResult>((resolve) => (resolveDone = resolve));
    const input = c.input;
    const attachment: Attachment = {
      stdout: opts.stdout || opts.tty ? new PassThrough() : undefined,
      stderr: opts.stderr && !opts.tty ? new PassThrough() : undefined,
      detach: () => {
        if (!c.attached.delete(attachment)) return;
        attachment.stdout?.end();
        attachment.stderr?.end();
        // stdinOnce: the container's stdin closes when its first attached client goes away.
        if (c.stdinOnce && opts.stdin) input?.end();
        resolveDone({ exitCode: 0 });
      },
    };
    c.attached.add(attachment);
    const stdin =
      opts.stdin && input
        ? new Writable({
            write: (chunk: Buffer, _enc, cb) => {
              if (input.writableEnded || input.destroyed) return cb();
              if (input.write(chunk)) cb();
              else input.once("drain", () => cb());
            },
            // The client's end of input is the container's only with stdinOnce; others stay open for the next client.
            final: (cb) => {
              if (c.stdinOnce) input.end();
              cb();
            },
          })
        : undefined;
    return {
      stdin,
      stdout: attachment.stdout,
      stderr: attachment.stderr,
      resize: (size) => writeSize(c.sizeControl, size),
      done,
      close: () => attachment.detach(),
    };
  }

  async portForward(pod: PodRef, port: number): Promise<Socket> {
    const runtime = this.#runtimeOf(pod);
    // A host-network pod's localhost is the node's: its netns is the node's own.
    const netns = runtime.spec.netns;
    let dialer = this.#dialers.get(netns);
    if (!dialer) this.#dialers.set(netns, (dialer = new NetnsDialer(netns)));
    return dialer.dial(port);
  }

  #scheduleProbes(
    runtime: PodRuntime,
    c: ContainerRuntime,
    containerSpec: { ports?: Array<{ name?: string; containerPort: number }>; readinessProbe?: Probe; livenessProbe?: Probe },
    pod: KubeObject,
  ): void {
    const unhealthy = (kind: "Readiness" | "Liveness", message: string) =>
      this.#events.event(pod, "Warning", "Unhealthy", `${kind} probe failed: ${message}`, containerFieldPath(c.name));
    const namedPorts = Object.fromEntries((containerSpec.ports ?? []).filter((p) => p.name).map((p) => [p.name as string, p.containerPort]));
    const target = {
      nodeNetns: this.node.netns,
      podIP: runtime.ip,
      namedPorts,
      // In this container: its own volume mounts and environment, not the pod's first container's.
      execInPod: async (command: string[], timeoutMs: number) => {
        const [program, ...args] = podCommand(runtime.spec, command, c.mounts);
        const r = await execa(program!, args, { env: c.env, extendEnv: false, reject: false, timeout: timeoutMs });
        return { exitCode: r.exitCode ?? 1, output: `${String(r.stdout)}${String(r.stderr)}`, timedOut: r.timedOut };
      },
    };
    const readiness = containerSpec.readinessProbe;
    if (!readiness) {
      c.ready = true;
    } else {
      const tick = async () => {
        if (!c.process || runtime.stopping) return;
        const result = await probe(readiness, target);
        const ok = result.success;
        if (!ok && c.process !== undefined && !runtime.stopping) unhealthy("Readiness", result.message);
        if (ok) {
          c.consecutive = { success: c.consecutive.success + 1, failure: 0 };
        } else {
          c.consecutive = { success: 0, failure: c.consecutive.failure + 1 };
        }
        const wasReady = c.ready;
        if (!c.ready && c.consecutive.success >= (readiness.successThreshold ?? 1)) c.ready = true;
        if (c.ready && c.consecutive.failure >= (readiness.failureThreshold ?? 3)) c.ready = false;
        if (wasReady !== c.ready) await this.#reportStatus(runtime).catch(() => {});
        if (c.process !== undefined && !runtime.stopping) c.probeTimer = setTimeout(() => void tick(), (readiness.periodSeconds ?? 10) * 1000);
      };
      c.probeTimer = setTimeout(() => void tick(), Math.max(200, (readiness.initialDelaySeconds ?? 0) * 1000));
    }
    const liveness = containerSpec.livenessProbe;
    if (liveness) {
      const tick = async () => {
        if (!c.process || runtime.stopping) return;
        const result = await probe(liveness, target);
        if (!result.success && c.process !== undefined && !runtime.stopping) unhealthy("Liveness", result.message);
        c.liveFailures = result.success ? 0 : c.liveFailures + 1;
        if (c.liveFailures >= (liveness.failureThreshold ?? 3)) {
          this.#log.info({ pod: runtime.key, container: c.name }, "liveness probe failed, restarting container");
          this.#events.event(pod, "Normal", "Killing", `Container ${c.name} failed liveness probe, will be restarted`, containerFieldPath(c.name));
          c.liveFailures = 0;
          killGroup(c.process, "SIGKILL");
          return;
        }
        c.livenessTimer = setTimeout(() => void tick(), (liveness.periodSeconds ?? 10) * 1000);
      };
      c.livenessTimer = setTimeout(() => void tick(), (liveness.initialDelaySeconds ?? 0) * 1000 + 1000);
    }
  }

  async #reportStatus(runtime: PodRuntime): Promise<void> {
    const { namespace, name } = splitKey(runtime.key);
    const pod = this.#informers.get("pods", name, namespace);
    if (!pod || pod.metadata.uid !== runtime.uid) return;
    const now = new Date().toISOString();
    const allReady = runtime.containers.length > 0 && runtime.containers.every((c) => c.ready && c.process !== undefined);
    const prev: Array<{ type: string; status: string; lastTransitionTime?: string }> = pod.status?.conditions ?? [];
    const cond = (type: string, value: boolean) => {
      const old = prev.find((c) => c.type === type);
      const status = value ? "True" : "False";
      return { type, status, lastProbeTime: null, lastTransitionTime: old?.status === status ? old.lastTransitionTime : now };
    };
    await this.#patchStatus(pod, {
      phase: runtime.phase,
      podIP: runtime.ip,
      podIPs: [{ ip: runtime.ip }],
      hostIP: this.node.ip,
      hostIPs: [{ ip: this.node.ip }],
      startTime: pod.status?.startTime ?? now,
      conditions: [
        cond("PodReadyToStartContainers", true),
        cond("Initialized", runtime.initialized),
        cond("Ready", allReady),
        cond("ContainersReady", allReady),
        cond("PodScheduled", true),
      ],
      ...(runtime.initContainers.length > 0
        ? {
            initContainerStatuses: runtime.initContainers.map((c) => ({
              name: c.name,
              image: (pod.spec?.initContainers ?? []).find((s: { name: string }) => s.name === c.name)?.image ?? "",
              imageID: "",
              ready: c.lastTermination?.exitCode === 0,
              restartCount: c.restartCount,
              state: c.process
                ? { running: { startedAt: c.startedAt } }
                : c.lastTermination && !c.waitingReason
                  ? { terminated: { exitCode: c.lastTermination.exitCode, reason: c.lastTermination.reason, finishedAt: c.lastTermination.finishedAt } }
                  : { waiting: { reason: c.waitingReason ?? "PodInitializing" } },
            })),
          }
        : {}),
      containerStatuses: runtime.containers.map((c) => ({
        name: c.name,
        image: (pod.spec?.containers ?? []).find((s: { name: string }) => s.name === c.name)?.image ?? "",
        imageID: "",
        containerID: c.process?.pid ? `sandbox://${c.process.pid}` : undefined,
        ready: c.ready && !!c.process,
        started: !!c.process,
        restartCount: c.restartCount,
        state: c.process
          ? { running: { startedAt: c.startedAt } }
          : c.waitingReason
            ? { waiting: { reason: c.waitingReason } }
            : {
                terminated: {
                  exitCode: c.lastTermination?.exitCode ?? 0,
                  reason: c.lastTermination?.reason ?? "Completed",
                  finishedAt: c.lastTermination?.finishedAt,
                },
              },
        ...(c.lastTermination && c.process ? { lastState: { terminated: c.lastTermination } } : {}),
      })),
    });
  }

  async #patchStatus(pod: KubeObject, status: Record<string, unknown>): Promise<void> {
    try {
      await this.#client.mergePatch(pathFor("v1", "pods", pod.metadata.namespace, pod.metadata.name, "status"), { status });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** A TokenRequest for the pod's service account, bound to the pod (default audience when none given). */
  async #requestToken(pod: KubeObject, audience: string | undefined, expirationSeconds: number): Promise<{ token: string; lifetimeSeconds: number }> {
    const sa = pod.spec?.serviceAccountName ?? "default";
    const res = await this.#client.create(pathFor("v1", "serviceaccounts", pod.metadata.namespace, sa, "token"), {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: {
        ...(audience ? { audiences: [audience] } : {}),
        expirationSeconds,
        boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.metadata.name, uid: pod.metadata.uid },
      },
    });
    const status = res.status as { token: string; expirationTimestamp: string };
    return { token: status.token, lifetimeSeconds: Math.max(1, (Date.parse(status.expirationTimestamp) - Date.now()) / 1000) };
  }

  /**
   * Writes a token file now (unless `written` gives the lifetime of what it already holds) and again at 80% of the lifetime each token was issued with, as the kubelet does, while
   * the pod runs. A failed refresh is tried again after a tenth of the last lifetime.
   */
  async #keepFresh(runtime: PodRuntime, file: { refresh(): Promise<{ lifetimeSeconds: number }> }, written?: number): Promise<void> {
    let lifetime = written ?? (await file.refresh()).lifetimeSeconds;
    const schedule = (afterMs: number) => {
      if (runtime.stopping) return;
      const timer = setTimeout(() => {
        runtime.timers.splice(runtime.timers.indexOf(timer), 1);
        file.refresh().then(
          (issued) => schedule((lifetime = issued.lifetimeSeconds) * 800),
          (err: unknown) => {
            this.#log.warn({ pod: runtime.key, err: String(err) }, "token refresh failed");
            schedule(lifetime * 100);
          },
        );
      }, afterMs);
      timer.unref();
      runtime.timers.push(timer);
    };
    schedule(lifetime * 800);
  }

  /** Mount points the kubelet had to create on the host (under /run); `ambit dev down` removes them. */
  async #recordMountPoint(dir: string): Promise<void> {
    await recordSharedMountPoint(dir);
  }

  #hostsFor(namespace: string): string {
    return renderHostsFile(this.#informers.list("services") as never, namespace, this.#cfg.clusterDomain);
  }

  async #refreshHostsFiles(): Promise<void> {
    for (const runtime of this.#pods.values()) {
      const content = this.#hostsFor(runtime.spec.namespace);
      const current = await fs.readFile(runtime.spec.hostsFile, "utf8").catch(() => "");
      // Rewrite in place (same inode): the file is bind-mounted into the pod's processes.
      if (current !== content) await fs.writeFile(runtime.spec.hostsFile, content).catch(() => {});
    }
  }

  async #getOptional(p: string): Promise<KubeObject | undefined> {
    try {
      return await this.#client.get(p);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Stops the pod's processes (SIGTERM, then SIGKILL after the grace period), releases its network and files. */
  async #teardown(runtime: PodRuntime, graceMs = 10_000): Promise<void> {
    runtime.stopping = true;
    if (!this.#shuttingDown) {
      const { namespace, name } = splitKey(runtime.key);
      const pod = { apiVersion: "v1", kind: "Pod", metadata: { name, namespace, uid: runtime.uid } };
      for (const c of runtime.containers) {
        if (c.process) this.#events.event(pod, "Normal", "Killing", `Stopping container ${c.name}`, containerFieldPath(c.name));
      }
    }
    for (const t of runtime.timers) clearInterval(t);
    for (const s of runtime.sessions) s.close();
    if (!runtime.hostNetwork) {
      this.#dialers.get(runtime.spec.netns)?.close();
      this.#dialers.delete(runtime.spec.netns);
    }
    const exits: Array<Promise<unknown>> = [];
    for (const c of [...runtime.initContainers, ...runtime.containers]) {
      clearTimeout(c.backoffTimer);
      clearTimeout(c.probeTimer);
      clearTimeout(c.livenessTimer);
      if (c.process) {
        exits.push(c.process.catch(() => {}));
        killGroup(c.process, "SIGTERM");
      }
    }
    const deadline = setTimeout(() => {
      for (const c of [...runtime.initContainers, ...runtime.containers]) if (c.process) killGroup(c.process, "SIGKILL");
    }, graceMs);
    await Promise.all(exits);
    clearTimeout(deadline);
    if (!runtime.hostNetwork) {
      // Anything else left in the pod's netns (e.g. an `ambit dev exec` session) goes with the pod.
      for (const pid of await pidsInNetns(runtime.spec.netns).catch(() => [])) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      const { namespace, name } = splitKey(runtime.key);
      await removePodNetwork(this.#cfg, { node: this.node, podUid: runtime.uid, namespace: namespace ?? "", name, netns: runtime.spec.netns }).catch(
        (err: unknown) => this.#log.warn({ pod: runtime.key, err: String(err) }, "CNI DEL failed"),
      );
      await unexposePodNetns(this.#netnsDir, runtime.spec.netns);
      await deleteNetns(runtime.spec.netns);
    }
    await fs.rm(runtime.podDir, { recursive: true, force: true });
    this.#pods.delete(runtime.key);
    this.#log.info({ pod: runtime.key }, "pod stopped");
  }

  async #finalizeDeletion(pod: KubeObject): Promise<void> {
    try {
      await this.#client.delete(pathFor("v1", "pods", pod.metadata.namespace, pod.metadata.name), { gracePeriodSeconds: 0 });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Pods currently run by this kubelet (for status output and tests). */
  get podCount(): number {
    return this.#pods.size;
  }

  /** Stops every pod quickly; API objects are left alone (the sandbox is going away). */
  async stop(graceMs = 2000): Promise<void> {
    this.#shuttingDown = true;
    this.#queue.stop();
    await Promise.all([...this.#pods.values()].map((r) => this.#teardown(r, graceMs).catch(() => {})));
    for (const d of this.#dialers.values()) d.close();
    this.#dialers.clear();
    this.#stopped = true;
  }
}

/** Write-then-rename with mode 0600: readers never see half a token. */
/**
 * The service-account token as the kubelet writes its projected volume (kube-api-access, defaultMode 0644): readable
 * by a container of any user, or, with the pod's fsGroup, by that group only (0640).
 */
async function writeSecretFile(file: string, content: string, fsGroup: number | undefined): Promise<void> {
  await fs.writeFile(`${file}.tmp`, content, { mode: fsGroup === undefined ? 0o644 : 0o640 });
  if (fsGroup !== undefined) await fs.chown(`${file}.tmp`, 0, fsGroup);
  await fs.rename(`${file}.tmp`, file);
}

function condition(type: string, value: boolean, at: string) {
  return { type, status: value ? "True" : "False", lastProbeTime: null, lastTransitionTime: at };
}

/** Signals the container's process group: the container process was started as a group leader (detached). */
function killGroup(child: ResultPromise, signal: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  }
}

/** Every container of the pod not started yet, waiting for `waiting.reason`. */
function waitingStatuses(pod: KubeObject, waiting: { reason: string; message?: string }) {
  return (pod.spec?.containers ?? []).map((c: { name: string; image?: string }) => ({
    name: c.name,
    image: c.image ?? "",
    imageID: "",
    ready: false,
    started: false,
    restartCount: 0,
    state: { waiting },
  }));
}

/**
 * `runAsUser`/`runAsGroup` (the container's, else the pod's) and the pod's `fsGroup` as a supplementary group, as a
 * runtime applies them: the pod's mounts are made as root, then `setpriv` drops to the user before the program runs.
 */
function asUser(argv: string[], container: { securityContext?: { runAsUser?: number; runAsGroup?: number } }, pod: KubeObject): string[] {
  const podContext = (pod.spec?.securityContext ?? {}) as { runAsUser?: number; runAsGroup?: number; fsGroup?: number };
  const user = container.securityContext?.runAsUser ?? podContext.runAsUser;
  if (user === undefined || user === 0) return argv;
  const group = container.securityContext?.runAsGroup ?? podContext.runAsGroup ?? user;
  const groups = podContext.fsGroup !== undefined ? [`--groups=${podContext.fsGroup}`] : ["--clear-groups"];
  return ["setpriv", `--reuid=${user}`, `--regid=${group}`, ...groups, "--", ...argv];
}
