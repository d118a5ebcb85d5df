// Test tiers: a describe that skips when its prerequisite is missing, except under CI=true, where it fails instead.
import { describe, it } from "vitest";

/** CI sets CI=true: there a missing prerequisite (root, kubectl, promtool) is a broken machine, not a reason to skip. */
export const inCi = process.env.CI === "true" || process.env.CI === "1";

/**
 * `describeTier(isRoot, ROOT_REQUIRED)("title", () => {...})`: the suite when `available`; otherwise a skipped suite
 * whose title says what is missing, or, under CI=true, a suite with one failing test saying so.
 */
export const describeTier =
  (available: boolean, missing: string) =>
  (title: string, body: () => void): void => {
    if (available) describe(title, body);
    else if (!inCi) describe.skip(`${title} (${missing})`, body);
    else
      describe(title, () => {
        it("has what this tier needs", () => {
          throw new Error(`CI=true and this tier cannot run: ${missing}`);
        });
      });
  };
