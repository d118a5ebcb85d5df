// Pod volumes for the sandbox kubelet: emptyDir, configMap, secret, downwardAPI, projected (incl. tokens), hostPath.
import fs from "node:fs/promises";
import path from "node:path";
import type { KubeObject } from "../../kube/client.ts";
import { fieldRef } from "./env.ts";
import { AmbitError } from "../../contract/errors.ts";
import { SANDBOX_ERRORS } from "../../contract/error-codes.ts";

export interface VolumeMount {
  source: string;
  target: string;
  readOnly: boolean;
}

export class VolumeError extends AmbitError<typeof SANDBOX_ERRORS.code.volume> {
  constructor(message: string) {
    super(SANDBOX_ERRORS.code.volume, message);
    this.name = "VolumeError";
  }
}

export interface VolumeSources {
  configMap(namespace: string, name: string): Promise<KubeObject | undefined>;
  secret(namespace: string, name: string): Promise<KubeObject | undefined>;
  /** A TokenRequest for the pod's service account, bound to the pod. */
  /** A TokenRequest bound to the pod: the token and the lifetime it was issued with (the API server may cap it). */
  token(audience: string | undefined, expirationSeconds: number): Promise<{ token: string; lifetimeSeconds: number }>;
  /** The node's own filesystem root: hostPath volumes resolve under it. */
  nodeRoot: string;
}

interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

/** A file the kubelet keeps current (projected tokens); `refresh` rewrites it and says how long the new content lives. */
export interface RefreshingFile {
  /** Lifetime of what the file holds now (written by materializeVolumes). */
  lifetimeSeconds: number;
  refresh(): Promise<{ lifetimeSeconds: number }>;
}

/** Write-then-rename, so a process reading the file never sees half of it. */
async function writeAtomic(file: string, content: string | Buffer, mode: number, group?: number): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(`${file}.tmp`, content, { mode });
  if (group !== undefined) await fs.chown(`${file}.tmp`, 0, group);
  await fs.rename(`${file}.tmp`, file);
}

function safeRelative(dir: string, rel: string): string {
  const target = path.resolve(dir, rel);
  if (!target.startsWith(dir + path.sep)) throw new VolumeError(`volume item path "${rel}" must stay inside the volume`);
  return target;
}

async function writeKeys(dir: string, data: Record<string, string | Buffer>, items: KeyToPath[] | undefined, mode: number, what: string): Promise<void> {
  const wanted: KeyToPath[] = items ?? Object.keys(data).map((key) => ({ key, path: key }));
  for (const item of wanted) {
    const value = data[item.key];
    if (value === undefined) throw new VolumeError(`${what} has no key "${item.key}"`);
    await writeAtomic(safeRelative(dir, item.path), value, item.mode ?? mode);
  }
}

const secretData = (obj: KubeObject): Record<string, Buffer> =>
  Object.fromEntries(Object.entries((obj.data as Record<string, string> | undefined) ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]));

/**
 * Writes each volume's content under `<podDir>/volumes/<name>` (hostPath volumes point into the node's root)
 * and returns the directory of each volume plus the files that need refreshing (projected tokens).
 */
