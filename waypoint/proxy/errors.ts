// The waypoint data path's errors: a stable code (contract/error-codes.ts WAYPOINT_ERRORS) and the status the client is answered.
import { WAYPOINT_ERRORS } from "../../contract/error-codes.ts";
import { AmbitError, type CodeOf } from "../../contract/errors.ts";

export const WaypointErrorCode = WAYPOINT_ERRORS.code;

export class WaypointError extends AmbitError<CodeOf<typeof WAYPOINT_ERRORS>> {
  /** What the client is answered, with Envoy's bodies (`no healthy upstream`, `upstream request timeout`) so tools written for Istio read it. */
  readonly status: 400 | 503 | 504;
  constructor(code: CodeOf<typeof WAYPOINT_ERRORS>, status: 400 | 503 | 504, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.name = "WaypointError";
    this.status = status;
  }
}
