// The processing page: read the job's token from localStorage, poll the job's status, say clearly what is wrong.

import { getJob } from "./api.js";

const jobId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
const status = document.getElementById("status");
const error = document.getElementById("error");
const startOver = document.getElementById("start-over");
const FINAL = new Set(["completed", "failed", "expired"]);
const LABELS = {
  pending: "Waiting to be processed",
  processing: "Being turned into 3D",
  completed: "Ready",
  failed: "Processing failed",
  expired: "Expired",
};
const MESSAGES = {
  NO_SESSION: "We couldn't find this upload's session on this device. Please start a new upload.",
  INVALID_TOKEN: "This device's session for the upload was refused. Please start a new upload.",
  MISSING_TOKEN: "We couldn't find this upload's session on this device. Please start a new upload.",
  UPLOAD_NOT_FOUND: "We couldn't find this upload. Please start a new upload.",
};
const POLL_MS = 3000;

function show(job) {
  document.getElementById("job").hidden = false;
  document.getElementById("job-id").textContent = job.jobId;
  document.getElementById("job-status").textContent = LABELS[job.status] || job.status;
  document.getElementById("job-file").textContent = `${job.fileType}, ${(job.fileSize / 1024).toFixed(1)} KB`;
  document.getElementById("job-confirmed").textContent = job.confirmedAt
    ? new Date(job.confirmedAt).toLocaleString() : "Not yet";
  status.textContent = `Status: ${LABELS[job.status] || job.status}`;
}

async function poll() {
  try {
    const job = await getJob(jobId);
    error.textContent = "";
    show(job);
    if (!FINAL.has(job.status)) setTimeout(poll, POLL_MS);
  } catch (failure) {
    const message = MESSAGES[failure.code];
    if (message) {
      status.textContent = "";
      error.textContent = message;
      startOver.hidden = false;
      return;
    }
    // A passing failure (network, 5xx): say so and keep trying.
    error.textContent = `${failure.message} We'll keep trying.`;
    setTimeout(poll, POLL_MS);
  }
}

poll();
