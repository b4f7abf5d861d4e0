// The upload flow: create the job, PUT the photo with real progress, confirm, store the session.
// Each step remembers how far it got, so a retry resumes instead of starting over.

import { ApiError, confirmUpload, createUpload } from "./api.js";
import { storeSession } from "./session.js";

export const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/heic"];
const STORAGE_MESSAGE = "We couldn't upload your photo. Let's try again!";

/** A reason to refuse a file before anything is sent, or null if it may be uploaded. */
export function checkFile(file, maxBytes) {
  if (!file) return "Choose a photo to upload.";
  if (!IMAGE_TYPES.includes(file.type)) return "Please choose a JPEG, PNG, WebP or HEIC image.";
  if (file.size === 0) return "That file is empty. Please choose another photo.";
  if (file.size > maxBytes) {
    return `That photo is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${Math.floor(maxBytes / 1048576)} MB.`;
  }
  return null;
}

/** PUT the file to a presigned URL, reporting progress (0-100); the headers match what was signed. */
export function putFile(url, file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", file.type);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(Math.round((event.loaded / event.total) * 100));
    };
    xhr.upload.onload = () => onProgress(100);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
      ? resolve()
      : reject(new ApiError(xhr.status, "STORAGE_REFUSED", STORAGE_MESSAGE)));
    xhr.onerror = () => reject(new ApiError(0, "STORAGE_UNREACHABLE", STORAGE_MESSAGE));
    xhr.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/** One attempt to upload one photo; call run() again after a failure to resume where it stopped. */
export class UploadAttempt {
  constructor(file, email, { onProgress = () => {}, onStep = () => {} } = {}) {
    this.file = file;
    this.email = email;
    this.onProgress = onProgress;
    this.onStep = onStep;
    // One key per attempt: a retry after a network error replays the same job instead of making a second.
    this.idempotencyKey = crypto.randomUUID();
    this.created = null;
    this.uploaded = false;
    this.controller = null;
  }

  cancel() {
    if (this.controller) this.controller.abort();
  }

  async run() {
    this.controller = new AbortController();
    const { signal } = this.controller;
    if (!this.created) {
      this.onStep("creating");
      this.created = await createUpload(
        { email: this.email, fileType: this.file.type, fileSize: this.file.size }, this.idempotencyKey, signal);
    }
    if (!this.uploaded) {
      this.onStep("uploading");
      try {
        await putFile(this.created.uploadUrl, this.file, this.onProgress, signal);
      } catch (error) {
        // The URL may have expired or been refused: replaying the key gets a fresh URL (and token) next time.
        this.created = null;
        throw error;
      }
      this.uploaded = true;
    }
    this.onStep("confirming");
    try {
      await confirmUpload(this.created.uploadId, this.created.sessionToken, signal);
    } catch (error) {
      if (error.code === "UPLOAD_NOT_VERIFIED") {
        this.created = null;
        this.uploaded = false;
      }
      if (error.code !== "UPLOAD_ALREADY_CONFIRMED") throw error;
    }
    storeSession(this.created.uploadId, this.created.sessionToken);
    return { uploadId: this.created.uploadId, sessionToken: this.created.sessionToken };
  }
}
