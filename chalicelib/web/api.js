// Built from client/src/api.ts by `npm run build:web` in client/: edit the source, not this file.
// A typed client for the upload API: JSON in and out, the API's error body turned into an ApiError, and
// X-Session-Token added to job-scoped calls (the token given, else the one stored for the job). Every URL starts
// from the base given to createClient, so the same code serves the API's own pages (under the stage prefix) and
// a front end on another origin. Reading a job's status also works with the read-only view credential of an
// emailed link (X-View-Token), on a device that never held the session.
import { ApiError, MissingSessionError, isAbort } from "./errors.js";
import { randomId } from "./ids.js";
import { parseRetryAfter } from "./retry.js";
import { getSession, getViewToken } from "./session.js";
import { resolveTiming } from "./timing.js";
export const NETWORK_MESSAGE = "We couldn't reach the server. Check your connection and try again.";
const UNEXPECTED_MESSAGE = "Something went wrong on our side. Please try again.";
function errorBody(payload) {
    if (typeof payload !== "object" || payload === null)
        return null;
    const error = payload.error;
    if (typeof error !== "object" || error === null)
        return null;
    const { code, message } = error;
    return typeof code === "string" && typeof message === "string" ? { code, message } : null;
}
/** A client for the API under `baseUrl`. Creating one touches nothing (safe during server rendering). */
export function createClient(options) {
    if (typeof options?.baseUrl !== "string")
        throw new TypeError("createClient: baseUrl must be a string");
    const baseUrl = options.baseUrl.trim().replace(/\/+$/, "");
    const timing = resolveTiming(options.timing);
    const onError = options.onError;
    async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
        // A request that hangs (a dead connection on a phone) is given up after requestTimeoutMs and reported as a
        // network error, which callers retry: every call is safe to repeat (create by its Idempotency-Key, confirm
        // by its 409, cancel by its 204).
        const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
        const controller = new AbortController();
        const forward = () => controller.abort();
        if (signal?.aborted)
            controller.abort();
        else
            signal?.addEventListener("abort", forward, { once: true });
        let timedOut = false;
        const timer = setTimeout(() => {
            timedOut = true;
            controller.abort();
        }, timing.requestTimeoutMs);
        let response;
        let payload;
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
            payload = await response.json().catch((error) => {
                if (isAbort(error))
                    throw error;
                return null;
            });
        }
        catch (error) {
            if (isAbort(error) && !timedOut)
                throw error;
            throw new ApiError(0, "NETWORK_ERROR", NETWORK_MESSAGE);
        }
        finally {
            clearTimeout(timer);
            signal?.removeEventListener("abort", forward);
        }
        if (!response.ok) {
            const error = errorBody(payload);
            throw new ApiError(response.status, error ? error.code : "UNEXPECTED_RESPONSE", error ? error.message : UNEXPECTED_MESSAGE, { retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
                requestId: response.headers.get("x-amzn-RequestId") });
        }
        return payload;
    }
    // async, so that a missing token is a rejected promise like every other failure, never a throw at the call.
    async function jobRequest(jobId, path, { token, ...spec }) {
        const sessionToken = token || getSession(jobId, { onError });
        if (!sessionToken)
            throw new MissingSessionError(jobId);
        return request(path, { ...spec, headers: { ...spec.headers, "X-Session-Token": sessionToken } });
    }
    async function readJob(jobId, path, { token, viewToken, ...spec }) {
        const sessionToken = token || getSession(jobId, { onError });
        if (sessionToken)
            return request(path, { ...spec, headers: { "X-Session-Token": sessionToken } });
        const view = viewToken || getViewToken(jobId, { onError });
        if (!view)
            throw new MissingSessionError(jobId);
        return request(path, { ...spec, headers: { "X-View-Token": view } });
    }
    const jobPath = (jobId) => `/api/upload/${encodeURIComponent(jobId)}`;
    return Object.freeze({
        baseUrl,
        timing,
        onError,
        createUpload: (body, { idempotencyKey = randomId(), signal } = {}) => request("/api/upload", {
            method: "POST",
            signal,
            body: { email: body.email, fileType: body.fileType, fileSize: body.fileSize },
            headers: { "Idempotency-Key": idempotencyKey },
        }),
        confirmUpload: (uploadId, callOptions = {}) => jobRequest(uploadId, `${jobPath(uploadId)}/confirm`, { ...callOptions, method: "POST" }),
        getJob: (jobId, callOptions = {}) => readJob(jobId, jobPath(jobId), callOptions),
        retryJob: (uploadId, callOptions = {}) => jobRequest(uploadId, `${jobPath(uploadId)}/retry`, { ...callOptions, method: "POST", body: {} }),
        cancelUpload: async (uploadId, callOptions = {}) => {
            await jobRequest(uploadId, jobPath(uploadId), { ...callOptions, method: "DELETE" });
        },
        limits: (callOptions = {}) => request("/api/upload/limits", callOptions),
    });
}
