// Shared shapes of the sandbox API server: stored objects and the error that becomes a metav1.Status answer.
import { AmbitError, type CodeOf } from "../../contract/errors.ts";
import { API_ERRORS, type ApiReason } from "../../contract/error-codes.ts";

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  // Spec and status shapes differ per kind; readers narrow them where they use them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  status?: any;
  [key: string]: unknown;
}

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
}

/** Error carrying the HTTP status and Kubernetes Status reason the server should answer with; each reason has its own code. */
export class ApiError extends AmbitError<CodeOf<typeof API_ERRORS>> {
  readonly httpStatus: number;
  /** Kubernetes Status reason, e.g. "NotFound", "Conflict", "Invalid". */
  readonly reason: ApiReason;
  readonly details: StatusDetails | undefined;

  constructor(httpStatus: number, reason: ApiReason, message: string, details?: StatusDetails) {
    super(API_ERRORS.code[reason], message);
    this.name = "ApiError";
    this.httpStatus = httpStatus;
    this.reason = reason;
    this.details = details;
  }
}

/** The metav1.Status body Kubernetes answers failures with; clients read reason and code from it. */
export function statusBody(err: ApiError): object {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: err.message,
    reason: err.reason,
    ...(err.details === undefined ? {} : { details: err.details }),
    code: err.httpStatus,
  };
}
