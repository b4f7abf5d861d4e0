// Built from client/src/processing-page.ts by `npm run build:web` in client/: edit the source, not this file.
// The processing page: follow the job with the poller (backoff while it waits, briskly while it is processed,
// paused while hidden, waiting out offline spells), show its progress, the preview of the photo, and the model in
// an interactive 3D view with a download link once it is ready; offer "Try again" when processing failed. Opened
// from the emailed link (`#view=<token>`), it shows the job read-only on any device.
import { OFFLINE_MESSAGE } from "./messages.js";
import { byId, pageClient } from "./page-common.js";
import { JobPoller, STOPPING_CODES } from "./poller.js";
import { getSession, getViewToken, sessionPersistence, takeViewToken } from "./session.js";
import { STATUSES } from "./status-texts.js";
// The 3D viewer (@google/model-viewer with three.js, about 1 MB): imported only once there is a model to show.
const MODEL_VIEWER_MODULE = "./model-viewer.js";
const page = byId("processing-page");
const status = byId("status");
const notice = byId("notice");
const error = byId("error");
const startOver = byId("start-over");
const progressBox = byId("progress-box");
const progress = byId("progress");
const progressText = byId("progress-text");
const preview = byId("preview");
const previewImage = byId("preview-image");
const result = byId("result");
const model = byId("model");
const download = byId("download");
const failed = byId("failed");
const retryButton = byId("retry");
const retryError = byId("retry-error");
const FORMATS = { "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/heic": "HEIC" };
const START_OVER = "Please start a new upload.";
const NO_SESSION = "This device has no access to this upload. Open this page in the browser you uploaded from, "
    + "or use the link in the email we send when your model is ready.";
const MESSAGES = {
    NO_SESSION,
    MISSING_TOKEN: NO_SESSION,
    INVALID_TOKEN: `This device's session for the upload was refused. ${START_OVER}`,
    UPLOAD_NOT_FOUND: `We couldn't find this upload. ${START_OVER}`,
    UPLOAD_EXPIRED: `This upload expired before it was finished. ${START_OVER}`,
    UPLOAD_CANCELLED: `This upload was cancelled. ${START_OVER}`,
    BAD_LINK: `This page's address is incomplete or damaged, so we can't tell which upload it is. ${START_OVER}`,
};
const DELETED = "This model and its photo have been deleted, as every upload is after a while. "
    + "Upload the photo again to get a new model.";
