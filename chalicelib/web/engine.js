// Built from client/src/engine.ts by `npm run build:web` in client/: edit the source, not this file.
// The upload flow as a framework-free state machine: check the photo, create the job, PUT the photo with real
// progress, confirm, store the session. Each step retries by itself on network errors and 5xx (with backoff,
// waiting out offline spells) and remembers how far it got, so retry() after the retries run out resumes instead
// of starting over. Once the photo is in storage the attempt is kept in this tab's sessionStorage, so a reload
// before the confirm succeeded can still confirm it (confirm(uploadId), or resumeConfirm()).
import { ApiError, MissingSessionError, abortError, isAbort, toApiError } from "./errors.js";
import { detectType, isImageType } from "./filetype.js";
import { randomId } from "./ids.js";
import { Listeners } from "./listeners.js";
import { EMPTY_MESSAGE, NO_FILE_MESSAGE, TYPE_MESSAGE, UNRECOGNISED_MESSAGE, tooLargeMessage } from "./messages.js";
import { putFile } from "./put.js";
import { withRetry } from "./retry.js";
import { getSession, storeSession, withStorage } from "./session.js";
/** sessionStorage key of the attempt whose photo is in storage but not yet confirmed. */
export const PENDING_UPLOAD_KEY = "3d-ultra-pending-upload";
// A URL this close to its expiry is replaced before the PUT starts rather than failing halfway.
const EXPIRY_MARGIN_MS = 60000;
export const IDLE_STATE = Object.freeze({
    status: "idle", step: null, progress: 0, error: null, wait: null, uploadId: null, uploaded: false, result: null,
});
function isPending(value) {
    return typeof value === "object" && value !== null
        && typeof value.uploadId === "string" && typeof value.sessionToken === "string";
}
/** The attempt whose photo is in storage but whose confirm has not succeeded yet (this tab), or null. */
export function getPendingUpload(options) {
    const raw = withStorage("sessionStorage", "read", PENDING_UPLOAD_KEY, (storage) => storage.getItem(PENDING_UPLOAD_KEY), null, options);
    if (!raw)
        return null;
    try {
        const value = JSON.parse(raw);
        return isPending(value) ? { uploadId: value.uploadId, sessionToken: value.sessionToken } : null;
    }
    catch {
        return null;
    }
}
export function clearPendingUpload(options) {
    withStorage("sessionStorage", "remove", PENDING_UPLOAD_KEY, (storage) => storage.removeItem(PENDING_UPLOAD_KEY), undefined, options);
}
function keepPendingUpload(pending, options) {
    withStorage("sessionStorage", "write", PENDING_UPLOAD_KEY, (storage) => storage.setItem(PENDING_UPLOAD_KEY, JSON.stringify(pending)), undefined, options);
}
/** Why a file can't be uploaded, or null: `type` and `recognised` as detectType gives them. */
export function checkFile(file, maxBytes, { type, recognised }) {
    if (!file)
        return NO_FILE_MESSAGE;
    if (!isImageType(type))
        return TYPE_MESSAGE;
    if (file.size === 0)
        return EMPTY_MESSAGE;
    if (maxBytes && file.size > maxBytes)
        return tooLargeMessage(file.size, maxBytes);
    if (!recognised)
        return UNRECOGNISED_MESSAGE;
    return null;
}
/**
 * One upload at a time, resumable. start() runs a new upload, retry() resumes the last one after a failure,
 * confirm() confirms a job whose photo is already in storage, cancel() stops. Every change is an event.
 */
