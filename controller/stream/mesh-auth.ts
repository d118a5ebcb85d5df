// Who may hold a config stream: an agent (agent certificate + node-bound token: its node's view), a waypoint or a sidecar (its own certificate + its pod's token: its view).
import { formatSpiffeId, spiffeIdFromCertificate, type SpiffeId } from "../../contract/spiffe.ts";
import type { CallerAuthenticator } from "../identity/index.ts";
import type { AuthenticationRequest, AuthenticationResult } from "./server.ts";

export interface MeshStreamAuthOptions {
  trustDomain: string;
  /** namespace/name of the service accounts agents run as. */
  agentServiceAccounts: string[];
  authenticator: Pick<CallerAuthenticator, "authenticate" | "authenticateAgent">;
  /** Whether `namespace/name` is a Gateway of class ambit-waypoint: its waypoint runs as the ServiceAccount of that name. */
  isWaypoint(namespace: string, name: string): boolean;
  /** Whether the pod `namespace/name` carries Ambit's sidecar (its injection status annotation). Absent: no sidecars. */
  isSidecarPod?(namespace: string, name: string): boolean;
}

/**
 * Both proofs, always: the mesh certificate (mTLS) says which identity calls, the projected token (TokenReview) that a
 * live pod of that identity does. A certificate alone outlives its pod by up to a day; a token alone is not mTLS.
 */
export function meshStreamAuthenticator(opts: MeshStreamAuthOptions): (req: AuthenticationRequest) => Promise<AuthenticationResult> {
  const agentIdentities = new Set(
    opts.agentServiceAccounts.map((sa) => {
      const [namespace = "", serviceAccount = ""] = sa.split("/");
      return formatSpiffeId({ trustDomain: opts.trustDomain, namespace, serviceAccount });
    }),
  );
  return async ({ peerCertificate, headers }) => {
    // Strict: exactly one URI SAN, a valid workload SPIFFE ID of this trust domain.
    let id: SpiffeId;
    try {
      if (!peerCertificate) throw new Error("no client certificate");
      id = spiffeIdFromCertificate(peerCertificate);
    } catch (err) {
      return { error: `client certificate refused: ${(err as Error).message}`, status: 403 };
    }
    const uri = formatSpiffeId(id);
    if (agentIdentities.has(uri)) {
      const auth = await opts.authenticator.authenticateAgent(headers.authorization);
      return auth.ok ? { node: auth.node } : { error: auth.reason, status: auth.status };
    }
    if (id.trustDomain !== opts.trustDomain)
      return { error: `client certificate ${uri} is of trust domain ${id.trustDomain}, not ${opts.trustDomain}`, status: 403 };
    const waypoint = opts.isWaypoint(id.namespace, id.serviceAccount);
    if (!waypoint && !opts.isSidecarPod)
      return {
        error: `client certificate ${uri} is neither an agent identity nor a waypoint's (the ServiceAccount named after an ambit-waypoint Gateway of its namespace)`,
        status: 403,
      };
    const auth = await opts.authenticator.authenticate(headers.authorization);
    if (!auth.ok) return { error: auth.reason, status: auth.status };
    if (!("pod" in auth) || auth.pod.namespace !== id.namespace || auth.pod.serviceAccount !== id.serviceAccount) {
      const who = "pod" in auth ? `pod ${auth.pod.namespace}/${auth.pod.pod} (service account ${auth.pod.serviceAccount})` : "an agent";
      const claimed = waypoint ? `a pod of waypoint ${id.namespace}/${id.serviceAccount}` : `a pod running as ${uri}`;
      return { error: `the token is ${who}'s, not ${claimed} as the client certificate says`, status: 403 };
    }
    if (waypoint) return { waypoint: { namespace: id.namespace, name: id.serviceAccount } };
    // Any other workload identity: only the sidecar of the very pod the token is bound to gets a view (its own).
    if (!opts.isSidecarPod?.(auth.pod.namespace, auth.pod.pod))
      return {
        error: `client certificate ${uri} is not an agent's or a waypoint's, and pod ${auth.pod.namespace}/${auth.pod.pod} carries no Ambit sidecar`,
        status: 403,
      };
    return { sidecar: { namespace: auth.pod.namespace, pod: auth.pod.pod } };
  };
}
