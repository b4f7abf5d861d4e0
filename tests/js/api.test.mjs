import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { ApiError, apiFetch } from "../../chalicelib/web/api.js";

// api.js reads its base from the page's meta tag: here there is none (this origin's root).
globalThis.document = { querySelector: () => null };
const realFetch = globalThis.fetch;
afterEach(() => { globalThis.fetch = realFetch; });

/** A fetch that never answers but, like the browser's, gives up when its signal aborts. */
function hangingFetch(calls) {
  return (url, { signal }) => {
    calls.push(url);
    return new Promise((resolve, reject) => {
      signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    });
  };
}

describe("apiFetch", () => {
  test("a request with no answer is given up after the timeout as a retryable network error", async () => {
    const calls = [];
    globalThis.fetch = hangingFetch(calls);
    await assert.rejects(apiFetch("/api/upload", { timeoutMs: 20 }),
      (error) => error instanceof ApiError && error.code === "NETWORK_ERROR" && error.status === 0);
    assert.deepEqual(calls, ["/api/upload"]);
  });

  test("a cancel stays a cancel, not a network error", async () => {
    globalThis.fetch = hangingFetch([]);
    const controller = new AbortController();
    const request = apiFetch("/api/upload", { signal: controller.signal, timeoutMs: 10000 });
    controller.abort();
    await assert.rejects(request, { name: "AbortError" });
  });

  test("an error body becomes an ApiError with the server's code, message and Retry-After", async () => {
    globalThis.fetch = async () => new Response(JSON.stringify(
      { error: { code: "RATE_LIMITED", message: "Too many uploads right now. Please try again in 2 minutes." } }),
    { status: 429, headers: { "Content-Type": "application/json", "Retry-After": "120" } });
    await assert.rejects(apiFetch("/api/upload", { method: "POST", body: {} }), (error) => error.status === 429
      && error.code === "RATE_LIMITED" && error.retryAfter === 120
      && error.message === "Too many uploads right now. Please try again in 2 minutes.");
  });

  test("a 5xx without a JSON body still gets a sentence", async () => {
    globalThis.fetch = async () => new Response("<html>Bad gateway</html>", { status: 502 });
    await assert.rejects(apiFetch("/api/upload"), (error) => error.status === 502 && error.code === "HTTP_502"
      && error.message === "Something went wrong on our side. Please try again.");
  });
});
