import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ApiError } from "../../chalicelib/web/api.js";
import { UploadAttempt } from "../../chalicelib/web/upload.js";

const TIMING = { retryDelaysMs: [0, 0, 0, 0, 0], stallMs: 1000 };
const FILE = { size: 1234, type: "" };

/** A scripted API and storage: each call takes the next outcome of its list (an Error is thrown). */
function scripted({ create = [], put = [], confirm = [], onConfirm } = {}) {
  const calls = { create: [], put: [], confirm: [], stored: [] };
  let jobs = 0;
  const next = async (list, call) => {
    const outcome = list.length ? list.shift() : "ok";
    if (outcome instanceof Error) throw outcome;
    return typeof outcome === "function" ? outcome(call) : outcome;
  };
  const created = () => {
    jobs += 1;
    return { uploadId: `job${jobs}`, uploadUrl: `https://storage/url${jobs}`, sessionToken: `token${jobs}`,
      expiresAt: new Date(Date.now() + 900000).toISOString() };
  };
  const attempt = new UploadAttempt(FILE, "maya@example.com", {
    fileType: "image/heic",
    timing: TIMING,
    api: {
      createUpload: async (body, key) => {
        calls.create.push({ body, key });
        const outcome = await next(create, body);
        return outcome === "ok" ? created() : outcome;
      },
      confirmUpload: async (id, token, signal) => {
        calls.confirm.push({ id, token });
        if (onConfirm) await onConfirm(signal);
        return next(confirm);
      },
    },
    put: async (url, file, type) => { calls.put.push({ url, type }); return next(put); },
    store: (id, token) => { calls.stored.push([id, token]); return "device"; },
  });
  return { attempt, calls };
}

const net = () => new ApiError(0, "NETWORK_ERROR", "offline");

describe("UploadAttempt", () => {
  test("a 503 on create is retried with the same Idempotency-Key and the upload finishes", async () => {
    const { attempt, calls } = scripted({ create: [new ApiError(503, "SERVICE_UNAVAILABLE", "down")] });
    const result = await attempt.run();
    assert.equal(result.uploadId, "job1");
    assert.equal(calls.create.length, 2);
    assert.equal(calls.create[0].key, calls.create[1].key);
    assert.deepEqual(calls.create[0].body, { email: "maya@example.com", fileType: "image/heic", fileSize: 1234 });
    assert.deepEqual(calls.put.map((put) => put.type), ["image/heic"]);
    assert.deepEqual(calls.stored, [["job1", "token1"]]);
  });

  test("a dropped PUT is sent again to the same URL without a new job", async () => {
    const { attempt, calls } = scripted({ put: [net(), new ApiError(0, "STALLED", "stalled")] });
    await attempt.run();
    assert.equal(calls.create.length, 1);
    assert.deepEqual(calls.put.map((put) => put.url), ["https://storage/url1", "https://storage/url1",
      "https://storage/url1"]);
  });

  test("a refused URL is replaced by replaying the same key", async () => {
    const { attempt, calls } = scripted({ put: [new ApiError(403, "STORAGE_REFUSED", "refused")] });
    await attempt.run();
    assert.equal(calls.create.length, 2);
    assert.equal(calls.create[0].key, calls.create[1].key);
    assert.deepEqual(calls.put.map((put) => put.url), ["https://storage/url1", "https://storage/url2"]);
  });

  test("a URL refused twice stops and offers a retry that resumes with a fresh URL", async () => {
    const refused = () => new ApiError(403, "STORAGE_REFUSED", "refused");
    const { attempt, calls } = scripted({ put: [refused(), refused()] });
    await assert.rejects(attempt.run(), { code: "STORAGE_REFUSED" });
    assert.equal(calls.put.length, 2);
    await attempt.run();
    assert.equal(calls.create.length, 3);
    assert.equal(new Set(calls.create.map((call) => call.key)).size, 1);
    assert.equal(calls.confirm.length, 1);
  });

  test("a URL that expired while waiting is replaced before the PUT", async () => {
    const { attempt, calls } = scripted({
      create: [() => ({ uploadId: "job1", uploadUrl: "https://storage/old", sessionToken: "old",
        expiresAt: new Date(Date.now() - 1000).toISOString() })],
    });
    await attempt.run();
    assert.deepEqual(calls.put.map((put) => put.url), ["https://storage/url1"]);
    assert.deepEqual(calls.confirm, [{ id: "job1", token: "token1" }]);
  });

  test("an expired job starts a fresh attempt with a new key instead of a retry that cannot succeed", async () => {
    const { attempt, calls } = scripted({ confirm: [new ApiError(410, "UPLOAD_EXPIRED", "expired")] });
    const result = await attempt.run();
    assert.equal(calls.create.length, 2);
    assert.notEqual(calls.create[0].key, calls.create[1].key);
    assert.equal(calls.put.length, 2);
    assert.equal(result.uploadId, "job2");
  });

  test("a confirm whose answer was lost finishes when the retry finds it already confirmed", async () => {
    const { attempt, calls } = scripted({
      confirm: [net(), new ApiError(409, "UPLOAD_ALREADY_CONFIRMED", "done")],
    });
    const result = await attempt.run();
    assert.equal(result.uploadId, "job1");
    assert.equal(calls.confirm.length, 2);
    assert.deepEqual(calls.stored, [["job1", "token1"]]);
  });

  test("a validation refusal is not retried and needs new input", async () => {
    const { attempt, calls } = scripted({ create: [new ApiError(400, "VALIDATION_ERROR", "email: bad")] });
    await assert.rejects(attempt.run(), { code: "VALIDATION_ERROR" });
    assert.equal(calls.create.length, 1);
  });

  test("cancelling during the confirm keeps the token of a job that may be confirmed", async () => {
    let release;
    const { attempt, calls } = scripted({
      onConfirm: (signal) => new Promise((resolve, reject) => {
        release = resolve;
        signal.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
      }),
    });
    const running = attempt.run();
    while (!release) await new Promise((resolve) => setTimeout(resolve, 1));
    attempt.cancel();
    await assert.rejects(running, { name: "AbortError" });
    assert.deepEqual(calls.stored, [["job1", "token1"]]);
  });
});

