// Built from client/src/put.ts by `npm run build:web` in client/: edit the source, not this file.
// The photo's PUT to its presigned URL, with real progress (XMLHttpRequest: fetch reports no upload progress).
import { ApiError, abortError } from "./errors.js";
import { STORAGE_MESSAGE } from "./messages.js";
/**
 * PUT the file, reporting progress (0-100). A PUT that makes no progress for `stallMs` is aborted and rejected as
 * STALLED (retryable), since some networks hang rather than fail. A 4xx is STORAGE_REFUSED (the URL expired or was
 * signed for something else), a 5xx STORAGE_UNAVAILABLE, no answer STORAGE_UNREACHABLE.
 */
export const putFile = ({ url, file, contentType, onProgress, signal, stallMs }) => new Promise((resolve, reject) => {
    if (signal.aborted) {
        reject(abortError());
        return;
    }
    const xhr = new XMLHttpRequest();
    let stalled = false;
    let timer;
    const watch = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
            stalled = true;
            xhr.abort();
        }, stallMs);
    };
    const onAbort = () => xhr.abort();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.onprogress = (event) => {
        watch();
        if (event.lengthComputable && event.total > 0)
            onProgress(Math.round((event.loaded / event.total) * 100));
    };
    xhr.upload.onload = () => {
        watch();
        onProgress(100);
    };
    xhr.onreadystatechange = watch;
    xhr.onloadend = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
    };
    xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300)
            resolve();
        else
            reject(new ApiError(xhr.status, xhr.status >= 500 ? "STORAGE_UNAVAILABLE" : "STORAGE_REFUSED", STORAGE_MESSAGE));
    };
    xhr.onerror = () => reject(new ApiError(0, "STORAGE_UNREACHABLE", STORAGE_MESSAGE));
    xhr.onabort = () => reject(stalled ? new ApiError(0, "STALLED", STORAGE_MESSAGE) : abortError());
    signal.addEventListener("abort", onAbort, { once: true });
    watch();
    xhr.send(file);
});
