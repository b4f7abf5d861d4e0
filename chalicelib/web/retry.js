// Built from client/src/retry.ts by `npm run build:web` in client/: edit the source, not this file.
// Retrying a step by itself: which failures are worth another try, the backoff between tries, and waiting out
// an offline spell without using up tries. No DOM here: it runs under Node too.
import { ApiError, abortError, isAbort } from "./errors.js";
// Failures without an HTTP answer that another try may well cure.
const TRANSIENT = new Set(["NETWORK_ERROR", "STALLED", "STORAGE_UNREACHABLE"]);
/** A network failure, a stall, a timeout or a server error: trying the same request again may well succeed. */
export function isRetryable(error) {
    if (!(error instanceof ApiError) || isAbort(error))
        return false;
    if (error.status === 0)
        return TRANSIENT.has(error.code);
    return error.status === 408 || error.status >= 500;
}
/** Wait `ms`, or reject with an AbortError as soon as `signal` aborts. */
export function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
        if (signal?.aborted) {
            reject(abortError());
            return;
        }
        const onAbort = () => {
            clearTimeout(timer);
            reject(abortError());
        };
        const timer = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
        }, ms);
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}
/** False only when a browser says it is offline. */
export function browserIsOnline() {
    return globalThis.navigator?.onLine !== false;
}
/** Resolve on the browser's next `online` event (at once where there is no such event); reject on abort. */
export function waitUntilOnline(signal) {
    return new Promise((resolve, reject) => {
        if (signal?.aborted) {
            reject(abortError());
            return;
        }
        const target = globalThis;
        if (typeof target.addEventListener !== "function") {
            resolve();
            return;
        }
        const done = () => {
            target.removeEventListener?.("online", done);
            signal?.removeEventListener("abort", stop);
            resolve();
        };
        const stop = () => {
            target.removeEventListener?.("online", done);
            reject(abortError());
        };
        target.addEventListener("online", done);
        signal?.addEventListener("abort", stop, { once: true });
    });
}
/**
 * Run `action` until it succeeds. A retryable failure is retried after the next of `delays`; when they run out
 * the last failure is thrown. While the browser is offline nothing is tried and no try is used up: the next try
 * starts on `online`.
 */
export async function withRetry(action, { delays, signal, onWait, isOnline = browserIsOnline, untilOnline = waitUntilOnline, wait = sleep, }) {
    let failures = 0;
    for (;;) {
        try {
            return await action();
        }
        catch (error) {
            if (!isRetryable(error) || signal?.aborted)
                throw error;
            const failure = error;
            if (!isOnline()) {
                onWait?.({ reason: "offline", delayMs: null, error: failure });
                await untilOnline(signal);
                continue;
            }
            const delayMs = delays[failures];
            if (delayMs === undefined)
                throw error;
            failures += 1;
            onWait?.({ reason: "retry", delayMs, error: failure });
            await wait(delayMs, signal);
        }
    }
}
/** The next poll's wait: `factor` times the last, capped at `maxMs`. */
export function nextPollDelay(previousMs, { factor, maxMs }) {
    return Math.min(Math.round(previousMs * factor), maxMs);
}
/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or null if absent or unreadable. */
export function parseRetryAfter(value, now = Date.now()) {
    if (value === null || value === undefined || value.trim() === "")
        return null;
    const text = value.trim();
    if (/^\d+$/.test(text))
        return Number(text);
    const date = Date.parse(text);
    return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