describe("UploadAttempt.cancel", () => {
  function cancellable() {
    const cancels = [];
    let release;
    const attempt = new UploadAttempt(FILE, "maya@example.com", {
      fileType: "image/png",
      timing: TIMING,
      api: {
        createUpload: async () => ({ uploadId: "job1", uploadUrl: "https://storage/url1", sessionToken: "token1",
          expiresAt: new Date(Date.now() + 900000).toISOString() }),
        confirmUpload: async () => "ok",
        cancelUpload: async (id, token) => { cancels.push([id, token]); },
      },
      put: (url, file, type, onProgress, signal) => new Promise((resolve, reject) => {
        release = resolve;
        signal.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
      }),
      store: () => "device",
    });
    return { attempt, cancels, started: async () => { while (!release) await new Promise((r) => setTimeout(r, 1)); } };
  }

  test("cancelling once the job exists cancels it on the server, once, however often Cancel is pressed", async () => {
    const { attempt, cancels, started } = cancellable();
    const running = attempt.run();
    await started();
    attempt.cancel();
    attempt.cancel();
    await assert.rejects(running, { name: "AbortError" });
    await attempt.cancelled;
    assert.deepEqual(cancels, [["job1", "token1"]]);
  });

  test("cancelling before the job exists asks the server nothing", async () => {
    const { attempt, cancels } = cancellable();
    attempt.controller = new AbortController();
    attempt.cancel();
    assert.equal(attempt.cancelled, null);
    assert.deepEqual(cancels, []);
  });

  test("a refused or failed server-side cancel still stops the upload", async () => {
    const attempt = new UploadAttempt(FILE, "maya@example.com", {
      api: { cancelUpload: async () => { throw new ApiError(503, "SERVICE_UNAVAILABLE", "down"); } },
    });
    attempt.controller = new AbortController();
    attempt.created = { uploadId: "job1", sessionToken: "token1" };
    attempt.cancel();
    assert.equal(await attempt.cancelled, null);
    assert.equal(attempt.controller.signal.aborted, true);
  });
});

describe("UploadAttempt.cancel after the upload", () => {
  test("a finished upload is never cancelled on the server (the page's Back button resets the form)", async () => {
    const cancels = [];
    const attempt = new UploadAttempt(FILE, "maya@example.com", {
      fileType: "image/png",
      timing: TIMING,
      api: {
        createUpload: async () => ({ uploadId: "job1", uploadUrl: "https://storage/url1", sessionToken: "token1",
          expiresAt: new Date(Date.now() + 900000).toISOString() }),
        confirmUpload: async () => "ok",
        cancelUpload: async (id) => { cancels.push(id); },
      },
      put: async () => undefined,
      store: () => "device",
    });
    await attempt.run();
    attempt.cancel();
    assert.equal(attempt.cancelled, null);
    assert.deepEqual(cancels, []);
  });
});
