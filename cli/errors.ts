// Errors of the operator commands: a stable AMBIT_E_* code each (documented in cli/README.md and docs/errors.md) and a message that says what to check.
import { KubeRequestError } from "../kube/client.ts";
import { AmbitError, type CodeOf } from "../contract/errors.ts";
import type { CLI_ERRORS, DATAPLANE_ERRORS } from "../contract/error-codes.ts";

/** The CLI's own codes, and the data path's "no endpoint" that `explain` reports as the agent would. */
export type CliErrorCode = CodeOf<typeof CLI_ERRORS> | typeof DATAPLANE_ERRORS.code.noEndpoint;

export class CliError extends AmbitError<CliErrorCode> {
  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "CliError";
  }
}

/** Exit status per code: 1 for failures of what was asked, 2 for bad usage, 3 when a check found the mesh unhealthy. */
export function exitCodeFor(code: string | undefined): number {
  if (code === "AMBIT_E_USAGE") return 2;
  if (code === "AMBIT_E_UNHEALTHY") return 3;
  return 1;
}

/**
 * Turns what the Kubernetes API answered (or failed to) into a CliError that names the cause: `what` says what
 * was being done, e.g. "listing agent pods in ambit-system".
 */
export function fromKubeError(err: unknown, what: string): unknown {
  if (err instanceof CliError) return err;
  if (err instanceof KubeRequestError) {
    if (err.status === 401)
      return new CliError("AMBIT_E_FORBIDDEN", `${what}: the API server did not accept the credentials (401); check the kubeconfig's user or log in again`, {
        cause: err,
      });
    if (err.status === 403)
      return new CliError("AMBIT_E_FORBIDDEN", `${what}: forbidden (403); check your RBAC permissions with \`kubectl auth can-i\` (${err.message})`, {
        cause: err,
      });
    return err;
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EHOSTUNREACH" || code === "ETIMEDOUT" || /timed out/.test(String(err)))
    return new CliError(
      "AMBIT_E_API_UNREACHABLE",
      `${what}: cannot reach the Kubernetes API server (${(err as Error).message}); check --kubeconfig/--context and that the cluster is up (kubectl cluster-info)`,
      { cause: err },
    );
  return err;
}
