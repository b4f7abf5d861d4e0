import { describe, expect, test } from "vitest";

import { ApiError, MissingSessionError, isRetryable, nextPollDelay, parseRetryAfter } from "../src/index.js";
import { withRetry, type RetryWait } from "../src/retry.js";

const DELAYS = [1000, 2000, 4000, 8000, 16000];

/** withRetry with a recorded, instant clock and a scripted network. */
function harness(outcomes: (Error | string)[], { online = (): boolean => true }: { online?: () => boolean } = {}) {
  const waited: number[] = [];
  const events: string[] = [];
  let calls = 0;
  const action = async (): Promise<string> => {
    const outcome = outcomes[Math.min(calls, outcomes.length - 1)];
    calls += 1;
    if (outcome instanceof Error) throw outcome;
    return outcome ?? "";
  };
  const run = () => withRetry(action, {
    delays: DELAYS,
    wait: async (ms) => { waited.push(ms); },
    isOnline: online,
    untilOnline: async () => { events.push("online"); },
    onWait: (wait: RetryWait) => events.push(wait.reason),
  });
  return { run, waited, events, calls: () => calls };
}

const networkError = (): ApiError => new ApiError(0, "NETWORK_ERROR", "offline");
const serverError = (status = 503): ApiError => new ApiError(status, "SERVICE_UNAVAILABLE", "down");

describe("which failures are retried by themselves", () => {
  test("network errors, stalls, timeouts and 5xx are retried", () => {
    for (const code of ["NETWORK_ERROR", "STALLED", "STORAGE_UNREACHABLE"] as const) {
      expect(isRetryable(new ApiError(0, code, ""))).toBe(true);
    }
    for (const status of [408, 500, 502, 503, 504]) expect(isRetryable(new ApiError(status, "INTERNAL_ERROR", ""))).toBe(true);
  });

  test("other 4xx, 429 included, a cancel, a refused file and a missing session are not", () => {
    for (const status of [400, 401, 404, 409, 410, 413, 422, 429]) {
      expect(isRetryable(new ApiError(status, "VALIDATION_ERROR", ""))).toBe(false);
    }
    expect(isRetryable(new DOMException("cancelled", "AbortError"))).toBe(false);
    expect(isRetryable(new ApiError(0, "INVALID_FILE", ""))).toBe(false);
    expect(isRetryable(new MissingSessionError("job1"))).toBe(false);
    expect(isRetryable(new Error("boom"))).toBe(false);
  });
});

describe("withRetry", () => {
  test("a 503 then a success waits one second and returns the success", async () => {
    const h = harness([serverError(), "created"]);
    expect(await h.run()).toBe("created");
    expect(h.waited).toEqual([1000]);
    expect(h.calls()).toBe(2);
  });

  test("failures back off 1, 2, 4, 8 and 16 s, then the last failure is thrown", async () => {
    const failure = serverError(500);
    const h = harness([failure]);
    await expect(h.run()).rejects.toBe(failure);
    expect(h.waited).toEqual(DELAYS);
    expect(h.calls()).toBe(6);
  });

  test("a refusal and a 429 are thrown at once, without waiting", async () => {
    for (const refusal of [new ApiError(400, "VALIDATION_ERROR", "email: bad"),
      new ApiError(429, "RATE_LIMITED", "slow down", { retryAfter: 600 })]) {
      const h = harness([refusal, "never"]);
      await expect(h.run()).rejects.toBe(refusal);
      expect(h.waited).toEqual([]);
      expect(h.calls()).toBe(1);
    }
  });

  test("a missing session is thrown at once, never retried", async () => {
    const missing = new MissingSessionError("job1");
    const h = harness([missing, "never"]);
    await expect(h.run()).rejects.toBe(missing);
    expect(h.calls()).toBe(1);
  });

  test("while offline it waits for the network without using up tries", async () => {
    let offlineChecks = 8;
    const h = harness([...Array.from({ length: 8 }, networkError), "done"], { online: () => offlineChecks-- <= 0 });
    expect(await h.run()).toBe("done");
    expect(h.events.filter((event) => event === "online")).toHaveLength(8);
    expect(h.waited).toEqual([]);
  });

  test("a cancel during the wait stops the retries", async () => {
    const controller = new AbortController();
    let calls = 0;
    const run = withRetry(async () => { calls += 1; throw serverError(); }, {
      delays: DELAYS, signal: controller.signal, isOnline: () => true,
    });
    setTimeout(() => controller.abort(), 10);
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    expect(calls).toBe(1);
  });
});

describe("polling backoff and Retry-After", () => {
  test("polls start at 2 s and grow by half each time up to 30 s", () => {
    const delays = [2000];
    while (delays.length < 10) delays.push(nextPollDelay(delays.at(-1) ?? 0, { factor: 1.5, maxMs: 30000 }));
    expect(delays).toEqual([2000, 3000, 4500, 6750, 10125, 15188, 22782, 30000, 30000, 30000]);
  });

  test("Retry-After is read as seconds or as a date", () => {
    expect(parseRetryAfter("120")).toBe(120);
    expect(parseRetryAfter(" 0 ")).toBe(0);
    expect(parseRetryAfter("Wed, 25 Nov 2026 03:10:00 GMT", Date.parse("2026-11-25T03:08:30Z"))).toBe(90);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter("soon")).toBeNull();
  });
});
