// Built from client/src/poller.ts by `npm run build:web` in client/: edit the source, not this file.
// Following a job for the processing screen: poll its status with backoff, look again soon after a change, pause
// while the page is hidden (and look at once when it is shown), wait out offline spells, and stop for good on a
// final status or on an answer no later poll can change (410, no token, a token refused).
import { ApiError, isAbort, toApiError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { browserIsOnline, nextPollDelay, waitUntilOnline } from "./retry.js";
import { clearSession } from "./session.js";
/** Statuses after which nothing changes any more. */
export const FINAL_JOB_STATUSES = new Set(["completed", "failed", "expired", "cancelled"]);
/** Failures that end the polling: the job or its token can never be read again from this device. */
export const STOPPING_CODES = new Set([
    "NO_SESSION", "MISSING_TOKEN", "INVALID_TOKEN", "UPLOAD_NOT_FOUND", "UPLOAD_EXPIRED", "UPLOAD_CANCELLED",
]);
// These mean the stored token can never work again: forget it.
const DEAD_TOKEN = new Set(["INVALID_TOKEN", "UPLOAD_NOT_FOUND", "UPLOAD_EXPIRED", "UPLOAD_CANCELLED"]);
export const INITIAL_POLL_STATE = Object.freeze({
    job: null, error: null, stopped: false, paused: false, offline: false, nextPollMs: null,
});
/** The document's visibility, or a page that is always visible outside a browser. */
export function documentVisibility() {
    const doc = globalThis.document;
    if (!doc)
        return { isHidden: () => false, onChange: () => () => undefined };
    return {
        isHidden: () => doc.visibilityState === "hidden",
        onChange: (listener) => {
            doc.addEventListener("visibilitychange", listener);
            return () => doc.removeEventListener("visibilitychange", listener);
        },
    };
}
export class JobPoller {
    options;
    visibility;
    listeners = new Listeners();
    current = INITIAL_POLL_STATE;
    delay;
    timer = null;
    inFlight = false;
    lastStatus = null;
    controller = null;
    unwatch = null;
    constructor(options) {
        this.options = options;
        this.visibility = options.visibility ?? documentVisibility();
        this.delay = options.client.timing.pollStartMs;
    }
    get state() {
        return this.current;
    }
    subscribe(listener) {
        return this.listeners.add(listener);
    }
    /** Poll now, then with backoff until stopped. */
    start() {
        if (this.controller)
            return;
        this.controller = new AbortController();
        this.unwatch = this.visibility.onChange(() => this.visibilityChanged());
        void this.poll();
    }
    /** Stop polling and listening (the state stays as it was). */
    stop() {
        this.controller?.abort();
        this.controller = null;
        this.clearTimer();
        this.unwatch?.();
        this.unwatch = null;
    }
    set(change) {
        this.current = Object.freeze({ ...this.current, ...change });
        this.listeners.notify(this.current);
    }
    get active() {
        return this.controller !== null && !this.current.stopped;
    }
    clearTimer() {
        if (this.timer !== null)
            clearTimeout(this.timer);
        this.timer = null;
    }
    end(change) {
        this.stop();
        this.set({ ...change, stopped: true, nextPollMs: null, paused: false, offline: false });
    }
    visibilityChanged() {
        if (!this.active)
            return;
        if (this.visibility.isHidden()) {
            this.clearTimer();
            this.set({ paused: true, nextPollMs: null });
        }
        else if (this.current.paused) {
            this.delay = this.options.client.timing.pollStartMs;
            this.set({ paused: false });
            if (!this.inFlight)
                void this.poll();
        }
    }
    schedule() {
        if (!this.active)
            return;
        if (this.visibility.isHidden()) {
            this.set({ paused: true, nextPollMs: null });
            return;
        }
        const delay = this.delay;
        this.timer = setTimeout(() => {
            this.timer = null;
            this.set({ nextPollMs: null });
            void this.poll();
        }, delay);
        const { pollFactor, pollMaxMs } = this.options.client.timing;
        this.delay = nextPollDelay(delay, { factor: pollFactor, maxMs: pollMaxMs });
        this.set({ nextPollMs: delay });
    }
    async poll() {
        const controller = this.controller;
        if (!controller || !this.active)
            return;
        if (this.visibility.isHidden()) {
            this.schedule();
            return;
        }
        const { client, jobId, token } = this.options;
        const sessionOptions = { onError: client.onError };
        this.inFlight = true;
        try {
            const job = await client.getJob(jobId, { token, signal: controller.signal });
            if (controller.signal.aborted)
                return;
            // A change of status is news: look again soon.
            if (this.lastStatus !== null && job.status !== this.lastStatus)
                this.delay = client.timing.pollStartMs;
            this.lastStatus = job.status;
            if (FINAL_JOB_STATUSES.has(job.status)) {
                // A job that is over for good has no use for its token (the set also holds statuses newer servers send).
                if (job.status !== "completed" && job.status !== "failed")
                    clearSession(jobId, sessionOptions);
                this.end({ job, error: null });
                return;
            }
            this.set({ job, error: null, offline: false });
        }
        catch (caught) {
            if (isAbort(caught) || controller.signal.aborted)
                return;
            const error = toApiError(caught);
            if (STOPPING_CODES.has(error.code) || error.status === 410) {
                if (DEAD_TOKEN.has(error.code))
                    clearSession(jobId, sessionOptions);
                this.end({ error });
                return;
            }
            if (error.code === "NETWORK_ERROR" && !(this.options.isOnline ?? browserIsOnline)()) {
                this.set({ error, offline: true });
                this.inFlight = false;
                try {
                    await (this.options.untilOnline ?? waitUntilOnline)(controller.signal);
                }
                catch {
                    return;
                }
                this.delay = client.timing.pollStartMs;
                this.set({ offline: false });
                void this.poll();
                return;
            }
            // A passing failure (network, 5xx): say so and keep trying.
            this.set({ error });
        }
        finally {
            this.inFlight = false;
        }
        this.schedule();
    }
}
