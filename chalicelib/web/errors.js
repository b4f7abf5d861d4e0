// Built from client/src/errors.ts by `npm run build:web` in client/: edit the source, not this file.
// Every failure the client reports is an ApiError with a stable code: the server's (generated from the API's
// OpenAPI document, so a new server code shows up here as a type) or the client's own.
/** An API failure, carrying a stable code and a message fit to show a person. */
export class ApiError extends Error {
    name = "ApiError";
    /** The HTTP status; 0 when no answer came (network, timeout) or the client refused on its own. */
    status;
    code;
    /** Seconds the server asked us to wait before trying again (429, 503); null when it did not say. */
    retryAfter;
    /** The request's id (x-amzn-RequestId) for an error report: support finds the request's log lines by it. */
    requestId;
    constructor(status, code, message, { retryAfter = null, requestId = null } = {}) {
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
    name = "MissingSessionError";
    jobId;
    constructor(jobId) {
        super(0, "NO_SESSION", NO_SESSION_MESSAGE);
        this.jobId = jobId;
    }
}
/** The DOMException a cancel rejects with (name "AbortError"), as fetch does. */
export function abortError() {
    return new DOMException("Upload cancelled", "AbortError");
}
/** True for a cancel (an AbortError), which is never reported as a failure. */
export function isAbort(error) {
    return typeof error === "object" && error !== null && error.name === "AbortError";
}
/** Anything thrown, as an ApiError (an unexpected exception keeps its message under INTERNAL_ERROR). */
export function toApiError(error) {
    if (error instanceof ApiError)
        return error;
    const message = error instanceof Error && error.message ? error.message : "Something went wrong. Please try again.";
    return new ApiError(0, "INTERNAL_ERROR", message);
}
