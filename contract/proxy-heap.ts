// The V8 heap of the mesh's L7 proxies (waypoint, sidecar): an old-generation cap, a young generation it can absorb, and the requests it can hold.
import v8 from "node:v8";

/**
 * The old-generation cap (MiB) of a waypoint or sidecar: about 8x what one holds live at 1,000 req/s. Without a cap
 * V8 lets a busy proxy's old generation grow to about 200 MiB of garbage before collecting it (bench/dataplane-l7.ts:
 * 257 MiB RSS, 13 MiB live after a full GC); 64 MiB left it collecting non-stop at 1,000 req/s.
 */
export const PROXY_OLD_SPACE_MIB = 96;

/** The most a semi-space may take (MiB): the controller's figure, a quarter of Node 24's default of 64. */
const MAX_SEMI_SPACE_MIB = 16;

/**
 * NODE_OPTIONS for a proxy capped at `oldSpaceMiB`. The young generation is capped with it: Node 24 lets the new
 * space grow to 128 MiB under load, and V8 starts marking whenever the old generation's free room is smaller than the
 * new space, so with a 96 MiB cap a proxy that had one burst (gRPC at 1,000 calls/s) ran full mark-compacts of a
 * 10 MiB heap every 13 ms for as long as it lived, at about one core. A semi-space of a sixth of the cap keeps the new
 * space (two semi-spaces) at a third of it.
 */
export function proxyNodeOptions(oldSpaceMiB: number = PROXY_OLD_SPACE_MIB): string {
  if (!Number.isInteger(oldSpaceMiB) || oldSpaceMiB < 16)
    throw new RangeError(`a proxy's old-space cap must be a whole number of MiB, at least 16 (got ${oldSpaceMiB})`);
  const semiSpaceMiB = Math.min(MAX_SEMI_SPACE_MIB, Math.floor(oldSpaceMiB / 6));
  return `--max-old-space-size=${oldSpaceMiB} --max-semi-space-size=${semiSpaceMiB}`;
}

/** Heap allowed per request in flight: twice what one took (a sidecar held 2,000 at once in 63 MiB of heap, garbage included). */
const HEAP_PER_ACTIVE_REQUEST = 64 * 1024;

/**
 * How many requests a proxy serves at once before it answers 503 (Envoy's overload manager: flag OM,
 * `x-envoy-overloaded`): 5,000 requests arriving at once on 5,000 connections took a sidecar with the 96 MiB cap past
 * its heap limit, and the crash dropped every connection it held; with this bound it answered about 2,400 and refused
 * the rest, three bursts in a row, and lived. 2,304 for the default cap (a 144 MiB heap limit).
 */
export function maxActiveRequests(heapSizeLimitBytes: number = v8.getHeapStatistics().heap_size_limit): number {
  return Math.max(64, Math.floor(heapSizeLimitBytes / HEAP_PER_ACTIVE_REQUEST));
}
