// The sandbox's error class: `ambit dev` failures with a stable code (a supervisor's failure keeps the code of the error that stopped it).
import { AmbitError } from "../contract/errors.ts";
import type { AmbitErrorCode } from "../contract/error-codes.ts";

export class SandboxError extends AmbitError<AmbitErrorCode> {
  constructor(code: AmbitErrorCode, message: string) {
    super(code, message);
    this.name = "SandboxError";
  }
}
