// A waypoint Gateway's validity and its status as Gateway API defines it: Accepted, Programmed, the listener's conditions, the address.
import { WAYPOINT_LISTENER } from "../../contract/waypoint.ts";
import type { KubeObject } from "../../kube/client.ts";

export interface GatewayCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

/**
 * Conditions to write, each keeping the lastTransitionTime it had while its status holds (Gateway API asks for
 * the time the status last changed), else `now`: for Gateway, GatewayClass and route conditions alike.
 */
export function carryTransitions<C extends { type: string; status: string }>(
  next: readonly C[],
  previous: ReadonlyArray<{ type: string; status: string; lastTransitionTime?: string }> | undefined,
  now: string,
): Array<C & { lastTransitionTime: string }> {
  return next.map((c) => {
    const before = previous?.find((p) => p.type === c.type);
    return { ...c, lastTransitionTime: before && before.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : now };
  });
}

interface Listener {
  name?: string;
  port?: number;
  protocol?: string;
  hostname?: string;
  tls?: unknown;
}

/** Why a Gateway of class ambit-waypoint cannot be a waypoint, each problem naming its field; empty when it can. */
export function waypointGatewayProblems(gateway: KubeObject): string[] {
  const listeners = (gateway.spec?.listeners ?? []) as Listener[];
  const problems: string[] = [];
  if (listeners.length !== 1)
    problems.push(
      `spec.listeners: a waypoint has exactly one listener (port ${WAYPOINT_LISTENER.port}, protocol ${WAYPOINT_LISTENER.protocol}), not ${listeners.length}`,
    );
  listeners.forEach((l, i) => {
    if (l.port !== WAYPOINT_LISTENER.port) problems.push(`spec.listeners[${i}].port: must be ${WAYPOINT_LISTENER.port}, not ${l.port}`);
    if (l.protocol !== WAYPOINT_LISTENER.protocol) problems.push(`spec.listeners[${i}].protocol: must be ${WAYPOINT_LISTENER.protocol}, not ${l.protocol}`);
    if (l.tls !== undefined) problems.push(`spec.listeners[${i}].tls: a waypoint's HBONE listener takes no TLS settings (the mesh's mTLS applies)`);
  });
  if (((gateway.spec?.addresses ?? []) as unknown[]).length > 0)
    problems.push("spec.addresses: a waypoint gets its address from its Service; requested addresses are not supported");
  return problems;
}

export interface WaypointState {
  /** The waypoint's Service ClusterIP, once it has one. */
  address: string | undefined;
  /** Ready waypoint pods. */
  readyPods: number;
}

const cond = (type: string, ok: boolean | "unknown", reason: string, message: string, generation: number | undefined): GatewayCondition => ({
  type,
  status: ok === "unknown" ? "Unknown" : ok ? "True" : "False",
  reason,
  message,
  ...(generation !== undefined ? { observedGeneration: generation } : {}),
});

/**
 * The status the controller writes. Accepted says whether the spec can be a waypoint; Programmed whether it can take
 * traffic now (its pods ready and its Service addressed): until then, traffic bound to it fails rather than bypassing it.
 */
export function waypointGatewayStatus(gateway: KubeObject, state: WaypointState): Record<string, unknown> {
  const generation = gateway.metadata.generation as number | undefined;
  const problems = waypointGatewayProblems(gateway);
  const accepted = problems.length === 0;
  const programmed = accepted && state.readyPods > 0 && state.address !== undefined;
  const waiting = !state.address ? "its Service has no ClusterIP yet" : "no waypoint pod is ready yet";
  const conditions = [
    cond("Accepted", accepted, accepted ? "Accepted" : "ListenersNotValid", accepted ? "waypoint accepted" : problems.join("; "), generation),
    cond(
      "Programmed",
      programmed,
      programmed ? "Programmed" : accepted ? "Pending" : "Invalid",
      programmed ? `${state.readyPods} waypoint pod(s) ready` : accepted ? `${waiting}; traffic bound to this waypoint fails until then` : "not accepted",
      generation,
    ),
  ];
  const listeners = ((gateway.spec?.listeners ?? []) as Listener[]).map((l) => ({
    name: l.name ?? "",
    attachedRoutes: 0,
    supportedKinds: [] as unknown[],
    conditions: [
      cond("Accepted", accepted, accepted ? "Accepted" : "UnsupportedProtocol", accepted ? "listener accepted" : problems.join("; "), generation),
      cond(
        "Programmed",
        programmed,
        programmed ? "Programmed" : accepted ? "Pending" : "Invalid",
        programmed ? "listener programmed" : accepted ? waiting : "not accepted",
        generation,
      ),
      cond("ResolvedRefs", true, "ResolvedRefs", "no references to resolve", generation),
    ],
  }));
  return {
    ...(state.address ? { addresses: [{ type: "IPAddress", value: state.address }] } : {}),
    conditions,
    listeners,
  };
}
