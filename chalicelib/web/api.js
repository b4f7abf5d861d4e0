// A small client for the upload API: JSON in and out, the API's error body turned into an ApiError, and
// X-Session-Token added automatically to job-scoped calls. Every URL starts from the page's API base, so the
// same modules work on the API's own pages (under the stage prefix) and on a front end on another origin.

import { parseRetryAfter } from "./retry.js";
import { getSession } from "./session.js";
import { TIMING } from "./timing.js";

const NETWORK_MESSAGE = "We couldn't reach the server. Check your connection and try again.";

/** An API failure, carrying the server's stable code and its friendly message. */
export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    // Seconds the server asked us to wait (429, 503), from Retry-After; null when it did not say.
    this.retryAfter = retryAfter;
  }
}

/** Thrown when a job-scoped call finds no stored token: send the user back to start. */
export class MissingSessionError extends ApiError {
  constructor(jobId) {
    super(0, "NO_SESSION", "We couldn't find this upload's session on this device. Please start a new upload.");
    this.name = "MissingSessionError";
    this.jobId = jobId;
  }
}

/**
 * The API's base URL, from `<meta name="3d-ultra-api-base" content="...">`: an origin plus stage
 * (`https://api.example.com/api`), a path prefix (`/api`), or absent/empty for this origin's root.
 */
export function apiBase() {
  const meta = document.querySelector('meta[name="3d-ultra-api-base"]');
  return ((meta && meta.getAttribute("content")) || "").trim().replace(/\/+$/, "");
}

/** The URL of an API path (`/api/upload`) under the page's API base. */
export function apiUrl(path) {
  return apiBase() + path;
}

/**
 * The URL of one of the client's pages (`/processing/{jobId}`): pages live one level above the modules'
 * directory (`{pages}/static/*.js`), which holds at a domain's root, under a stage prefix and on a front end.
 */
export function pageUrl(path) {
  return new URL(`..${path}`, import.meta.url).href;
}

/** Call the API and return its JSON body; throws ApiError with the server's code and message. */
export async function apiFetch(path, { method = "GET", body, headers = {}, signal, timeoutMs = TIMING.requestTimeoutMs } = {}) {
  // A request that hangs (a dead connection on a phone) is given up after timeoutMs and reported as a network
  // error, which callers retry: every call is safe to repeat (create by its Idempotency-Key, confirm by its 409).
  const controller = new AbortController();
  const forward = () => controller.abort();
  if (signal && signal.aborted) controller.abort();
  else if (signal) signal.addEventListener("abort", forward, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; controller.abort(); }, timeoutMs);
  let response;
  let payload;
  try {
    response = await fetch(apiUrl(path), {
      method,
      signal: controller.signal,
      headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    payload = await response.json().catch((error) => {
      if (error.name === "AbortError") throw error;
      return null;
    });
  } catch (error) {
    if (error.name === "AbortError" && !timedOut) throw error;
    throw new ApiError(0, "NETWORK_ERROR", NETWORK_MESSAGE);
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", forward);
  }
  if (!response.ok) {
    const error = payload && payload.error;
    throw new ApiError(response.status, error ? error.code : "HTTP_" + response.status,
      error ? error.message : "Something went wrong on our side. Please try again.",
      { retryAfter: parseRetryAfter(response.headers.get("Retry-After")) });
  }
  return payload;
}

/** A job-scoped call: the token is the one given, or the one stored for this job. */
export function jobFetch(jobId, path, { token, ...options } = {}) {
  const sessionToken = token || getSession(jobId);
  if (!sessionToken) throw new MissingSessionError(jobId);
  return apiFetch(path, { ...options, headers: { ...(options.headers || {}), "X-Session-Token": sessionToken } });
}

export function createUpload({ email, fileType, fileSize }, idempotencyKey, signal) {
  return apiFetch("/api/upload", {
    method: "POST", signal, body: { email, fileType, fileSize }, headers: { "Idempotency-Key": idempotencyKey },
  });
}

export function confirmUpload(jobId, token, signal) {
  return jobFetch(jobId, `/api/upload/${encodeURIComponent(jobId)}/confirm`, { method: "POST", token, signal });
}

/** Cancel a pending job (204, also when it was cancelled before); its photo is deleted by the server. */
export function cancelUpload(jobId, token) {
  return jobFetch(jobId, `/api/upload/${encodeURIComponent(jobId)}`, { method: "DELETE", token });
}

export function getJob(jobId) {
  return jobFetch(jobId, `/api/upload/${encodeURIComponent(jobId)}`);
}
