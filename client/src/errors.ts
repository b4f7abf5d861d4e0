// Every failure the client reports is an ApiError with a stable code: the server's (generated from the API's
// OpenAPI document, so a new server code shows up here as a type) or the client's own.

import type { components } from "./generated/openapi.js";

/** The codes the API answers with, from chalicelib/openapi.json. */
export type ServerErrorCode = components["schemas"]["ErrorCode"];

/** The codes the client gives failures that never reached the API, or that it found on its own. */
export type ClientErrorCode =
  /** The API could not be reached, or did not answer in time (retried by itself). */
  | "NETWORK_ERROR"
  /** The photo's PUT made no progress for `stallMs` (retried by itself). */
  | "STALLED"
  /** No session token is stored on this device for the job (never retried). */
  | "NO_SESSION"
  /** Storage answered the PUT with a 4xx: the URL expired or was signed for something else. */
  | "STORAGE_REFUSED"
  /** Storage could not be reached for the PUT (retried by itself). */
  | "STORAGE_UNREACHABLE"
  /** The file is not one the API accepts (type, size, or contents): refused before anything is sent. */
  | "INVALID_FILE"
  /** The API answered with a status and no error body of its own (a proxy's page, say). */
  | "UNEXPECTED_RESPONSE";

export type ErrorCode = ServerErrorCode | ClientErrorCode;

export interface ApiErrorOptions {
  /** Seconds the server asked us to wait (429, 503), from Retry-After. */
  retryAfter?: number | null;
  /** The id API Gateway gave the request (x-amzn-RequestId), which finds it in every log; null without an answer. */
  requestId?: string | null;
}

/** An API failure, carrying a stable code and a message fit to show a person. */
export class ApiError extends Error {
  override readonly name: string = "ApiError";
  /** The HTTP status; 0 when no answer came (network, timeout) or the client refused on its own. */
  readonly status: number;
  readonly code: ErrorCode;
  /** Seconds the server asked us to wait before trying again (429, 503); null when it did not say. */
  readonly retryAfter: number | null;
  /** The request's id (x-amzn-RequestId) for an error report: support finds the request's log lines by it. */
  readonly requestId: string | null;

  constructor(status: number, code: ErrorCode, message: string,
    { retryAfter = null, requestId = null }: ApiErrorOptions = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.requestId = requestId;
  }
}

export const NO_SESSION_MESSAGE = "We couldn't find this upload's session on this device. Please start a new upload.";

/** A job-scoped call found no token for the job: send the person back to start. Never retried. */
export class MissingSessionError extends ApiError {
  override readonly name: string = "MissingSessionError";
  declare readonly code: "NO_SESSION";
  readonly jobId: string;

  constructor(jobId: string) {
    super(0, "NO_SESSION", NO_SESSION_MESSAGE);
    this.jobId = jobId;
  }
}

/** The DOMException a cancel rejects with (name "AbortError"), as fetch does. */
export function abortError(): DOMException {
  return new DOMException("Upload cancelled", "AbortError");
}

/** True for a cancel (an AbortError), which is never reported as a failure. */
export function isAbort(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { name?: unknown }).name === "AbortError";
}

/** Anything thrown, as an ApiError (an unexpected exception keeps its message under INTERNAL_ERROR). */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const message = error instanceof Error && error.message ? error.message : "Something went wrong. Please try again.";
  return new ApiError(0, "INTERNAL_ERROR", message);
}
