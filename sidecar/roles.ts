// The two ends of a sidecar as roles of the shared L7 proxy: the pod's client (what its app dials) and its server (the app behind it).
import net from "node:net";
import type { Duplex } from "node:stream";
import { decideInbound } from "../agent/dataplane/index.ts";
import type { PolicyStore } from "../agent/authorization/index.ts";
import type { HboneConnectionPool } from "../agent/hbone/index.ts";
import type { SpiffeId } from "../agent/identity/index.ts";
import type { Workload, WorkloadIndex } from "../agent/state/index.ts";
import { SIDECAR_PORTS } from "../contract/sidecar.ts";
import { type Addressed, type Endpoint, HBONE_PORT, type ProxyRole, WaypointError, WaypointErrorCode } from "../waypoint/proxy/index.ts";

const identityOf = (w: Workload, trustDomain: string): SpiffeId => ({ trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount });

/** A plain TCP connection, resolved once it is established (or failed). */
export function connectPlain(host: string, port: number, timeoutMs = 5_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    // Half open allowed: the peer's end of its side must not end ours before the relay has carried the rest.
    const socket = net.connect({ host, port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(() => socket.destroy(new Error(`connect ${host}:${port} timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The sidecar's own ports: nothing is delivered to them through the mesh (as the agent's in captured pods). */
const OWN_PORTS = new Set<number>(Object.values(SIDECAR_PORTS));
export const isSidecarPort = (port: number): boolean => OWN_PORTS.has(port);

/**
 * The client end: the app's captured connection to a Service port or a pod of the mesh, with routes and resilience.
 * Endpoints whose pods terminate HBONE (ambient or sidecar) get HBONE with this pod's identity, expecting theirs; pods
 * outside the mesh get plain TCP, as Istio's sidecar sends plaintext to a destination without one.
 */
export function clientRole(opts: { index: WorkloadIndex; me: SpiffeId; hbone: HboneConnectionPool }): ProxyRole {
  const { index, me, hbone } = opts;
  return {
    reporter: "source",
    resolve(target): Addressed | WaypointError {
      const service = index.serviceByIp(target.ip);
      if (service?.ports.has(target.port)) return { kind: "service", service, port: target.port };
      const workload = index.workloadByIp(target.ip);
      if (workload) return { kind: "workload", workload, port: target.port };
      return new WaypointError(WaypointErrorCode.unknownDestination, 400, `${target.ip}:${target.port} is neither a Service port nor a pod of the mesh`);
    },
    endpointOf(workload, port): Endpoint {
      const identity = identityOf(workload, me.trustDomain);
      return workload.captured ? { ip: workload.ip, port, identity, workload } : { ip: workload.ip, port, identity, workload, plaintext: true };
    },
    openUpstream(endpoint): Promise<Duplex> {
      if (endpoint.plaintext) return connectPlain(endpoint.ip, endpoint.port);
      return hbone.openStream({
        source: me,
        destination: { ip: endpoint.ip, port: endpoint.port },
        dial: { host: endpoint.ip, port: HBONE_PORT },
        expectedIdentity: endpoint.identity,
      });
    },
    // Istio's client-side reporter does not know what the server enforced.
    connectionSecurity: () => "unknown",
    l7Authorization: false,
  };
}

/**
 * The server end: HBONE streams addressed to this pod only, admitted by the L4 policies that select it (the agent's
 * own decision code: a pod bound to a waypoint takes traffic only from it), then served at L7 to the app on the pod's
 * address (the proxy's user is never captured, so that connection goes straight to the app).
 */
export function serverRole(opts: { me: () => Workload; podIp: string; identity: SpiffeId; policy: PolicyStore }): ProxyRole {
  const { podIp, identity, policy } = opts;
  return {
    reporter: "destination",
    admit(target, peer) {
      if (target.ip !== podIp) return `${target.ip}:${target.port} is not this pod (${podIp}): a sidecar serves its own pod only`;
      if (isSidecarPort(target.port)) return `port ${target.port} is the sidecar's own; nothing is delivered to it`;
      const decision = decideInbound(policy, opts.me(), {
        source: peer.source,
        ...(peer.sourceAddress ? { sourceIp: peer.sourceAddress } : {}),
        destinationIp: target.ip,
        destinationPort: target.port,
      });
      return decision.allowed ? undefined : { status: 401, reason: decision.reason };
    },
    resolve: (target) => ({ kind: "workload", workload: opts.me(), port: target.port }),
    endpointOf: (workload, port) => ({ ip: podIp, port, identity, workload, plaintext: true }),
    openUpstream: (endpoint) => connectPlain(podIp, endpoint.port),
    connectionSecurity: () => "mutual_tls",
    l7Authorization: false,
  };
}
