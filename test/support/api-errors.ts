// Test helper: the ApiError a call throws, so tests can assert on its HTTP status, reason and message.
import { expect } from "vitest";
import { ApiError } from "../../sandbox/apiserver/types.ts";

/** Runs `fn` and returns the ApiError it throws, failing the test when it throws nothing or something else. */
export function apiErrorOf(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("expected an ApiError");
}
