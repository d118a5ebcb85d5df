// Builds the command line that runs a process inside a pod: its netns, its /etc/hosts, token and hostname.
import fs from "node:fs/promises";
import path from "node:path";
import type { VolumeMount } from "./volumes.ts";

/** Annotation telling tools (ambit dev status/exec) which netns holds the pod. */
export const NETNS_ANNOTATION = "sandbox.ambit.dev/netns";

/** Where Kubernetes mounts the service-account token; bind-mounted per pod in a private mount namespace. */
export const SERVICE_ACCOUNT_MOUNT = "/run/secrets/kubernetes.io/serviceaccount";

/** Everything needed to run a process as part of a pod; written to the pod directory for `ambit dev exec`. */
export interface PodLaunchSpec {
  namespace: string;
  name: string;
  uid: string;
  netns: string;
  hostname: string;
  hostsFile: string;
  resolvFile: string;
  serviceAccountDir: string;
  env: Record<string, string>;
  logDir: string;
  /** Volume mounts of the pod's first container: what `ambit dev exec` sees. */
  mounts: VolumeMount[];
}

// $0 is a label; $1..$4 are files and the hostname; then (source, target, rw|ro) triples up to "--"; then the
// command, exec'd so its PID is ours to signal. Runs in its own mount namespace as a slave of the host's
// (Kubernetes' HostToContainer): the pod's bind mounts never leak to the host, while mounts the host makes
// later (a new pod's netns under /run/netns) do reach the pod, as the node agent needs. Volumes are bound
// recursively, as the kubelet does, so mounts already under a hostPath (the node's netns files) come along.
const POD_SHELL = [
  "set -e",
  'mount --bind "$1" /etc/hosts',
  'mount --bind "$2" /etc/resolv.conf',
  `mount --bind "$3" ${SERVICE_ACCOUNT_MOUNT}`,
  'hostname "$4"',
  "shift 4",
  'while [ "$1" != "--" ]; do mount --rbind "$1" "$2"; if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi; shift 3; done',
  "shift",
  'exec "$@"',
].join("; ");

/** argv (program first) that runs `command` inside the pod described by `spec`, with `mounts` bound. */
export function podCommand(spec: PodLaunchSpec, command: string[], mounts: VolumeMount[] = spec.mounts ?? []): string[] {
  return [
    "nsenter",
    `--net=/run/netns/${spec.netns}`,
    "--",
    "unshare",
    "--mount",
    "--uts",
    "--propagation",
    "slave",
    "--",
    "/bin/sh",
    "-c",
    POD_SHELL,
    "ambit-pod",
    spec.hostsFile,
    spec.resolvFile,
    spec.serviceAccountDir,
    spec.hostname,
    ...mounts.flatMap((m) => [m.source, m.target, m.readOnly ? "ro" : "rw"]),
    "--",
    ...command,
  ];
}

export const launchSpecPath = (podDir: string): string => path.join(podDir, "launch.json");

export async function writeLaunchSpec(podDir: string, spec: PodLaunchSpec): Promise<void> {
  await fs.writeFile(launchSpecPath(podDir), JSON.stringify(spec, null, 2) + "\n", { mode: 0o600 });
}

export async function readLaunchSpec(podDir: string): Promise<PodLaunchSpec> {
  return JSON.parse(await fs.readFile(launchSpecPath(podDir), "utf8")) as PodLaunchSpec;
}
