// Stable codes for every way the compiler finds an AuthorizationPolicy or PeerAuthentication Invalid, each naming the field path.
import { POLICY_ERRORS } from "../../contract/error-codes.ts";
import { AmbitError } from "../../contract/errors.ts";

/** One code per kind of mistake (contract/error-codes.ts POLICY_ERRORS), so status consumers, `ambit explain` and docs can tell them apart without parsing messages. */
export const PolicyErrorCode = POLICY_ERRORS.code;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

/** Why a policy is Invalid; the message is `<field path>: <what is wrong and what to write>`. */
export class PolicyCompileError extends AmbitError<PolicyErrorCode> {
  /** The field that is wrong, e.g. `spec.rules[0].to[1].operation.paths[2]`. */
  readonly path: string;
  constructor(code: PolicyErrorCode, path: string, detail: string) {
    super(code, `${path}: ${detail}`);
    this.name = "PolicyCompileError";
    this.path = path;
  }
}
