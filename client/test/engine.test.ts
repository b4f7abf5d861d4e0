import { afterEach, beforeEach, describe, expect, test } from "vitest";

import {
  ApiError, CURRENT_JOB_KEY, PENDING_UPLOAD_KEY, SESSION_PREFIX, UploadEngine, getPendingUpload,
  type UploadEvent, type UploadStatus,
} from "../src/index.js";
import { MemoryStorage, heic, installStorages, jpeg, net, removeStorages, scriptedClient, scriptedPut } from "./helpers.js";

let local: MemoryStorage;
let session: MemoryStorage;
beforeEach(() => {
  local = new MemoryStorage();
  session = new MemoryStorage();
  installStorages({ local, session });
});
afterEach(removeStorages);

function engineFor(script: Parameters<typeof scriptedClient>[0] = {}, puts: (Error | "ok")[] = []) {
  const { client, calls } = scriptedClient(script);
  const engine = new UploadEngine({ client, put: scriptedPut(calls, puts), maxBytes: 20971520 });
  const statuses: UploadStatus[] = [];
  const events: UploadEvent[] = [];
  engine.subscribe((event, state) => {
    events.push(event);
    if (statuses.at(-1) !== state.status) statuses.push(state.status);
  });
  return { engine, calls, statuses, events };
}