export async function materializeVolumes(
  pod: KubeObject,
  podDir: string,
  sources: VolumeSources,
): Promise<{ dirs: Map<string, string>; refreshing: RefreshingFile[] }> {
  const namespace = pod.metadata.namespace ?? "default";
  const dirs = new Map<string, string>();
  const refreshing: RefreshingFile[] = [];
  for (const volume of (pod.spec?.volumes ?? []) as Array<Record<string, unknown> & { name: string }>) {
    if (volume.hostPath) {
      const requested = (volume.hostPath as { path: string; type?: string }).path;
      if (!path.isAbsolute(requested)) throw new VolumeError(`volume "${volume.name}": hostPath.path must be absolute, got "${requested}"`);
      // Each sandbox node has its own root, so two nodes' agents do not share /var/run/ambit.
      const hostPath = path.join(sources.nodeRoot, path.normalize(requested));
      if ((volume.hostPath as { type?: string }).type === "DirectoryOrCreate") await fs.mkdir(hostPath, { recursive: true, mode: 0o755 });
      dirs.set(volume.name, hostPath);
      continue;
    }
    const dir = path.join(podDir, "volumes", volume.name);
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    dirs.set(volume.name, dir);
    if (volume.emptyDir) continue;
    if (volume.configMap) {
      const ref = volume.configMap as { name: string; items?: KeyToPath[]; optional?: boolean; defaultMode?: number };
      const cm = await sources.configMap(namespace, ref.name);
      if (!cm) {
        if (ref.optional) continue;
        throw new VolumeError(`configmap "${namespace}/${ref.name}" for volume "${volume.name}" not found`);
      }
      await writeKeys(dir, (cm.data as Record<string, string>) ?? {}, ref.items, ref.defaultMode ?? 0o644, `configmap ${namespace}/${ref.name}`);
      continue;
    }
    if (volume.secret) {
      const ref = volume.secret as { secretName: string; items?: KeyToPath[]; optional?: boolean; defaultMode?: number };
      const secret = await sources.secret(namespace, ref.secretName);
      if (!secret) {
        if (ref.optional) continue;
        throw new VolumeError(`secret "${namespace}/${ref.secretName}" for volume "${volume.name}" not found`);
      }
      await writeKeys(dir, secretData(secret), ref.items, ref.defaultMode ?? 0o600, `secret ${namespace}/${ref.secretName}`);
      continue;
    }
    if (volume.downwardAPI) {
      for (const item of (volume.downwardAPI as { items?: Array<{ path: string; fieldRef?: { fieldPath: string } }> }).items ?? []) {
        if (item.fieldRef) await writeAtomic(safeRelative(dir, item.path), fieldRef(pod, item.fieldRef.fieldPath), 0o644);
      }
      continue;
    }
    if (volume.projected) {
      const projected = volume.projected as { sources?: Array<Record<string, unknown>>; defaultMode?: number };
      for (const source of projected.sources ?? []) {
        if (source.serviceAccountToken) {
          const t = source.serviceAccountToken as { audience?: string; expirationSeconds?: number; path: string };
          const file = safeRelative(dir, t.path);
          const expiration = Math.max(600, t.expirationSeconds ?? 3600);
          // As the kubelet writes it: the volume's defaultMode (0644), or with the pod's fsGroup 0600 made group-readable
          // by that group (0640), which is how a sidecar running as another user than the app reads its token.
          const fsGroup = (pod.spec?.securityContext as { fsGroup?: number } | undefined)?.fsGroup;
          const refresh = async () => {
            const issued = await sources.token(t.audience, expiration);
            await writeAtomic(file, issued.token, fsGroup === undefined ? (projected.defaultMode ?? 0o644) : 0o640, fsGroup);
            return { lifetimeSeconds: issued.lifetimeSeconds };
          };
          refreshing.push({ ...(await refresh()), refresh });
        } else if (source.configMap) {
          const ref = source.configMap as { name: string; items?: KeyToPath[]; optional?: boolean };
          const cm = await sources.configMap(namespace, ref.name);
          if (cm)
            await writeKeys(dir, (cm.data as Record<string, string>) ?? {}, ref.items, projected.defaultMode ?? 0o644, `configmap ${namespace}/${ref.name}`);
          else if (!ref.optional) throw new VolumeError(`configmap "${namespace}/${ref.name}" for volume "${volume.name}" not found`);
        } else if (source.secret) {
          const ref = source.secret as { name: string; items?: KeyToPath[]; optional?: boolean };
          const secret = await sources.secret(namespace, ref.name);
          if (secret) await writeKeys(dir, secretData(secret), ref.items, projected.defaultMode ?? 0o600, `secret ${namespace}/${ref.name}`);
          else if (!ref.optional) throw new VolumeError(`secret "${namespace}/${ref.name}" for volume "${volume.name}" not found`);
        } else if (source.downwardAPI) {
          for (const item of (source.downwardAPI as { items?: Array<{ path: string; fieldRef?: { fieldPath: string } }> }).items ?? []) {
            if (item.fieldRef) await writeAtomic(safeRelative(dir, item.path), fieldRef(pod, item.fieldRef.fieldPath), 0o644);
          }
        }
      }
      continue;
    }
    throw new VolumeError(
      `volume "${volume.name}": only emptyDir, configMap, secret, downwardAPI, projected and hostPath volumes are supported by the sandbox`,
    );
  }
  return { dirs, refreshing };
}

/** Directories under which the sandbox may create a missing mount point (runtime tmpfs, removed by `down`). */
const CREATABLE_ROOTS = ["/run/", "/var/run/"];

/**
 * Resolves a container's volumeMounts to bind mounts. A mount point that does not exist on this machine
 * can only be created under /run (it is created in the shared root filesystem, so the sandbox keeps that small).
 */
export async function containerMounts(
  container: { name: string; volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }> },
  dirs: Map<string, string>,
  created: (dir: string) => void,
): Promise<VolumeMount[]> {
  const mounts: VolumeMount[] = [];
  for (const m of container.volumeMounts ?? []) {
    const source = dirs.get(m.name);
    if (!source) throw new VolumeError(`container "${container.name}" mounts volume "${m.name}", which the pod does not define`);
    if (!path.isAbsolute(m.mountPath)) throw new VolumeError(`mountPath "${m.mountPath}" must be absolute`);
    const target = path.resolve(m.mountPath);
    const src = m.subPath ? safeRelative(source, m.subPath) : source;
    const exists = await fs.stat(target).then(
      () => true,
      () => false,
    );
    if (!exists) {
      if (!CREATABLE_ROOTS.some((root) => target.startsWith(root))) {
        throw new VolumeError(`mountPath "${target}" does not exist on this machine; the sandbox can only create mount points under /run or /var/run`);
      }
      const isFile = (await fs.stat(src)).isFile();
      if (isFile) {
        await fs.mkdir(path.dirname(target), { recursive: true });
        await fs.writeFile(target, "");
      } else {
        await fs.mkdir(target, { recursive: true });
      }
      created(target);
    }
    mounts.push({ source: src, target, readOnly: m.readOnly === true });
  }
  return mounts;
}
