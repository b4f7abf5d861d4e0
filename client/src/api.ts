// A typed client for the upload API: JSON in and out, the API's error body turned into an ApiError, and
// X-Session-Token added to job-scoped calls (the token given, else the one stored for the job). Every URL starts
// from the base given to createClient, so the same code serves the API's own pages (under the stage prefix) and
// a front end on another origin. Reading a job's status also works with the read-only view credential of an
// emailed link (X-View-Token), on a device that never held the session.

import { ApiError, MissingSessionError, isAbort } from "./errors.js";
import type { components } from "./generated/openapi.js";
import { randomId } from "./ids.js";
import { parseRetryAfter } from "./retry.js";
import { getSession, getViewToken, type StorageErrorHandler, type StorageFailure } from "./session.js";
import { resolveTiming, type Timing } from "./timing.js";

type Schemas = components["schemas"];
export type CreateUploadBody = Schemas["CreateUpload"];
export type UploadCreated = Schemas["UploadCreated"];
export type Confirmed = Schemas["Confirmed"];
export type JobStatus = Schemas["JobStatus"];
export type Limits = Schemas["Limits"];
export type RetryStarted = Schemas["RetryStarted"];
export type FileType = Schemas["FileType"];

export const NETWORK_MESSAGE = "We couldn't reach the server. Check your connection and try again.";
const UNEXPECTED_MESSAGE = "Something went wrong on our side. Please try again.";

/** What went wrong outside the person's view: storage refused a token, say. For your error reporter. */
export type ErrorContext = StorageFailure;
export type ErrorHandler = StorageErrorHandler;

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /**
   * What precedes `/api/upload`: `http://127.0.0.1:8000` for `make dev`, the stage URL when deployed
   * (`https://abc.execute-api.eu-central-1.amazonaws.com/api`), or `""` for the page's own origin.
   */
  baseUrl: string;
  /** The fetch to use (default: the global one, looked up at call time). */
  fetch?: FetchLike | undefined;
  /** Retry, timeout, stall and poll timings; any left out keep the product's defaults. */
  timing?: Partial<Timing> | undefined;
  /** Told of failures the person is not shown (storage refusing a token): e.g. Sentry.captureException. */
  onError?: ErrorHandler | undefined;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

export interface JobCallOptions extends CallOptions {
  /** The job's session token; default: the one stored on this device for the job. */
  token?: string | null | undefined;
}

export interface ReadJobOptions extends JobCallOptions {
  /**
   * The read-only view credential of an emailed link, used when there is no session token (given or stored);
   * default: the one stored on this device for the job (see takeViewToken).
   */
  viewToken?: string | null | undefined;
}

export interface CreateOptions extends CallOptions {
  /** Once per upload attempt: a replay returns the same job with a fresh URL and token. Default: a new key. */
  idempotencyKey?: string | undefined;
}

export interface UploadClient {
  readonly baseUrl: string;
  readonly timing: Timing;
  readonly onError: ErrorHandler | undefined;
  /** POST /api/upload: a pending job and a presigned PUT URL (send exactly `fileType` and `fileSize` bytes). */
  createUpload(body: CreateUploadBody, options?: CreateOptions): Promise<UploadCreated>;
  /** POST /api/upload/{id}/confirm, once the photo is in storage. */
  confirmUpload(uploadId: string, options?: JobCallOptions): Promise<Confirmed>;
  /**
   * GET /api/upload/{id}: the job's status, with its progress, and fresh links to the preview and the model
   * (each valid for 15 minutes). Sends the session token, or else the job's view credential.
   */
  getJob(jobId: string, options?: ReadJobOptions): Promise<JobStatus>;
  /** POST /api/upload/{id}/retry: process a failed job again (409 JOB_NOT_RETRYABLE or RETRY_LIMIT_REACHED). */
  retryJob(uploadId: string, options?: JobCallOptions): Promise<RetryStarted>;
  /** DELETE /api/upload/{id}: withdraw an upload that is not confirmed yet (repeating it is harmless). */
  cancelUpload(uploadId: string, options?: JobCallOptions): Promise<void>;
  /** GET /api/upload/limits: the largest photo and the accepted types. */
  limits(options?: CallOptions): Promise<Limits>;
}

interface RequestSpec extends CallOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