describe("the upload engine", () => {
  test("an upload goes creating, uploading, confirming, done and stores the story's keys when confirmed", async () => {
    const { engine, calls, statuses } = engineFor();
    const result = await engine.start(jpeg(), " maya@example.com ");

    expect(result).toEqual({ uploadId: "job1", sessionToken: "token1", persistence: "device" });
    expect(statuses).toEqual(["creating", "uploading", "confirming", "done"]);
    expect(calls.create[0]?.body).toEqual({ email: "maya@example.com", fileType: "image/jpeg", fileSize: 1234 });
    expect(calls.put).toEqual([{ url: "https://storage/url1", type: "image/jpeg", size: 1234 }]);
    expect(local.getItem(`${SESSION_PREFIX}job1`)).toBe("token1");
    expect(local.getItem(CURRENT_JOB_KEY)).toBe("job1");
    expect(session.getItem(PENDING_UPLOAD_KEY)).toBeNull();
    expect(engine.state).toMatchObject({ status: "done", progress: 100, uploadId: "job1", error: null });
  });

  test("an iPhone photo with an empty type is declared as HEIC from its first bytes", async () => {
    const { engine, calls } = engineFor();
    await engine.start(heic(), "maya@example.com");

    expect(calls.create[0]?.body).toMatchObject({ fileType: "image/heic" });
    expect(calls.put[0]?.type).toBe("image/heic");
  });

  test("a file that is not an accepted image is refused before anything is sent", async () => {
    const { engine, calls } = engineFor();
    const text = new File(["hello world"], "notes.txt", { type: "text/plain" });

    await expect(engine.start(text, "maya@example.com")).rejects.toMatchObject({ code: "INVALID_FILE", status: 0,
      message: "Please choose a JPEG, PNG, WebP or HEIC image." });
    expect(calls.create).toEqual([]);
    expect(engine.state.status).toBe("error");
  });

  test("a photo over the limit is refused with its size and the limit", async () => {
    const { engine, calls } = engineFor();
    await expect(engine.start(jpeg(21 * 1048576), "maya@example.com")).rejects.toMatchObject({
      code: "INVALID_FILE", message: "That photo is 21.0 MB; the limit is 20 MB." });
    expect(calls.create).toEqual([]);
  });

  test("a 503 on create is retried with the same Idempotency-Key, the wait reported as an event", async () => {
    const { engine, calls, statuses, events } = engineFor({ create: [new ApiError(503, "SERVICE_UNAVAILABLE", "down")] });
    await engine.start(jpeg(), "maya@example.com");

    expect(calls.create).toHaveLength(2);
    expect(calls.create[0]?.key).toBe(calls.create[1]?.key);
    expect(calls.create[0]?.key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(statuses.slice(0, 3)).toEqual(["creating", "waiting", "creating"]);
    expect(events).toContainEqual({ type: "wait", wait: expect.objectContaining({ reason: "retry", step: "creating", delayMs: 0 }) });
  });

  test("a dropped PUT is sent again to the same URL without a new job", async () => {
    const { engine, calls } = engineFor({}, [net(), new ApiError(0, "STALLED", "stalled")]);
    await engine.start(jpeg(), "maya@example.com");

    expect(calls.create).toHaveLength(1);
    expect(calls.put.map((put) => put.url)).toEqual(["https://storage/url1", "https://storage/url1", "https://storage/url1"]);
  });

  test("a refused URL is replaced by replaying the same key", async () => {
    const { engine, calls } = engineFor({}, [new ApiError(403, "STORAGE_REFUSED", "refused")]);
    await engine.start(jpeg(), "maya@example.com");

    expect(calls.create).toHaveLength(2);
    expect(calls.create[0]?.key).toBe(calls.create[1]?.key);
    expect(calls.put.map((put) => put.url)).toEqual(["https://storage/url1", "https://storage/url2"]);
  });

  test("a URL refused twice stops, and retry() resumes with a fresh URL under the same key", async () => {
    const refused = (): ApiError => new ApiError(403, "STORAGE_REFUSED", "refused");
    const { engine, calls } = engineFor({}, [refused(), refused()]);
    await expect(engine.start(jpeg(), "maya@example.com")).rejects.toMatchObject({ code: "STORAGE_REFUSED" });
    expect(engine.state).toMatchObject({ status: "error", uploaded: false });

    await engine.retry();
    expect(calls.create).toHaveLength(3);
    expect(new Set(calls.create.map((call) => call.key)).size).toBe(1);
    expect(calls.confirm).toHaveLength(1);
  });

  test("a URL that expired while waiting is replaced before the PUT", async () => {
    const { engine, calls } = engineFor({ create: [() => ({ uploadId: "job1", uploadUrl: "https://storage/old",
      key: "k", sessionToken: "old", expiresAt: new Date(Date.now() - 1000).toISOString() })] });
    await engine.start(jpeg(), "maya@example.com");

    expect(calls.put.map((put) => put.url)).toEqual(["https://storage/url1"]);
    expect(calls.confirm).toEqual([{ id: "job1", token: "token1" }]);
  });

  test("an expired job (410) starts a fresh attempt with a new key instead of a retry that cannot succeed", async () => {
    const { engine, calls } = engineFor({ confirm: [new ApiError(410, "UPLOAD_EXPIRED", "expired")] });
    const result = await engine.start(jpeg(), "maya@example.com");

    expect(calls.create).toHaveLength(2);
    expect(calls.create[0]?.key).not.toBe(calls.create[1]?.key);
    expect(calls.put).toHaveLength(2);
    expect(result.uploadId).toBe("job2");
  });

  test("a confirm whose answer was lost finishes when the retry finds it already confirmed", async () => {
    const { engine, calls } = engineFor({ confirm: [net(), new ApiError(409, "UPLOAD_ALREADY_CONFIRMED", "done")] });
    const result = await engine.start(jpeg(), "maya@example.com");

    expect(result.uploadId).toBe("job1");
    expect(calls.confirm).toHaveLength(2);
  });

  test("a validation refusal is not retried and needs new input", async () => {
    const { engine, calls } = engineFor({ create: [new ApiError(400, "VALIDATION_ERROR", "email: bad")] });
    await expect(engine.start(jpeg(), "maya@example.com")).rejects.toMatchObject({ code: "VALIDATION_ERROR" });
    expect(calls.create).toHaveLength(1);
  });

  test("while the confirm keeps failing, the attempt waits in sessionStorage and the story's keys are not written", async () => {
    const failing = Array.from({ length: 6 }, () => new ApiError(503, "SERVICE_UNAVAILABLE", "down"));
    const { engine } = engineFor({ confirm: failing });
    await expect(engine.start(jpeg(), "maya@example.com")).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE" });

    expect(engine.state).toMatchObject({ status: "error", uploaded: true, uploadId: "job1" });
    expect(getPendingUpload()).toEqual({ uploadId: "job1", sessionToken: "token1" });
    expect(local.getItem(`${SESSION_PREFIX}job1`)).toBeNull();
  });

  test("after a reload, a fresh engine confirms the kept attempt without the file", async () => {
    session.setItem(PENDING_UPLOAD_KEY, JSON.stringify({ uploadId: "job7", sessionToken: "token7" }));
    const { engine, calls, statuses } = engineFor();
    const result = await engine.resumeConfirm();

    expect(result).toEqual({ uploadId: "job7", sessionToken: "token7", persistence: "device" });
    expect(statuses).toEqual(["confirming", "done"]);
    expect(calls.create).toEqual([]);
    expect(calls.put).toEqual([]);
    expect(calls.confirm).toEqual([{ id: "job7", token: "token7" }]);
    expect(local.getItem(`${SESSION_PREFIX}job7`)).toBe("token7");
    expect(session.getItem(PENDING_UPLOAD_KEY)).toBeNull();
  });

  test("nothing to resume gives null", () => {
    const { engine } = engineFor();
    expect(engine.resumeConfirm()).toBeNull();
  });

  test("confirm(uploadId) of a job with no token anywhere rejects with MissingSessionError and sends nothing", async () => {
    const { engine, calls } = engineFor();
    await expect(engine.confirm("job9")).rejects.toMatchObject({ name: "MissingSessionError", code: "NO_SESSION", jobId: "job9" });
    expect(calls.confirm).toEqual([]);
  });

  test("confirm(uploadId) of its own job whose PUT failed asks the API with the job's token", async () => {
    const { engine, calls } = engineFor({ confirm: [new ApiError(409, "UPLOAD_NOT_VERIFIED", "not there")] },
      Array.from({ length: 6 }, net));
    await expect(engine.start(jpeg(), "maya@example.com")).rejects.toMatchObject({ code: "NETWORK_ERROR" });
    await expect(engine.confirm("job1")).rejects.toMatchObject({ code: "UPLOAD_NOT_VERIFIED" });
    expect(calls.confirm).toEqual([{ id: "job1", token: "token1" }]);
  });

  test("a kept attempt refused as expired is forgotten, so a reload does not try it again", async () => {
    session.setItem(PENDING_UPLOAD_KEY, JSON.stringify({ uploadId: "job7", sessionToken: "token7" }));
    const { engine } = engineFor({ confirm: [new ApiError(410, "UPLOAD_EXPIRED", "expired")] });
    await expect(engine.resumeConfirm()).rejects.toMatchObject({ code: "UPLOAD_EXPIRED" });
    expect(session.getItem(PENDING_UPLOAD_KEY)).toBeNull();
  });

  test("cancelling during the confirm keeps the token of a job that may be confirmed", async () => {
    let release: (() => void) | undefined;
    const { engine } = engineFor({
      onConfirm: (signal) => new Promise((resolve, reject) => {
        release = resolve;
        signal?.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
      }),
    });
    const running = engine.start(jpeg(), "maya@example.com");
    while (!release) await new Promise((resolve) => setTimeout(resolve, 1));
    engine.cancel();

    await expect(running).rejects.toMatchObject({ name: "AbortError" });
    expect(local.getItem(`${SESSION_PREFIX}job1`)).toBe("token1");
    expect(engine.state.status).toBe("idle");
  });

  test("cancelling during the PUT withdraws the job (DELETE) and keeps no token", async () => {
    const { client, calls } = scriptedClient();
    let started: (() => void) | undefined;
    const put = ({ signal }: { signal: AbortSignal }) => new Promise<void>((_, reject) => {
      started?.();
      signal.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
    });
    const engine = new UploadEngine({ client, put });
    const putStarted = new Promise<void>((resolve) => { started = resolve; });
    const running = engine.start(jpeg(), "maya@example.com");
    await putStarted;
    engine.cancel();

    await expect(running).rejects.toMatchObject({ name: "AbortError" });
    expect(calls.cancel).toEqual([{ id: "job1", token: "token1" }]);
    expect(local.items.size).toBe(0);
    expect(engine.state.status).toBe("idle");
  });

  test("without storage (server rendering, private mode) the upload still finishes and says the token is kept nowhere", async () => {
    removeStorages();
    const { engine } = engineFor();
    const result = await engine.start(jpeg(), "maya@example.com");
    expect(result.persistence).toBeNull();
  });
});
