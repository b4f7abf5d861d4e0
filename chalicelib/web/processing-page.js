// Built from client/src/processing-page.ts by `npm run build:web` in client/: edit the source, not this file.
// The processing page: follow the job with the poller (backoff, paused while hidden, waiting out offline spells)
// and say clearly what to do when something is wrong.
import { OFFLINE_MESSAGE } from "./messages.js";
import { byId, pageClient } from "./page-common.js";
import { JobPoller } from "./poller.js";
import { sessionPersistence } from "./session.js";
const page = byId("processing-page");
const status = byId("status");
const notice = byId("notice");
const error = byId("error");
const startOver = byId("start-over");
// One entry per job status, as chalicelib/domain.py defines them: its label, and what it means for the person
// waiting. The type is the OpenAPI enum, so tsc refuses a status left out; tests/integration/test_lifecycle.py
// checks that this list, the domain's, the database's and the enum agree. A confirmed job is "pending" with
// confirmedAt set; a cancelled job's status answers 410 UPLOAD_CANCELLED (see MESSAGES).
const STATUSES = {
    pending: {
        label: "Waiting to be processed",
        next: "We have your photo. We'll email you when your model is ready; you can close this page.",
    },
    processing: {
        label: "Being turned into 3D",
        next: "We're building your model now. We'll email you when it's ready; you can close this page.",
    },
    completed: { label: "Ready", next: "Your model is ready. Check your email for the link." },
    failed: { label: "Processing failed", next: "We couldn't build a model from this photo. Please try another photo." },
    expired: { label: "Expired", next: "This upload expired before it was finished. Please upload your photo again." },
    cancelled: { label: "Cancelled", next: "This upload was cancelled. Please upload your photo again." },
};
const FORMATS = { "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/heic": "HEIC" };
const START_OVER = "Please start a new upload.";
const NO_SESSION = "We couldn't find this upload's session on this device. Please start a new upload. "
    + "If you uploaded from another browser or device, open this page there.";
const MESSAGES = {
    NO_SESSION,
    MISSING_TOKEN: NO_SESSION,
    INVALID_TOKEN: `This device's session for the upload was refused. ${START_OVER}`,
    UPLOAD_NOT_FOUND: `We couldn't find this upload. ${START_OVER}`,
    UPLOAD_EXPIRED: `This upload expired before it was finished. ${START_OVER}`,
    UPLOAD_CANCELLED: `This upload was cancelled. ${START_OVER}`,
    BAD_LINK: `This page's address is incomplete or damaged, so we can't tell which upload it is. ${START_OVER}`,
};
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
function show(job) {
    byId("job").hidden = false;
    byId("job-id").textContent = job.jobId;
    // A status this page does not know yet is shown as it is, never as a crash.
    const known = STATUSES[job.status];
    byId("job-status").textContent = known?.label ?? job.status;
    byId("job-file").textContent = `${FORMATS[job.fileType] ?? job.fileType}, ${size(job.fileSize)}`;
    byId("job-confirmed").textContent = job.confirmedAt ? new Date(job.confirmedAt).toLocaleString() : "Not yet";
    status.textContent = job.status === "pending" && !job.confirmedAt
        ? "Your photo hasn't arrived yet. If you closed the upload page, please upload it again."
        : known?.next ?? "";
    page.dataset["state"] = job.status;
    startOver.textContent = "Upload another photo";
    startOver.hidden = false;
}
function stop(code) {
    status.textContent = "";
    error.textContent = MESSAGES[code] ?? MESSAGES["UPLOAD_NOT_FOUND"] ?? "";
    startOver.textContent = "Start a new upload";
    startOver.hidden = false;
    page.dataset["state"] = "stopped";
    delete page.dataset["nextPollMs"];
}
function render(state) {
    if (state.job)
        show(state.job);
    if (state.stopped && state.error) {
        stop(state.error.code);
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
    if (sessionPersistence(jobId) === "tab") {
        notice.textContent = "This browser wouldn't let us save your upload, so you can't reopen this page later. "
            + "Keep this tab open to follow your model.";
    }
    const poller = new JobPoller({ client: pageClient(), jobId });
    poller.subscribe(render);
    poller.start();
}
