// The sandbox's "images": names a Pod may use in `image:` and the local program each one runs.
import path from "node:path";
import { REPO_ROOT } from "../config.ts";
import { AmbitError } from "../../contract/errors.ts";
import { SANDBOX_ERRORS } from "../../contract/error-codes.ts";

/**
 * No container engine runs here, so the kubelet maps image names to programs of this checkout or of the
 * host. A container's `command`/`args` override the entrypoint/arguments as in Kubernetes.
 */
const IMAGES: Record<string, { entrypoint: string[]; description: string; env?: Record<string, string> }> = {
  "ambit.dev/demo-service": {
    entrypoint: [process.execPath, path.join(REPO_ROOT, "demo", "app", "service.ts")],
    description: "demo HTTP service that calls NEXT_URL and returns the chain as JSON",
  },
  // The mesh's images run the bundles `npm run build` makes, as the product's images do; `ambit dev up` builds them.
  "ambit.dev/agent": {
    entrypoint: [process.execPath, path.join(REPO_ROOT, "dist", "agent.mjs")],
    description: "the Ambit node agent (DaemonSet, host network)",
  },
  "ambit.dev/controller": {
    entrypoint: [process.execPath, path.join(REPO_ROOT, "dist", "controller.mjs")],
    description: "the Ambit controller (Deployment): CA, policy, per-node config stream",
  },
  "ambit.dev/waypoint": {
    entrypoint: [process.execPath, path.join(REPO_ROOT, "dist", "waypoint.mjs")],
    description: "the Ambit waypoint (a Deployment per waypoint Gateway): L7 routing, resilience and policy",
  },
  "ambit.dev/sidecar": {
    entrypoint: [process.execPath, path.join(REPO_ROOT, "dist", "sidecar.mjs")],
    description: "the Ambit sidecar (injected into pods of sidecar-mode namespaces): `init` installs the capture rules, `proxy` is the pod's proxy",
  },
  "ambit.dev/cni": {
    entrypoint: [process.execPath, path.join(REPO_ROOT, "dist", "ambit-cni-install.mjs")],
    description: "the Ambit CNI installer (a container of the agent's pod) and the plugin executable it installs",
    // The image's ENV: where its plugin is (Dockerfile.cni puts it at /opt/ambit/ambit-cni, the installer's default).
    env: { AMBIT_CNI_PLUGIN_SOURCE: path.join(REPO_ROOT, "dist", "ambit-cni") },
  },
  "ambit.dev/toolbox": {
    entrypoint: ["sleep", "infinity"],
    description: "idle pod with the host's tools (curl, sh) to exec into",
  },
};

export class UnknownImageError extends AmbitError<typeof SANDBOX_ERRORS.code.image> {
  constructor(image: string) {
    super(
      SANDBOX_ERRORS.code.image,
      `image "${image}" is not available in the sandbox; use one of ${Object.keys(IMAGES).join(", ")} ` +
        `or set the container's command to a program installed on this machine`,
    );
    this.name = "UnknownImageError";
  }
}

/** Returns the argv a container runs, following Kubernetes' command/args rules. */
export function containerArgv(container: { image?: string; command?: string[]; args?: string[] }): string[] {
  const repo = (container.image ?? "").replace(/[:@].*$/, "");
  const image = IMAGES[repo];
  if (container.command && container.command.length > 0) return [...container.command, ...(container.args ?? [])];
  if (!image) throw new UnknownImageError(container.image ?? "");
  return [...image.entrypoint, ...(container.args ?? [])];
}

/** The image's own environment (a Dockerfile's ENV), which the container's env overrides. */
export function imageEnv(container: { image?: string }): Record<string, string> {
  return { ...(IMAGES[(container.image ?? "").replace(/[:@].*$/, "")]?.env ?? {}) };
}