const VIEW_FAILED = "We couldn't show the model here. You can still download it.";
/** The job id from the last path segment, or null if it is not valid percent-encoding. */
function readJobId() {
    const segment = window.location.pathname.split("/").filter(Boolean).pop() ?? "";
    try {
        return decodeURIComponent(segment);
    }
    catch {
        return null;
    }
}
function size(bytes) {
    if (bytes < 1024)
        return `${bytes} bytes`;
    return bytes < 1048576 ? `${Math.round(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}
/** The link without its signature: a fresh link to the same file is the same file. */
function fileOf(url) {
    return url.split("?")[0] ?? url;
}
let viewerLoading = null;
let shownModel = null;
let modelFailed = false;
function showModel(url) {
    download.href = url;
    // A fresh link to the model already shown changes only the download link: the view keeps its camera.
    if (shownModel === fileOf(url) && !modelFailed)
        return;
    shownModel = fileOf(url);
    modelFailed = false;
    delete page.dataset["model"];
    viewerLoading ??= import(MODEL_VIEWER_MODULE);
    viewerLoading.then(() => {
        model.setAttribute("src", url);
    }, (cause) => {
        console.error("3d-ultra: the 3D viewer did not load:", cause);
        modelShowFailed();
    });
}
function modelShowFailed() {
    modelFailed = true;
    page.dataset["model"] = "failed";
    byId("model-help").textContent = VIEW_FAILED;
}
model.addEventListener("load", () => {
    page.dataset["model"] = "shown";
    byId("model-help").textContent = "Drag to turn the model; pinch or scroll to zoom.";
});
model.addEventListener("error", () => modelShowFailed());
function showPreview(url) {
    preview.hidden = url === null;
    if (url === null)
        return;
    if (previewImage.getAttribute("src") === null || fileOf(previewImage.src) !== fileOf(url)
        || previewImage.dataset["failed"] === "true") {
        delete previewImage.dataset["failed"];
        previewImage.src = url;
    }
}
previewImage.addEventListener("error", () => {
    previewImage.dataset["failed"] = "true";
    preview.hidden = true;
});
function show(job, state) {
    byId("job").hidden = false;
    byId("job-id").textContent = job.jobId;
    // A status this page does not know yet is shown as it is, never as a crash.
    const known = STATUSES[job.status];
    byId("job-status").textContent = known?.label ?? job.status;
    byId("job-file").textContent = `${FORMATS[job.fileType] ?? job.fileType}, ${size(job.fileSize)}`;
    byId("job-confirmed").textContent = job.confirmedAt ? new Date(job.confirmedAt).toLocaleString() : "Not yet";
    const deleted = job.resultsDeletedAt !== null && job.resultsDeletedAt !== undefined;
    // A failed job's own message says why, in words for the person (the API's errorMessage).
    status.textContent = job.status === "pending" && !job.confirmedAt
        ? "Your photo hasn't arrived yet. If you closed the upload page, please upload it again."
        : deleted ? DELETED
            : job.status === "failed" ? job.errorMessage ?? known?.next ?? ""
                : known?.next ?? "";
    page.dataset["state"] = job.status;
    progressBox.hidden = job.status !== "processing";
    if (job.status === "processing" && typeof job.progress === "number") {
        progress.value = job.progress;
        progressText.textContent = `${Math.round(job.progress)} %`;
    }
    else {
        // Started, no figure yet: an indeterminate bar.
        progress.removeAttribute("value");
        progressText.textContent = "";
    }
    showPreview(deleted ? null : job.previewUrl ?? null);
    const modelUrl = job.status === "completed" && !deleted ? job.resultUrl ?? null : null;
    result.hidden = modelUrl === null;
    if (modelUrl !== null)
        showModel(modelUrl);
    failed.hidden = job.status !== "failed" || deleted;
    if (job.status === "failed") {
        // The view credential reads the job; only the device that uploaded the photo can try it again.
        const canRetry = getSession(job.jobId) !== null;
        retryButton.hidden = !canRetry;
        retryButton.disabled = state.retrying;
        retryButton.textContent = state.retrying ? "Trying again…" : "Try again";
        retryError.textContent = state.retryError?.message
            ?? (canRetry ? "" : "To try again, open this page on the device you uploaded the photo from.");
    }
    startOver.textContent = "Upload another photo";
    // When it failed, "Upload another photo" stands beside "Try again".
    startOver.hidden = !failed.hidden;
}
/** Opened from the emailed link on a device without the session: the job is read with the view credential. */
let viaLink = false;
// What the API says of a refused or expired link is about the link, not about an upload on this device.
const LINK_CODES = new Set(["INVALID_TOKEN", "UPLOAD_EXPIRED"]);
function stop(code, message) {
    status.textContent = "";
    error.textContent = viaLink && message && LINK_CODES.has(code) ? message
        : MESSAGES[code] ?? MESSAGES["UPLOAD_NOT_FOUND"] ?? "";
    progressBox.hidden = true;
    startOver.textContent = "Start a new upload";
    startOver.hidden = false;
    page.dataset["state"] = "stopped";
    delete page.dataset["nextPollMs"];
}
function render(state) {
    if (state.job)
        show(state.job, state);
    // Only an answer no poll can change ends the page; a passing failure while a finished job's links are asked for
    // again is shown below, like any other.
    if (state.error && (STOPPING_CODES.has(state.error.code) || state.error.status === 410)) {
        stop(state.error.code, state.error.message);
        return;
    }
    if (state.offline)
        error.textContent = OFFLINE_MESSAGE;
    // A passing failure (network, 5xx): say so; the poller keeps trying.
    else if (state.error)
        error.textContent = `${state.error.message} We'll keep trying.`;
    else
        error.textContent = "";
    if (state.paused)
        page.dataset["paused"] = "true";
    else
        delete page.dataset["paused"];
    if (state.nextPollMs !== null)
        page.dataset["nextPollMs"] = String(state.nextPollMs);
    else
        delete page.dataset["nextPollMs"];
}
const jobId = readJobId();
if (jobId === null || jobId === "") {
    stop("BAD_LINK");
}
else {
    // The emailed link carries a read-only view credential in its fragment: keep it, and take it off the address.
    const viewToken = takeViewToken(jobId, {
        onError: (cause) => console.error("3d-ultra: localStorage is unavailable:", cause),
    });
    viaLink = getSession(jobId) === null && (viewToken ?? getViewToken(jobId)) !== null;
    if (sessionPersistence(jobId) === "tab") {
        notice.textContent = "This browser wouldn't let us save your upload, so you can't reopen this page later. "
            + "Keep this tab open to follow your model.";
    }
    const poller = new JobPoller({ client: pageClient(), jobId, viewToken });
    poller.subscribe(render);
    retryButton.addEventListener("click", () => {
        void poller.retry();
    });
    poller.start();
}
