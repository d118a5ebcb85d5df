// The V8 heap flags of the mesh's L7 proxies (waypoint, sidecar): an old-generation cap and a young generation it can absorb.

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
