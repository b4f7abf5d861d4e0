// The processing page: read the job's token, poll the job's status with backoff (paused while the tab is
// hidden, waiting out offline spells), and say clearly what to do when something is wrong.

import { getJob } from "./api.js";
import { OFFLINE_MESSAGE } from "./messages.js";
import { nextPollDelay, waitUntilOnline } from "./retry.js";
import { clearSession, sessionPersistence } from "./session.js";
import { TIMING } from "./timing.js";

const page = document.getElementById("processing-page");
const status = document.getElementById("status");
const notice = document.getElementById("notice");
const error = document.getElementById("error");
const startOver = document.getElementById("start-over");
// One entry per job status, as chalicelib/domain.py defines them (tests/integration/test_lifecycle.py checks that
// this list, the domain's, the database's and the OpenAPI enum agree): its label, what it means for the person
// waiting, and whether polling ends there. A cancelled job's status answers 410 UPLOAD_CANCELLED (see MESSAGES).
const STATUSES = {
  pending: {
    label: "Waiting to be processed",
    next: "We have your photo. We'll email you when your model is ready; you can close this page.",
    final: false,
  },
  processing: {
    label: "Being turned into 3D",
    next: "We're building your model now. We'll email you when it's ready; you can close this page.",
    final: false,
  },
  completed: { label: "Ready", next: "Your model is ready. Check your email for the link.", final: true },
  failed: {
    label: "Processing failed",
    next: "We couldn't build a model from this photo. Please try another photo.",
    final: true,
  },
  expired: {
    label: "Expired",
    next: "This upload expired before it was finished. Please upload your photo again.",
    final: true,
  },
  cancelled: { label: "Cancelled", next: "This upload was cancelled. Please start a new upload.", final: true },
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
  BAD_LINK: `This page's address is incomplete or damaged, so we can't tell which upload it is. ${START_OVER}`,
  UPLOAD_CANCELLED: STATUSES.cancelled.next,
};
// These mean the stored token can never work again: forget it.
const DEAD_TOKEN = new Set(["INVALID_TOKEN", "UPLOAD_NOT_FOUND", "UPLOAD_CANCELLED"]);

/** The job id from the last path segment, or null if it is not valid percent-encoding. */
function readJobId() {
  const segment = window.location.pathname.split("/").filter(Boolean).pop() || "";
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

const jobId = readJobId();
let delay = TIMING.pollStartMs;
let timer = null;
let inFlight = false;
let paused = false;
let stopped = false;
let lastStatus = null;

function size(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  return bytes < 1048576 ? `${Math.round(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

function show(job) {
  document.getElementById("job").hidden = false;
  document.getElementById("job-id").textContent = job.jobId;
  const known = STATUSES[job.status];
  document.getElementById("job-status").textContent = known ? known.label : job.status;
  document.getElementById("job-file").textContent = `${FORMATS[job.fileType] || job.fileType}, ${size(job.fileSize)}`;
  document.getElementById("job-confirmed").textContent = job.confirmedAt
    ? new Date(job.confirmedAt).toLocaleString() : "Not yet";
  status.textContent = job.status === "pending" && !job.confirmedAt
    ? "Your photo hasn't arrived yet. If you closed the upload page, please upload it again."
    : known ? known.next : "";
  page.dataset.state = job.status;
  startOver.textContent = "Upload another photo";
  startOver.hidden = false;
}

function stop(code) {
  stopped = true;
  status.textContent = "";
  error.textContent = MESSAGES[code];
  startOver.textContent = "Start a new upload";
  startOver.hidden = false;
  page.dataset.state = "stopped";
  delete page.dataset.nextPollMs;
}

function schedule() {
  if (stopped) return;
  if (document.visibilityState === "hidden") {
    paused = true;
    page.dataset.paused = "true";
    return;
  }
  page.dataset.nextPollMs = String(delay);
  timer = setTimeout(() => {
    timer = null;
    delete page.dataset.nextPollMs;
    poll();
  }, delay);
  delay = nextPollDelay(delay, { factor: TIMING.pollFactor, maxMs: TIMING.pollMaxMs });
}

async function poll() {
  if (document.visibilityState === "hidden") {
    schedule();
    return;
  }
  inFlight = true;
  try {
    const job = await getJob(jobId);
    error.textContent = "";
    // A change of status is news: look again soon.
    if (lastStatus !== null && job.status !== lastStatus) delay = TIMING.pollStartMs;
    lastStatus = job.status;
    show(job);
    if (STATUSES[job.status]?.final) {
      stopped = true;
      if (job.status === "expired") clearSession(jobId);
    }
  } catch (failure) {
    if (MESSAGES[failure.code]) {
      if (DEAD_TOKEN.has(failure.code)) clearSession(jobId);
      stop(failure.code);
    } else if (failure.code === "NETWORK_ERROR" && navigator.onLine === false) {
      error.textContent = OFFLINE_MESSAGE;
      inFlight = false;
      await waitUntilOnline();
      delay = TIMING.pollStartMs;
      poll();
      return;
    } else {
      // A passing failure (network, 5xx): say so and keep trying.
      error.textContent = `${failure.message} We'll keep trying.`;
    }
  } finally {
    inFlight = false;
  }
  schedule();
}

// No polling while nobody can see the page; look at once when they come back.
document.addEventListener("visibilitychange", () => {
  if (stopped) return;
  if (document.visibilityState === "hidden") {
    if (timer) {
      clearTimeout(timer);
      timer = null;
      delete page.dataset.nextPollMs;
    }
    paused = true;
    page.dataset.paused = "true";
  } else if (paused) {
    paused = false;
    delete page.dataset.paused;
    delay = TIMING.pollStartMs;
    if (!inFlight) poll();
  }
});

if (jobId === null || jobId === "") {
  stop("BAD_LINK");
} else {
  if (sessionPersistence(jobId) === "tab") {
    notice.textContent = "This browser wouldn't let us save your upload, so you can't reopen this page later. "
      + "Keep this tab open to follow your model.";
  }
  poll();
}
