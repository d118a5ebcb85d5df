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
  /** Runs an exec probe's command inside the pod: its exit code and what it printed. */
  execInPod(command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string; timedOut?: boolean }>;
}

/** One probe attempt: `message` says why it failed, worded as the kubelet's Unhealthy events word it. */
export interface ProbeResult {
  success: boolean;
  message: string;
}

function resolvePort(port: number | string, named: Record<string, number>): number {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const found = named[port];
  if (found === undefined) throw new Error(`probe port "${port}" is not a named port of the container`);
  return found;
}

/** curl's failure, in the words of Go's net/http client the kubelet uses. */
function httpError(exitCode: number | undefined, stderr: string, host: string, port: number): string {
  if (exitCode === 7) return `dial tcp ${host}:${port}: connect: connection refused`;
  if (exitCode === 28) return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
  return stderr.replace(/^curl: \(\d+\) /, "").trim() || `request failed (curl exit ${exitCode ?? "none"})`;
}

/** Runs one probe attempt. Never throws: a probe that cannot run has failed, with the reason in `message`. */
export async function probe(p: Probe, target: ProbeTarget): Promise<ProbeResult> {
  const timeoutS = p.timeoutSeconds ?? 1;
  const inNode = ["--net=/run/netns/" + target.nodeNetns, "--"];
  try {
    if (p.httpGet) {
      const port = resolvePort(p.httpGet.port, target.namedPorts);
      const host = p.httpGet.host ?? target.podIP;
      const scheme = (p.httpGet.scheme ?? "HTTP").toLowerCase();
      const url = `${scheme}://${host}:${port}${p.httpGet.path ?? "/"}`;
      const r = await execa("nsenter", [...inNode, "curl", "-sSk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", String(timeoutS), url], {
        reject: false,
        timeout: (timeoutS + 2) * 1000,
      });
      const code = Number(r.stdout);
      if (code >= 200 && code < 400) return { success: true, message: "" };
      if (code > 0) return { success: false, message: `HTTP probe failed with statuscode: ${code}` };
      return { success: false, message: `Get "${url}": ${httpError(r.exitCode, String(r.stderr), host, port)}` };
    }
    if (p.tcpSocket) {
      const port = resolvePort(p.tcpSocket.port, target.namedPorts);
      const host = p.tcpSocket.host ?? target.podIP;
      const { exitCode } = await execa("nsenter", [...inNode, "timeout", String(timeoutS), "bash", "-c", `exec 3<>/dev/tcp/${host}/${port}`], {
        reject: false,
      });
      if (exitCode === 0) return { success: true, message: "" };
      return { success: false, message: `dial tcp ${host}:${port}: ${exitCode === 124 ? "i/o timeout" : "connect: connection refused"}` };
    }
    if (p.exec) {
      const r = await target.execInPod(p.exec.command, timeoutS * 1000);
      if (r.timedOut) return { success: false, message: `command ${JSON.stringify(p.exec.command.join(" "))} timed out` };
      return { success: r.exitCode === 0, message: r.output.trim() };
    }
  } catch (err) {
    return { success: false, message: (err as Error).message };
  }
  return { success: false, message: "the probe has no handler (httpGet, tcpSocket or exec)" };
}

/** One probe attempt; true on success. */
export async function runProbe(p: Probe, target: ProbeTarget): Promise<boolean> {
  return (await probe(p, target)).success;
}
