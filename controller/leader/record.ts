// The leader-election record kept in a coordination.k8s.io/v1 Lease spec: reading it, comparing it, timestamps.
import type { KubeObject } from "../../kube/client.ts";

/** What the elector reads from and writes to `Lease.spec`. */
export interface LeaseRecord {
  /** "" when nobody holds the lease (never held, or released). */
  holderIdentity: string;
  /** Undefined when absent or not a positive number: the reader then falls back to its own configured duration. */
  leaseDurationSeconds: number | undefined;
  acquireTime: string | undefined;
  renewTime: string | undefined;
  leaseTransitions: number;
}

export const LEASE_API_VERSION = "coordination.k8s.io/v1";

/**
 * Kubernetes MicroTime (`2006-01-02T15:04:05.000000Z`). JavaScript clocks have millisecond resolution, so
 * the last three digits are always zero; the API server rejects a Lease whose times lack the six digits.
 */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** Reads the record from a Lease, tolerating a missing or partly filled spec (written by hand or another tool). */
export function readRecord(lease: KubeObject | undefined): LeaseRecord {
  const spec = (lease?.spec ?? {}) as Record<string, unknown>;
  const duration = Number(spec.leaseDurationSeconds);
  const transitions = Number(spec.leaseTransitions);
  return {
    holderIdentity: typeof spec.holderIdentity === "string" ? spec.holderIdentity : "",
    leaseDurationSeconds: Number.isFinite(duration) && duration > 0 ? duration : undefined,
    acquireTime: typeof spec.acquireTime === "string" ? spec.acquireTime : undefined,
    renewTime: typeof spec.renewTime === "string" ? spec.renewTime : undefined,
    leaseTransitions: Number.isInteger(transitions) && transitions >= 0 ? transitions : 0,
  };
}

/**
 * A comparable form of a record. Expiry is judged from when the record last *changed* as seen locally, so two
 * observations are "the same" exactly when every field is; the resourceVersion is not used because edits
 * outside the record (labels, annotations) would otherwise keep a dead holder's lease looking fresh.
 */
export function recordKey(record: LeaseRecord): string {
  return JSON.stringify([record.holderIdentity, record.leaseDurationSeconds, record.acquireTime, record.renewTime, record.leaseTransitions]);
}