export class UploadEngine {
    client;
    maxBytes;
    put;
    now;
    listeners = new Listeners();
    current = IDLE_STATE;
    attempt = null;
    controller = null;
    constructor({ client, maxBytes = null, put = putFile, now = Date.now }) {
        this.client = client;
        this.maxBytes = maxBytes;
        this.put = put;
        this.now = now;
    }
    get state() {
        return this.current;
    }
    /** Be told of every event with the state after it; returns the function that stops it. */
    subscribe(listener) {
        return this.listeners.add(listener);
    }
    emit(event, change) {
        this.current = Object.freeze({ ...this.current, ...change });
        this.listeners.notify(event, this.current);
    }
    get sessionOptions() {
        return { onError: this.client.onError };
    }
    /** Upload a new photo: rejects with an ApiError (or an AbortError after cancel()). */
    async start(file, email) {
        this.abort();
        this.attempt = null;
        clearPendingUpload(this.sessionOptions);
        if (this.current !== IDLE_STATE)
            this.emit({ type: "reset" }, IDLE_STATE);
        const detected = file ? await detectType(file) : { type: "", recognised: false };
        const refusal = checkFile(file, this.maxBytes, detected);
        if (refusal || !file || !isImageType(detected.type)) {
            return this.fail(new ApiError(0, "INVALID_FILE", refusal ?? NO_FILE_MESSAGE));
        }
        this.attempt = {
            file, email: email.trim(), fileType: detected.type, idempotencyKey: randomId(), created: null, uploaded: false,
        };
        return this.run();
    }
    /** Resume the last attempt after a failure, from the step that failed. */
    retry() {
        if (!this.attempt)
            return Promise.reject(new ApiError(0, "INVALID_FILE", NO_FILE_MESSAGE));
        return this.run();
    }
    /**
     * Confirm a job whose photo is in storage: the one this engine uploaded, the attempt this tab kept
     * (after a reload), or any job whose token is given or stored. Rejects with MissingSessionError without one.
     */
    confirm(uploadId, token) {
        const own = this.attempt?.created?.uploadId === uploadId ? this.attempt.created : null;
        if (own && this.attempt?.uploaded)
            return this.run();
        this.abort();
        const pending = getPendingUpload(this.sessionOptions);
        const sessionToken = token || own?.sessionToken || (pending?.uploadId === uploadId ? pending.sessionToken : null)
            || getSession(uploadId, this.sessionOptions);
        if (!sessionToken)
            return this.fail(new MissingSessionError(uploadId));
        this.attempt = {
            file: null, email: "", fileType: null, idempotencyKey: "", created: { uploadId, sessionToken }, uploaded: true,
        };
        return this.run();
    }
    /** Confirm the attempt this tab kept (a reload between the PUT and the confirm), if any; else null. */
    resumeConfirm() {
        const pending = getPendingUpload(this.sessionOptions);
        return pending ? this.confirm(pending.uploadId, pending.sessionToken) : null;
    }
    /**
     * Stop the upload. A job created but not yet confirmed is withdrawn (DELETE, best effort). During the confirm
     * the job may already be confirmed, so its token is kept instead.
     */
    cancel() {
        const attempt = this.attempt;
        const running = this.controller !== null;
        this.abort();
        if (!attempt || !running)
            return;
        const created = attempt.created;
        if (created && this.current.step === "confirming") {
            storeSession(created.uploadId, created.sessionToken, this.sessionOptions);
        }
        else if (created) {
            clearPendingUpload(this.sessionOptions);
            this.client.cancelUpload(created.uploadId, { token: created.sessionToken }).catch(() => undefined);
        }
        this.attempt = null;
        this.emit({ type: "cancelled" }, IDLE_STATE);
    }
    /**
     * Stop listening to the network without touching the job: no withdrawal, no token stored, the attempt kept in
     * sessionStorage stays for a later resumeConfirm(). For a component that unmounts (or React StrictMode's
     * rehearsal of it).
     */
    detach() {
        if (!this.controller)
            return;
        this.abort();
        this.emit({ type: "cancelled" }, IDLE_STATE);
    }
    /** Back to idle, forgetting the attempt (a running one is cancelled first). */
    reset() {
        this.cancel();
        this.attempt = null;
        this.emit({ type: "reset" }, IDLE_STATE);
    }
    abort() {
        const controller = this.controller;
        this.controller = null;
        controller?.abort();
    }
    fail(error) {
        this.emit({ type: "error", error }, { status: "error", error, wait: null });
        return Promise.reject(error);
    }
    retrying(step, action, signal) {
        return withRetry(async () => {
            this.emit({ type: "step", step }, { status: step, step, wait: null, error: null, result: null });
            return action();
        }, {
            delays: this.client.timing.retryDelaysMs,
            signal,
            onWait: (wait) => {
                const waiting = { ...wait, step };
                this.emit({ type: "wait", wait: waiting }, { status: "waiting", wait: waiting });
            },
        });
    }
    progress(percent) {
        this.emit({ type: "progress", percent }, { progress: percent });
    }
    create(attempt, signal) {
        if (!attempt.file || !attempt.fileType)
            return Promise.reject(new ApiError(0, "INVALID_FILE", NO_FILE_MESSAGE));
        return this.client.createUpload({ email: attempt.email, fileType: attempt.fileType, fileSize: attempt.file.size }, { idempotencyKey: attempt.idempotencyKey, signal });
    }
    urlExpired(created) {
        const expiresAt = Date.parse(created.expiresAt ?? "");
        return !Number.isNaN(expiresAt) && this.now() > expiresAt - EXPIRY_MARGIN_MS;
    }
    async run() {
        const attempt = this.attempt;
        if (!attempt)
            return Promise.reject(abortError());
        this.abort();
        const controller = new AbortController();
        this.controller = controller;
        const { signal } = controller;
        const sessionOptions = this.sessionOptions;
        let urlReplaced = false;
        let restarted = false;
        for (;;) {
            try {
                if (!attempt.created) {
                    attempt.created = await this.retrying("creating", () => this.create(attempt, signal), signal);
                    this.emit({ type: "created", uploadId: attempt.created.uploadId }, { uploadId: attempt.created.uploadId });
                }
                if (!attempt.uploaded) {
                    const file = attempt.file;
                    const contentType = attempt.fileType;
                    if (!file || !contentType)
                        throw new ApiError(0, "INVALID_FILE", NO_FILE_MESSAGE);
                    await this.retrying("uploading", async () => {
                        // An expired URL is replaced by replaying the same Idempotency-Key: same job, fresh URL and token.
                        if (!attempt.created?.uploadUrl || this.urlExpired(attempt.created)) {
                            attempt.created = await this.create(attempt, signal);
                        }
                        const { uploadUrl } = attempt.created;
                        this.progress(0);
                        await this.put({ url: uploadUrl ?? "", file, contentType,
                            onProgress: (percent) => this.progress(percent), signal, stallMs: this.client.timing.stallMs });
                    }, signal);
                    attempt.uploaded = true;
                    keepPendingUpload({ uploadId: attempt.created.uploadId, sessionToken: attempt.created.sessionToken }, sessionOptions);
                }
                const { uploadId, sessionToken } = attempt.created;
                await this.retrying("confirming", async () => {
                    try {
                        await this.client.confirmUpload(uploadId, { token: sessionToken, signal });
                    }
                    catch (error) {
                        // A confirm whose answer was lost and that is then retried finds its own earlier success.
                        if (!(error instanceof ApiError && error.code === "UPLOAD_ALREADY_CONFIRMED"))
                            throw error;
                    }
                }, signal);
                break;
            }
            catch (caught) {
                if (isAbort(caught) || signal.aborted)
                    throw isAbort(caught) ? caught : abortError();
                const error = toApiError(caught);
                if (error.code === "STORAGE_REFUSED" && !urlReplaced) {
                    // Storage refused the URL (expired, or signed for something else): replay the key for a fresh one.
                    urlReplaced = true;
                    attempt.created = null;
                    continue;
                }
                if (error.code === "UPLOAD_EXPIRED" && !restarted && attempt.file) {
                    // The job was cleaned up: no retry of it can succeed, so start a fresh one.
                    restarted = true;
                    clearPendingUpload(sessionOptions);
                    attempt.idempotencyKey = randomId();
                    attempt.created = null;
                    attempt.uploaded = false;
                    continue;
                }
                if (error.code === "STORAGE_REFUSED")
                    attempt.created = null;
                if (error.code === "UPLOAD_NOT_VERIFIED" && attempt.file) {
                    attempt.created = null;
                    attempt.uploaded = false;
                }
                if (["UPLOAD_EXPIRED", "UPLOAD_NOT_VERIFIED", "UPLOAD_CANCELLED", "UPLOAD_NOT_FOUND", "INVALID_TOKEN"]
                    .includes(error.code)) {
                    // No later confirm of this job can succeed: a reload must not try again.
                    clearPendingUpload(sessionOptions);
                }
                if (this.controller === controller)
                    this.controller = null;
                this.emit({ type: "error", error }, { status: "error", error, wait: null, uploaded: attempt.uploaded });
                throw error;
            }
        }
        if (this.controller === controller)
            this.controller = null;
        const { uploadId, sessionToken } = attempt.created;
        const persistence = storeSession(uploadId, sessionToken, sessionOptions);
        clearPendingUpload(sessionOptions);
        const result = Object.freeze({ uploadId, sessionToken, persistence });
        this.emit({ type: "done", result }, {
            status: "done", step: null, progress: 100, error: null, wait: null, uploadId, uploaded: true, result,
        });
        return result;
    }
}
