// Shared shapes of the sandbox API server: stored objects and the error that becomes a metav1.Status answer.

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

/** "NotFound" -> "NOT_FOUND", so every Status reason gets its own stable error code. */
function upperSnake(reason: string): string {
  return reason.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Error carrying the HTTP status and Kubernetes Status reason the server should answer with. */
export class ApiError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  /** Kubernetes Status reason, e.g. "NotFound", "Conflict", "Invalid". */
  readonly reason: string;
  readonly details: StatusDetails | undefined;

  constructor(httpStatus: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.name = "ApiError";
    this.httpStatus = httpStatus;
    this.reason = reason;
    this.details = details;
    this.code = `AMBIT_E_API_${upperSnake(reason)}`;
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
