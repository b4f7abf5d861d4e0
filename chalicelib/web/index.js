// The upload page: validate the file before sending anything, run the upload, show each step, offer a retry.

import { pageUrl } from "./api.js";
import { checkFile, UploadAttempt } from "./upload.js";

const page = document.getElementById("upload-page");
const form = document.getElementById("upload-form");
const email = document.getElementById("email");
const photo = document.getElementById("photo");
const submit = document.getElementById("submit");
const cancel = document.getElementById("cancel");
const retry = document.getElementById("retry");
const progressBox = document.getElementById("progress-box");
const progress = document.getElementById("progress");
const progressText = document.getElementById("progress-text");
const status = document.getElementById("status");
const error = document.getElementById("error");
const maxBytes = Number(page.dataset.maxBytes);
const STEPS = { creating: "Preparing your upload…", uploading: "Uploading your photo…", confirming: "Checking your photo…" };

document.getElementById("max-size").textContent = String(Math.floor(maxBytes / 1048576));
let attempt = null;

function busy(isBusy) {
  submit.disabled = isBusy;
  email.disabled = isBusy;
  photo.disabled = isBusy;
  cancel.hidden = !isBusy;
}

function showProgress(percent) {
  progress.value = percent;
  progressText.textContent = `${percent}%`;
}

async function run() {
  error.textContent = "";
  retry.hidden = true;
  busy(true);
  try {
    const { uploadId } = await attempt.run();
    status.textContent = "Upload complete. Taking you to your model…";
    window.location.assign(pageUrl(`/processing/${encodeURIComponent(uploadId)}`));
  } catch (failure) {
    busy(false);
    if (failure.name === "AbortError") {
      status.textContent = "Upload cancelled.";
      attempt = null;
      return;
    }
    status.textContent = "";
    if (!attempt.uploaded) showProgress(0);
    error.textContent = failure.message;
    // A validation error needs new input, not a retry of the same request.
    retry.hidden = failure.code === "VALIDATION_ERROR";
    if (failure.code === "VALIDATION_ERROR") attempt = null;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  error.textContent = "";
  if (!email.value.trim() || !email.checkValidity()) {
    error.textContent = "Please enter a valid email address.";
    email.focus();
    return;
  }
  const file = photo.files[0];
  const refusal = checkFile(file, maxBytes);
  if (refusal) {
    error.textContent = refusal;
    photo.focus();
    return;
  }
  progressBox.hidden = false;
  showProgress(0);
  attempt = new UploadAttempt(file, email.value.trim(), {
    onProgress: showProgress,
    onStep: (step) => { status.textContent = STEPS[step]; },
  });
  run();
});

retry.addEventListener("click", () => { if (attempt) run(); });
cancel.addEventListener("click", () => { if (attempt) attempt.cancel(); });