function errorBody(payload: unknown): { code: string; message: string } | null {
  if (typeof payload !== "object" || payload === null) return null;
  const error = (payload as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return null;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return typeof code === "string" && typeof message === "string" ? { code, message } : null;
}

/** A client for the API under `baseUrl`. Creating one touches nothing (safe during server rendering). */
export function createClient(options: ClientOptions): UploadClient {
  if (typeof options?.baseUrl !== "string") throw new TypeError("createClient: baseUrl must be a string");
  const baseUrl = options.baseUrl.trim().replace(/\/+$/, "");
  const timing = resolveTiming(options.timing);
  const onError = options.onError;

  async function request<T>(path: string, { method = "GET", body, headers = {}, signal }: RequestSpec = {}): Promise<T> {
    // A request that hangs (a dead connection on a phone) is given up after requestTimeoutMs and reported as a
    // network error, which callers retry: every call is safe to repeat (create by its Idempotency-Key, confirm
    // by its 409, cancel by its 204).
    const fetchImpl: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const controller = new AbortController();
    const forward = (): void => controller.abort();
    if (signal?.aborted) controller.abort();
    else signal?.addEventListener("abort", forward, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timing.requestTimeoutMs);
    let response: Response;
    let payload: unknown;
    try {
      response = await fetchImpl(baseUrl + path, {
        method,
        signal: controller.signal,
        // The API never redirects: following one would send the token, the Idempotency-Key and the create's body
        // to wherever the redirect points. A redirect fails the request instead (reported as NETWORK_ERROR).
        redirect: "error",
        headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
        body: body === undefined ? null : JSON.stringify(body),
      });
      payload = await response.json().catch((error: unknown) => {
        if (isAbort(error)) throw error;
        return null;
      });
    } catch (error) {
      if (isAbort(error) && !timedOut) throw error;
      throw new ApiError(0, "NETWORK_ERROR", NETWORK_MESSAGE);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", forward);
    }
    if (!response.ok) {
      const error = errorBody(payload);
      throw new ApiError(response.status, error ? (error.code as ApiError["code"]) : "UNEXPECTED_RESPONSE",
        error ? error.message : UNEXPECTED_MESSAGE,
        { retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
          requestId: response.headers.get("x-amzn-RequestId") });
    }
    return payload as T;
  }

  // async, so that a missing token is a rejected promise like every other failure, never a throw at the call.
  async function jobRequest<T>(jobId: string, path: string, { token, ...spec }: RequestSpec & JobCallOptions): Promise<T> {
    const sessionToken = token || getSession(jobId, { onError });
    if (!sessionToken) throw new MissingSessionError(jobId);
    return request<T>(path, { ...spec, headers: { ...spec.headers, "X-Session-Token": sessionToken } });
  }

  async function readJob(jobId: string, path: string, { token, viewToken, ...spec }: RequestSpec & ReadJobOptions) {
    const sessionToken = token || getSession(jobId, { onError });
    if (sessionToken) return request<JobStatus>(path, { ...spec, headers: { "X-Session-Token": sessionToken } });
    const view = viewToken || getViewToken(jobId, { onError });
    if (!view) throw new MissingSessionError(jobId);
    return request<JobStatus>(path, { ...spec, headers: { "X-View-Token": view } });
  }

  const jobPath = (jobId: string): string => `/api/upload/${encodeURIComponent(jobId)}`;

  return Object.freeze({
    baseUrl,
    timing,
    onError,
    createUpload: (body, { idempotencyKey = randomId(), signal } = {}) => request<UploadCreated>("/api/upload", {
      method: "POST",
      signal,
      body: { email: body.email, fileType: body.fileType, fileSize: body.fileSize },
      headers: { "Idempotency-Key": idempotencyKey },
    }),
    confirmUpload: (uploadId, callOptions = {}) => jobRequest<Confirmed>(uploadId, `${jobPath(uploadId)}/confirm`,
      { ...callOptions, method: "POST" }),
    getJob: (jobId, callOptions = {}) => readJob(jobId, jobPath(jobId), callOptions),
    retryJob: (uploadId, callOptions = {}) => jobRequest<RetryStarted>(uploadId, `${jobPath(uploadId)}/retry`,
      { ...callOptions, method: "POST", body: {} }),
    cancelUpload: async (uploadId, callOptions = {}) => {
      await jobRequest<unknown>(uploadId, jobPath(uploadId), { ...callOptions, method: "DELETE" });
    },
    limits: (callOptions = {}) => request<Limits>("/api/upload/limits", callOptions),
  } satisfies UploadClient);
}
