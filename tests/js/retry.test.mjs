import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ApiError } from "../../chalicelib/web/api.js";
import { isRetryable, nextPollDelay, parseRetryAfter, withRetry } from "../../chalicelib/web/retry.js";

const DELAYS = [1000, 2000, 4000, 8000, 16000];

/** withRetry with a recorded, instant clock and a scripted network. */
function harness(outcomes, { online = () => true } = {}) {
  const waited = [];
  const events = [];
  let calls = 0;
  const action = async () => {
    const outcome = outcomes[Math.min(calls, outcomes.length - 1)];
    calls += 1;
    if (outcome instanceof Error) throw outcome;
    return outcome;
  };
  const options = {
    delays: DELAYS,
    wait: async (ms) => { waited.push(ms); },
    isOnline: online,
    untilOnline: async () => { events.push("online"); },
    onWait: (wait) => events.push(wait.reason),
  };
  return { run: () => withRetry(action, options), waited, events, calls: () => calls };
}

const networkError = () => new ApiError(0, "NETWORK_ERROR", "offline");
const serverError = (status = 503) => new ApiError(status, "SERVICE_UNAVAILABLE", "down");

describe("which failures are retried by themselves", () => {
  test("network errors, timeouts and 5xx are retried", () => {
    for (const status of [0, 408, 500, 502, 503, 504]) assert.equal(isRetryable(new ApiError(status, "X", "")), true);
  });

  test("other 4xx, 429 included, and a cancel are not", () => {
    for (const status of [400, 401, 404, 409, 410, 413, 422, 429]) {
      assert.equal(isRetryable(new ApiError(status, "X", "")), false, String(status));
    }
    assert.equal(isRetryable(new DOMException("cancelled", "AbortError")), false);
  });
});

describe("withRetry", () => {
  test("a 503 then a success waits one second and returns the success", async () => {
    const h = harness([serverError(), "created"]);
    assert.equal(await h.run(), "created");
    assert.deepEqual(h.waited, [1000]);
    assert.equal(h.calls(), 2);
  });

  test("failures back off 1, 2, 4, 8 and 16 s, then the last failure is thrown", async () => {
    const failure = serverError(500);
    const h = harness([failure]);
    await assert.rejects(h.run(), (error) => error === failure);
    assert.deepEqual(h.waited, DELAYS);
    assert.equal(h.calls(), 6);
  });

  test("a refusal is thrown at once, without waiting", async () => {
    const refusal = new ApiError(400, "VALIDATION_ERROR", "email: bad");
    const h = harness([refusal, "never"]);
    await assert.rejects(h.run(), (error) => error === refusal);
    assert.deepEqual(h.waited, []);
    assert.equal(h.calls(), 1);
  });

  test("a 429 is not retried by itself", async () => {
    const limited = new ApiError(429, "RATE_LIMITED", "slow down", { retryAfter: 600 });
    const h = harness([limited, "never"]);
    await assert.rejects(h.run(), (error) => error === limited);
    assert.equal(h.calls(), 1);
  });

  test("while offline it waits for the network without using up tries", async () => {
    let offlineChecks = 8;
    const h = harness([networkError(), networkError(), networkError(), networkError(), networkError(),
      networkError(), networkError(), networkError(), "done"], { online: () => (offlineChecks-- <= 0) });
    assert.equal(await h.run(), "done");
    assert.deepEqual(h.events.filter((event) => event === "online").length, 8);
    assert.deepEqual(h.waited, []);
  });

  test("a cancel during the wait stops the retries", async () => {
    const controller = new AbortController();
    let calls = 0;
    const run = withRetry(async () => { calls += 1; throw serverError(); }, {
      delays: DELAYS, signal: controller.signal, isOnline: () => true,
    });
    setTimeout(() => controller.abort(), 10);
    await assert.rejects(run, { name: "AbortError" });
    assert.equal(calls, 1);
  });
});

describe("polling backoff and Retry-After", () => {
  test("polls start at 2 s and grow by half each time up to 30 s", () => {
    const delays = [2000];
    while (delays.length < 10) delays.push(nextPollDelay(delays.at(-1), { factor: 1.5, maxMs: 30000 }));
    assert.deepEqual(delays, [2000, 3000, 4500, 6750, 10125, 15188, 22782, 30000, 30000, 30000]);
  });

  test("Retry-After is read as seconds or as a date", () => {
    assert.equal(parseRetryAfter("120"), 120);
    assert.equal(parseRetryAfter(" 0 "), 0);
    assert.equal(parseRetryAfter("Wed, 25 Nov 2026 03:10:00 GMT", Date.parse("2026-11-25T03:08:30Z")), 90);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter("soon"), null);
  });
});
