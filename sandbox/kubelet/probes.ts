// Readiness and liveness probes, run from the node's network namespace as the kubelet does on a real node.
import { execa } from "execa";

export interface Probe {
  httpGet?: { path?: string; port: number | string; scheme?: string; host?: string };
  tcpSocket?: { port: number | string; host?: string };
  exec?: { command: string[] };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export interface ProbeTarget {
  nodeNetns: string;
  podIP: string;
  /** Named container ports, to resolve `port: http`. */
  namedPorts: Record<string, number>;
  /** Runs an exec probe's command inside the pod; resolves to its exit code. */
  execInPod(command: string[], timeoutMs: number): Promise<number>;
}

function resolvePort(port: number | string, named: Record<string, number>): number {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const found = named[port];
  if (found === undefined) throw new Error(`probe port "${port}" is not a named port of the container`);
  return found;
}

/** Runs one probe attempt; true on success. Never throws: a probe that cannot run has failed. */
export async function runProbe(probe: Probe, target: ProbeTarget): Promise<boolean> {
  const timeoutS = probe.timeoutSeconds ?? 1;
  const inNode = ["--net=/run/netns/" + target.nodeNetns, "--"];
  try {
    if (probe.httpGet) {
      const port = resolvePort(probe.httpGet.port, target.namedPorts);
      const host = probe.httpGet.host ?? target.podIP;
      const scheme = (probe.httpGet.scheme ?? "HTTP").toLowerCase();
      const url = `${scheme}://${host}:${port}${probe.httpGet.path ?? "/"}`;
      const { stdout } = await execa("nsenter", [...inNode, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", String(timeoutS), url], {
        reject: false,
        timeout: (timeoutS + 2) * 1000,
      });
      const code = Number(stdout);
      return code >= 200 && code < 400;
    }
    if (probe.tcpSocket) {
      const port = resolvePort(probe.tcpSocket.port, target.namedPorts);
      const host = probe.tcpSocket.host ?? target.podIP;
      const { exitCode } = await execa("nsenter", [...inNode, "timeout", String(timeoutS), "bash", "-c", `exec 3<>/dev/tcp/${host}/${port}`], {
        reject: false,
      });
      return exitCode === 0;
    }
    if (probe.exec) return (await target.execInPod(probe.exec.command, timeoutS * 1000)) === 0;
  } catch {
    return false;
  }
  return false;
}
