// The upload flow: create the job, PUT the photo with real progress, confirm, store the session. Each step
// retries by itself on network errors and 5xx (with backoff, waiting out offline spells), and remembers how
// far it got, so "Try again" after the retries run out resumes instead of starting over.

import { ApiError, cancelUpload, confirmUpload, createUpload } from "./api.js";
import { IMAGE_TYPES, detectType } from "./filetype.js";
import { STORAGE_MESSAGE, TYPE_MESSAGE, UNRECOGNISED_MESSAGE } from "./messages.js";
import { abortError, withRetry } from "./retry.js";
import { storeSession } from "./session.js";
import { TIMING } from "./timing.js";

export { IMAGE_TYPES, detectType };
// A URL this close to its expiry is replaced before the PUT starts rather than failing halfway.
const EXPIRY_MARGIN_MS = 60000;

/**
 * A reason to refuse a file before anything is sent, or null. `type` and `recognised` come from detectType:
 * the type to declare, and whether the file's first bytes show it.
 */
export function checkFile(file, maxBytes, { type = file && file.type, recognised = true } = {}) {
  if (!file) return "Choose a photo to upload.";
  if (!IMAGE_TYPES.includes(type)) return TYPE_MESSAGE;
  if (file.size === 0) return "That file is empty. Please choose another photo.";
  if (file.size > maxBytes) {
    return `That photo is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${Math.floor(maxBytes / 1048576)} MB.`;
  }
  if (!recognised) return UNRECOGNISED_MESSAGE;
  return null;
}

/**
 * PUT the file to a presigned URL with the signed Content-Type, reporting progress (0-100). A PUT that makes no
 * progress for `stallMs` is aborted and rejected as STALLED (retryable), since some networks hang, not fail.
 */
export function putFile(url, file, contentType, onProgress, signal, stallMs = TIMING.stallMs) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortError());
    const xhr = new XMLHttpRequest();
    let stalled = false;
    let timer = null;
    const watch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { stalled = true; xhr.abort(); }, stallMs);
    };
    const onAbort = () => xhr.abort();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.onprogress = (event) => {
      watch();
      if (event.lengthComputable) onProgress(Math.round((event.loaded / event.total) * 100));
    };
    xhr.upload.onload = () => { watch(); onProgress(100); };
    xhr.onreadystatechange = watch;
    xhr.onloadend = () => {
      clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", onAbort);
    };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
      ? resolve()
      : reject(new ApiError(xhr.status, xhr.status >= 500 ? "STORAGE_UNAVAILABLE" : "STORAGE_REFUSED", STORAGE_MESSAGE)));
    xhr.onerror = () => reject(new ApiError(0, "STORAGE_UNREACHABLE", STORAGE_MESSAGE));
    xhr.onabort = () => reject(stalled ? new ApiError(0, "STALLED", STORAGE_MESSAGE) : abortError());
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    watch();
    xhr.send(file);
  });
}

/** One attempt to upload one photo; call run() again after a failure to resume where it stopped. */
export class UploadAttempt {
  /**
   * `fileType` is the type to declare (from detectType). Callbacks: onStep("creating" | "uploading" |
   * "confirming"), onProgress(percent), onWait({reason: "offline" | "retry", delayMs}) while a step waits.
   */
  constructor(file, email, { fileType = file.type, onProgress = () => {}, onStep = () => {}, onWait = () => {},
    api = { createUpload, confirmUpload, cancelUpload }, put = putFile, store = storeSession, timing = TIMING, now = Date.now } = {}) {
    Object.assign(this, { file, email, fileType, onProgress, onStep, onWait, api, put, store, timing, now });
    // One key per attempt: a retry replays the same job instead of making a second one.
    this.idempotencyKey = crypto.randomUUID();
    this.created = null;
    this.uploaded = false;
    this.step = null;
    this.controller = null;
    this.persistence = null;
    // The server-side cancel, once sent (a promise that settles when it is answered).
    this.cancelled = null;
  }

  /**
   * Stop the upload. A job that exists is cancelled on the server too, once, so its photo is deleted now rather
   * than a day later (a failed cancel is left to the server's sweep, which expires the job). During the confirm
   * the job may already be confirmed, so it is not cancelled and its token is kept; a finished job is left alone.
   */
  cancel() {
    if (!this.controller) return;
    if (this.step === "confirming" && this.created) {
      this.persistence = this.store(this.created.uploadId, this.created.sessionToken);
    } else if (this.created && this.step !== "done" && !this.cancelled) {
      this.cancelled = this.api.cancelUpload(this.created.uploadId, this.created.sessionToken).catch(() => null);
    }
    this.controller.abort();
  }

  retrying(step, action, signal) {
    return withRetry(async () => {
      this.step = step;
      this.onStep(step);
      return action();
    }, { delays: this.timing.retryDelaysMs, signal, onWait: (wait) => this.onWait({ ...wait, step }) });
  }

  create(signal) {
    const body = { email: this.email, fileType: this.fileType, fileSize: this.file.size };
    return this.api.createUpload(body, this.idempotencyKey, signal);
  }

  urlExpired() {
    const expiresAt = Date.parse(this.created.expiresAt);
    return !Number.isNaN(expiresAt) && this.now() > expiresAt - EXPIRY_MARGIN_MS;
  }

  async run() {
    this.controller = new AbortController();
    const { signal } = this.controller;
    let urlReplaced = false;
    let restarted = false;
    for (;;) {
      try {
        if (!this.created) this.created = await this.retrying("creating", () => this.create(signal), signal);
        if (!this.uploaded) {
          await this.retrying("uploading", async () => {
            // An expired URL is replaced by replaying the same Idempotency-Key: same job, fresh URL and token.
            if (this.urlExpired()) this.created = await this.create(signal);
            this.onProgress(0);
            await this.put(this.created.uploadUrl, this.file, this.fileType, this.onProgress, signal,
              this.timing.stallMs);
          }, signal);
          this.uploaded = true;
        }
        await this.retrying("confirming", async () => {
          try {
            await this.api.confirmUpload(this.created.uploadId, this.created.sessionToken, signal);
          } catch (error) {
            // A confirm whose answer was lost and that is then retried finds its own earlier success.
            if (error.code !== "UPLOAD_ALREADY_CONFIRMED") throw error;
          }
        }, signal);
        break;
      } catch (error) {
        if (error.name === "AbortError") throw error;
        if (error.code === "STORAGE_REFUSED" && !urlReplaced) {
          // Storage refused the URL (expired, or signed for something else): replay the key for a fresh one.
          urlReplaced = true;
          this.created = null;
          continue;
        }
        if (error.code === "UPLOAD_EXPIRED" && !restarted) {
          // The job was cleaned up: no retry of it can succeed, so start a fresh one.
          restarted = true;
          this.idempotencyKey = crypto.randomUUID();
          this.created = null;
          this.uploaded = false;
          continue;
        }
        if (error.code === "STORAGE_REFUSED") this.created = null;
        if (error.code === "UPLOAD_NOT_VERIFIED") {
          this.created = null;
          this.uploaded = false;
        }
        throw error;
      }
    }
    this.step = "done";
    this.persistence = this.store(this.created.uploadId, this.created.sessionToken);
    return { uploadId: this.created.uploadId, sessionToken: this.created.sessionToken, persistence: this.persistence };
  }
}
