// Checks what `ambit dev up` needs before it touches anything, and says exactly how to fix what is missing.
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { execa } from "execa";
import type { SandboxConfig } from "./config.ts";
import { AmbitError } from "../contract/errors.ts";
import { SANDBOX_ERRORS } from "../contract/error-codes.ts";

export class PrerequisiteError extends AmbitError<typeof SANDBOX_ERRORS.code.prereq> {
  constructor(message: string) {
    super(SANDBOX_ERRORS.code.prereq, message);
    this.name = "PrerequisiteError";
  }
}

const DEBIAN_PACKAGES: Record<string, string> = {
  ip: "iproute2",
  "iptables-restore": "iptables",
  nsenter: "util-linux",
  unshare: "util-linux",
  mount: "mount",
  curl: "curl",
};

async function onPath(command: string): Promise<boolean> {
  const { exitCode } = await execa("sh", ["-c", `command -v ${command}`], { reject: false });
  return exitCode === 0;
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** Every problem found, so the operator fixes them in one go; empty when the machine is ready. */
export async function findMissingPrerequisites(cfg: SandboxConfig): Promise<string[]> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) {
    problems.push(
      "ambit dev needs root: it creates network namespaces, veth links and iptables rules inside them. Run it as root (e.g. `sudo npx ambit dev up`).",
    );
  }
  const missing = new Set<string>();
  for (const [command, pkg] of Object.entries(DEBIAN_PACKAGES)) if (!(await onPath(command))) missing.add(pkg);
  if (missing.size > 0) problems.push(`missing commands; install them with: apt-get install -y ${[...missing].join(" ")}`);
  const plugins = ["ptp", "host-local", "loopback"];
  const absent: string[] = [];
  for (const plugin of plugins) {
    try {
      await fs.access(path.join(cfg.cniBinDir, plugin), fs.constants.X_OK);
    } catch {
      absent.push(plugin);
    }
  }
  if (absent.length > 0) {
    problems.push(
      `CNI plugins ${absent.join(", ")} not found in ${cfg.cniBinDir}; install them with: apt-get install -y containernetworking-plugins ` +
        `(or point AMBIT_DEV_CNI_BIN_DIR at the directory that holds them)`,
    );
  }
  try {
    await fs.access("/proc/self/ns/net");
  } catch {
    problems.push("this kernel does not expose network namespaces (/proc/self/ns/net); the sandbox needs them");
  }
  if (!(await portFree(cfg.apiHost, cfg.apiPort))) {
    problems.push(
      `port ${cfg.apiPort} on ${cfg.apiHost} is already in use; stop what listens there (ss -ltnp 'sport = :${cfg.apiPort}') or choose another port with AMBIT_DEV_API_PORT`,
    );
  }
  return problems;
}
