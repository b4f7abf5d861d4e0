// What to tell a person about a failure: a sentence they understand, and the field it belongs to, if any.

import type { ApiError } from "./errors.js";

export const OFFLINE_MESSAGE = "You're offline. We'll continue when you're back.";
export const STORAGE_MESSAGE = "We couldn't upload your photo. Let's try again!";
export const EXPIRED_MESSAGE = "This upload took too long and expired. Please choose your photo and upload it again.";
export const TYPE_MESSAGE = "Please choose a JPEG, PNG, WebP or HEIC image.";
export const UNRECOGNISED_MESSAGE = "This file doesn't look like a JPEG, PNG, WebP or HEIC photo inside. "
  + "Please choose another photo.";
export const EMPTY_MESSAGE = "That file is empty. Please choose another photo.";
export const NO_FILE_MESSAGE = "Choose a photo to upload.";
export const EMAIL_MESSAGE = "Please enter a valid email address, like name@example.com.";
const MB = 1048576;

/** "That photo is 21.3 MB; the limit is 20 MB." */
export function tooLargeMessage(size: number, maxBytes: number): string {
  return `That photo is ${(size / MB).toFixed(1)} MB; the limit is ${Math.floor(maxBytes / MB)} MB.`;
}

/** "Too many uploads right now. Please try again in N minutes." from Retry-After seconds. */
export function rateLimitMessage(retryAfterSeconds: number | null | undefined): string {
  const minutes = Math.max(1, Math.ceil((retryAfterSeconds || 60) / 60));
  return `Too many uploads right now. Please try again in ${minutes} ${minutes === 1 ? "minute" : "minutes"}.`;
}

export type FormField = "email" | "photo";

export interface FailureDescription {
  /** The form field the failure belongs to (new input is needed), or null for the whole form. */
  readonly field: FormField | null;
  readonly message: string;
}

/** `{field, message}` for a failure: field is "email", "photo" or null (a message for the whole form). */
export function describeFailure(error: Pick<ApiError, "code" | "message" | "retryAfter"> | null | undefined,
  { maxBytes }: { maxBytes?: number | null } = {}): FailureDescription {
  const code = error?.code;
  if (code === "VALIDATION_ERROR") {
    // The server's message names the field ("email: not a valid email address (...)"): say it plainly.
    const field = String(error?.message ?? "").split(":")[0]?.trim();
    if (field === "email") return { field: "email", message: EMAIL_MESSAGE };
    if (field === "fileType") return { field: "photo", message: TYPE_MESSAGE };
    if (field === "fileSize") {
      const limit = maxBytes ? ` The limit is ${Math.floor(maxBytes / MB)} MB.` : "";
      return { field: "photo", message: `That photo's size can't be uploaded.${limit} Please choose another.` };
    }
    return { field: null, message: "Something in the form wasn't accepted. Please check it and try again." };
  }
  if (code === "INVALID_FILE") return { field: "photo", message: error?.message || TYPE_MESSAGE };
  if (code === "RATE_LIMITED") return { field: null, message: rateLimitMessage(error?.retryAfter) };
  if (code === "UPLOAD_EXPIRED") return { field: null, message: EXPIRED_MESSAGE };
  if (code === "STORAGE_REFUSED" || code === "STORAGE_UNREACHABLE" || code === "STALLED") {
    return { field: null, message: STORAGE_MESSAGE };
  }
  if (code === "NETWORK_ERROR") {
    return { field: null, message: "We couldn't reach the server. Check your connection and try again." };
  }
  return { field: null, message: error?.message || "Something went wrong. Please try again." };
}
