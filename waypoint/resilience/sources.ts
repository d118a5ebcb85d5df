// Time and chance as the resilience parts take them: injected, so tests run with a fake clock and a seeded generator.

/** Milliseconds on a monotonic scale (production: performance.now). */
export type Clock = () => number;
/** A number in [0, 1), as Math.random. */
export type Random = () => number;

export const monotonicClock: Clock = () => performance.now();

/**
 * mulberry32: a small generator whose sequence a seed fixes, so a test can assert on a thousand decisions without
 * being flaky. Not for anything secret.
 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
