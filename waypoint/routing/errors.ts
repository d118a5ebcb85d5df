// Why a route (or one of its rules) is refused: a stable code per kind of mistake, the field path, and the status reason it maps to.
import { ROUTE_ERRORS } from "../../contract/error-codes.ts";
import { AmbitError } from "../../contract/errors.ts";

/**
 * Each code names one kind of mistake (contract/error-codes.ts ROUTE_ERRORS); the message starts with the field path
 * (`spec.rules[0].matches[1].path.value: must start with "/"`), as the API server's validation does.
 */
export const RouteErrorCode = ROUTE_ERRORS.code;
export type RouteErrorCode = (typeof RouteErrorCode)[keyof typeof RouteErrorCode];

/** The `Accepted=False` reason a code reports in the route's status. */
export const acceptedReasonFor = (code: RouteErrorCode): "IncompatibleFilters" | "UnsupportedValue" =>
  code === RouteErrorCode.incompatibleFilters ? "IncompatibleFilters" : "UnsupportedValue";

export class RouteValidationError extends AmbitError<RouteErrorCode> {
  /** Field path inside the route object, e.g. `spec.rules[0].filters[1].requestRedirect.statusCode`. */
  readonly path: string;
  /** Index of the rule the error is in; absent when the whole route is affected (then no rule of it is used). */
  readonly rule: number | undefined;
  constructor(code: RouteErrorCode, path: string, detail: string, rule?: number) {
    super(code, `${path}: ${detail}`);
    this.name = "RouteValidationError";
    this.path = path;
    this.rule = rule;
  }
}
