import { afterEach, describe, expect, test, vi } from "vitest";

import { ApiError, MissingSessionError, SESSION_PREFIX, createClient, randomId, type FetchLike } from "../src/index.js";
import { installStorages, removeStorages } from "./helpers.js";

afterEach(removeStorages);

interface Recorded {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A fetch answering `responses` in turn (the last one again when they run out), recording each request. */
function recordingFetch(...responses: (() => Response)[]): { fetch: FetchLike; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const fetch: FetchLike = async (url, init) => {
    requests.push({ url, method: init.method ?? "GET", headers: (init.headers ?? {}) as Record<string, string>,
      body: typeof init.body === "string" ? JSON.parse(init.body) : null });
    const next = responses.length > 1 ? responses.shift() : responses[0];
    return next ? next() : new Response(null, { status: 204 });
  };
  return { fetch, requests };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => () => new Response(
  JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

const CREATED = { uploadUrl: "https://storage/u", uploadId: "abcdefghijklmnopqrstuvwx", key: "k",
  expiresAt: "2026-11-28T19:00:00Z", sessionToken: "11111111-2222-4333-8444-555555555555" };

describe("createClient", () => {
  test("calls go under the base given, with a trailing slash dropped (a stage URL keeps its stage)", async () => {
    const { fetch, requests } = recordingFetch(json(CREATED, 201));
    const client = createClient({ baseUrl: "https://x.execute-api.eu-central-1.amazonaws.com/api/", fetch });
    const created = await client.createUpload({ email: "maya@example.com", fileType: "image/png", fileSize: 10 },
      { idempotencyKey: "key-1" });

    expect(created).toEqual(CREATED);
    expect(requests).toEqual([{ url: "https://x.execute-api.eu-central-1.amazonaws.com/api/api/upload", method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": "key-1" },
      body: { email: "maya@example.com", fileType: "image/png", fileSize: 10 } }]);
  });

  test("a create without a key gets a fresh one", async () => {
    const { fetch, requests } = recordingFetch(json(CREATED, 201));
    await createClient({ baseUrl: "", fetch }).createUpload({ email: "a@example.com", fileType: "image/png", fileSize: 1 });
    expect(requests[0]?.headers["Idempotency-Key"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("job-scoped calls send the stored token, or the one given", async () => {
    const { local } = installStorages();
    local?.setItem(`${SESSION_PREFIX}job1`, "stored-token");
    const { fetch, requests } = recordingFetch(json({ success: true, jobId: "job1", status: "pending" }),
      json({ jobId: "job1", status: "pending", fileType: "image/png", fileSize: 1, createdAt: "x", confirmedAt: null }),
      () => new Response(null, { status: 204 }));
    const client = createClient({ baseUrl: "http://127.0.0.1:8000", fetch });
    await client.confirmUpload("job1", { token: "given-token" });
    await client.getJob("job1");
    await client.cancelUpload("job1");

    expect(requests.map((r) => [r.method, r.url, r.headers["X-Session-Token"]])).toEqual([
      ["POST", "http://127.0.0.1:8000/api/upload/job1/confirm", "given-token"],
      ["GET", "http://127.0.0.1:8000/api/upload/job1", "stored-token"],
      ["DELETE", "http://127.0.0.1:8000/api/upload/job1", "stored-token"],
    ]);
  });

  test("retryJob POSTs {} with the session token and answers the new attempt", async () => {
    const { local } = installStorages();
    local?.setItem(`${SESSION_PREFIX}job1`, "stored-token");
    const { fetch, requests } = recordingFetch(json({ jobId: "job1", status: "pending", attempt: 2 }, 202));
    const started = await createClient({ baseUrl: "", fetch }).retryJob("job1");
    expect(started).toEqual({ jobId: "job1", status: "pending", attempt: 2 });
    expect(requests).toEqual([{ url: "/api/upload/job1/retry", method: "POST", body: {},
      headers: { "Content-Type": "application/json", "X-Session-Token": "stored-token" } }]);
  });

  test("a refused retry is an ApiError with the server's code", async () => {
    const { fetch } = recordingFetch(json({ error: { code: "RETRY_LIMIT_REACHED", message: "Tried enough." } }, 409));
    await expect(createClient({ baseUrl: "", fetch }).retryJob("job1", { token: "t" }))
      .rejects.toMatchObject({ status: 409, code: "RETRY_LIMIT_REACHED" });
  });

  test("without a session token, getJob sends the view credential (given or stored) and nothing else", async () => {
    const { local } = installStorages();
    local?.setItem("3d-ultra-view-job1", "stored-view");
    const { fetch, requests } = recordingFetch(json({}));
    const client = createClient({ baseUrl: "", fetch });
    await client.getJob("job1");
    await client.getJob("job1", { viewToken: "given-view" });
    expect(requests.map((r) => r.headers)).toEqual([{ "X-View-Token": "stored-view" }, { "X-View-Token": "given-view" }]);
    // The view credential never stands in for the session: confirm, cancel and retry have no token to send.
    await expect(client.retryJob("job1")).rejects.toBeInstanceOf(MissingSessionError);
    await expect(client.cancelUpload("job1")).rejects.toBeInstanceOf(MissingSessionError);
    expect(requests).toHaveLength(2);
  });

  test("with both, getJob sends only the session token", async () => {
    const { local } = installStorages();
    local?.setItem(`${SESSION_PREFIX}job1`, "stored-token");
    local?.setItem("3d-ultra-view-job1", "stored-view");
    const { fetch, requests } = recordingFetch(json({}));
    await createClient({ baseUrl: "", fetch }).getJob("job1");
    expect(requests[0]?.headers).toEqual({ "X-Session-Token": "stored-token" });
  });

  test("a job id is escaped into its path", async () => {
    const { fetch, requests } = recordingFetch(json({}));
    await createClient({ baseUrl: "", fetch }).getJob("a/b?c", { token: "t" });
    expect(requests[0]?.url).toBe("/api/upload/a%2Fb%3Fc");
  });

  test("a missing token is a rejected promise with MissingSessionError (NO_SESSION), nothing is sent", async () => {
    const { fetch, requests } = recordingFetch(json({}));
    const client = createClient({ baseUrl: "", fetch });
    let pending: Promise<unknown> | undefined;
    expect(() => { pending = client.getJob("job1"); }).not.toThrow();
    await expect(pending).rejects.toBeInstanceOf(MissingSessionError);
    await expect(client.confirmUpload("job1")).rejects.toMatchObject({ code: "NO_SESSION", status: 0, jobId: "job1",
      message: "We couldn't find this upload's session on this device. Please start a new upload." });
    await expect(client.cancelUpload("job1")).rejects.toBeInstanceOf(ApiError);
    expect(requests).toEqual([]);
  });

  test("an error body becomes an ApiError with the server's code, message and Retry-After", async () => {
    const { fetch } = recordingFetch(json({ error: { code: "RATE_LIMITED",
      message: "Too many uploads right now. Please try again in 2 minutes." } }, 429, { "Retry-After": "120" }));
    await expect(createClient({ baseUrl: "", fetch }).createUpload({ email: "a@example.com", fileType: "image/png", fileSize: 1 }))
      .rejects.toMatchObject({ name: "ApiError", status: 429, code: "RATE_LIMITED", retryAfter: 120,
        message: "Too many uploads right now. Please try again in 2 minutes." });
  });

  test("an error carries the request's id for an error report, and none when no answer came", async () => {
    const { fetch } = recordingFetch(json({ error: { code: "SERVICE_UNAVAILABLE", message: "Try again." } }, 503,
      { "x-amzn-RequestId": "5b1f0c2e-req" }));
    await expect(createClient({ baseUrl: "", fetch }).limits())
      .rejects.toMatchObject({ status: 503, code: "SERVICE_UNAVAILABLE", requestId: "5b1f0c2e-req" });
    const offline = createClient({ baseUrl: "", fetch: () => Promise.reject(new TypeError("Failed to fetch")) });
    await expect(offline.limits()).rejects.toMatchObject({ code: "NETWORK_ERROR", requestId: null });
  });

  test("a cancelled upload answers 410 UPLOAD_CANCELLED as a typed code", async () => {
    const { fetch } = recordingFetch(json({ error: { code: "UPLOAD_CANCELLED", message: "This upload was cancelled." } }, 410));
    const failure = await createClient({ baseUrl: "", fetch }).getJob("job1", { token: "t" }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApiError);
    expect((failure as ApiError).code).toBe("UPLOAD_CANCELLED");
  });

  test("a 5xx without a JSON body still gets a sentence", async () => {
    const { fetch } = recordingFetch(() => new Response("<html>Bad gateway</html>", { status: 502 }));
    await expect(createClient({ baseUrl: "", fetch }).limits()).rejects.toMatchObject({ status: 502,
      code: "UNEXPECTED_RESPONSE", message: "Something went wrong on our side. Please try again." });
  });

  test("an unreachable server is a NETWORK_ERROR (status 0)", async () => {
    const fetch: FetchLike = async () => { throw new TypeError("Failed to fetch"); };
    await expect(createClient({ baseUrl: "", fetch }).limits()).rejects.toMatchObject({ status: 0, code: "NETWORK_ERROR" });
  });

  test("a request with no answer is given up after requestTimeoutMs as a network error", async () => {
    const fetch: FetchLike = (_, init) => new Promise((_resolve, reject) => {
      init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    });
    await expect(createClient({ baseUrl: "", fetch, timing: { requestTimeoutMs: 20 } }).limits())
      .rejects.toMatchObject({ code: "NETWORK_ERROR", status: 0 });
  });

  test("a cancel stays a cancel, not a network error", async () => {
    const fetch: FetchLike = (_, init) => new Promise((_resolve, reject) => {
      init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    });
    const controller = new AbortController();
    const request = createClient({ baseUrl: "", fetch }).limits({ signal: controller.signal });
    controller.abort();
    await expect(request).rejects.toMatchObject({ name: "AbortError" });
  });

  test("limits are read from GET /api/upload/limits", async () => {
    const limits = { maxUploadBytes: 20971520, fileTypes: ["image/jpeg", "image/png", "image/webp", "image/heic"] };
    const { fetch, requests } = recordingFetch(json(limits));
    expect(await createClient({ baseUrl: "http://127.0.0.1:8000", fetch }).limits()).toEqual(limits);
    expect(requests[0]?.url).toBe("http://127.0.0.1:8000/api/upload/limits");
  });

  test("the global fetch is looked up at call time, not when the client is made", async () => {
    const client = createClient({ baseUrl: "" });
    const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async () => new Response(JSON.stringify({ maxUploadBytes: 1, fileTypes: [] })));
    await client.limits();
    expect(spy).toHaveBeenCalledOnce();
  });

  test("a client without a base is a mistake said at once", () => {
    expect(() => createClient({} as never)).toThrow("createClient: baseUrl must be a string");
  });
});

describe("idempotency keys", () => {
  test("crypto.randomUUID is used where the browser has it", () => {
    expect(randomId({ randomUUID: () => "from-random-uuid" })).toBe("from-random-uuid");
  });

  test("without randomUUID (an insecure origin) a version 4 UUID is made from getRandomValues", () => {
    const getRandomValues = (array: Uint8Array): Uint8Array => globalThis.crypto.getRandomValues(array);
    const keys = new Set(Array.from({ length: 50 }, () => randomId({ getRandomValues })));
    expect(keys.size).toBe(50);
    for (const key of keys) expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test("without any crypto the failure is named", () => {
    expect(() => randomId({})).toThrow("no crypto.getRandomValues");
  });
});
