// Built from client/src/upload-page.ts by `npm run build:web` in client/: edit the source, not this file.
// The upload page: check the photo before sending anything, run the upload engine (which retries by itself),
// show each step to eyes and screen readers, and offer "Try again" only when waiting can't help. A reload after
// the photo reached storage confirms it instead of asking for it again.
import { UploadEngine, checkFile } from "./engine.js";
import { isAbort } from "./errors.js";
import { detectType } from "./filetype.js";
import { OFFLINE_MESSAGE, describeFailure } from "./messages.js";
import { byId, pageClient, pageUrl } from "./page-common.js";
import { resumableJob } from "./session.js";
const page = byId("upload-page");
const form = byId("upload-form");
const email = byId("email");
const photo = byId("photo");
const dropZone = byId("drop-zone");
const submit = byId("submit");
const cancel = byId("cancel");
const retry = byId("retry");
const progressBox = byId("progress-box");
const progress = byId("progress");
const progressText = byId("progress-text");
const status = byId("status");
const error = byId("error");
const maxBytes = Number(page.dataset["maxBytes"]);
const STEPS = {
    creating: "Preparing your upload…", uploading: "Uploading your photo…", confirming: "Checking your photo…",
};
const FIELDS = { email, photo };
const engine = new UploadEngine({ client: pageClient(), maxBytes });
byId("max-size").textContent = String(Math.floor(maxBytes / 1048576));
// Whether "Try again" resumes the last attempt (it is forgotten when the form changes).
let resumable = false;
let uploading = false;
let announcedQuarter = 0;
let retryTimer;
const chosenFile = () => photo.files?.[0] ?? null;
function setState(state) {
    page.dataset["state"] = state;
}
function busy(isBusy) {
    uploading = isBusy;
    submit.disabled = isBusy;
    email.disabled = isBusy;
    photo.disabled = isBusy;
    dropZone.classList.toggle("disabled", isBusy);
    cancel.hidden = !isBusy;
}
function clearErrors() {
    error.textContent = "";
    for (const [name, field] of Object.entries(FIELDS)) {
        field.removeAttribute("aria-invalid");
        byId(`${name}-error`).textContent = "";
    }
}
/** Show an error next to its field (tied to it for screen readers) and move focus there. */
function fieldError(name, message) {
    const field = FIELDS[name];
    byId(`${name}-error`).textContent = message;
    field.setAttribute("aria-invalid", "true");
    field.focus();
    setState("error");
}
function showProgress(percent) {
    progress.value = percent;
    progressText.textContent = `${percent}%`;
    if (percent === 0)
        announcedQuarter = 0;
    // Screen readers hear every quarter, not every percent.
    const quarter = Math.floor(percent / 25);
    if (quarter > announcedQuarter && percent < 100) {
        announcedQuarter = quarter;
        status.textContent = `Uploading your photo… ${quarter * 25}%`;
    }
}
function showResume() {
    const jobId = resumableJob();
    byId("resume").hidden = !jobId;
    if (jobId)
        byId("resume-link").href = pageUrl(`/processing/${encodeURIComponent(jobId)}`);
}
function formatSize(bytes) {
    return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}
/** A thumbnail drawn on a canvas (a data: URL, which the page's CSP allows), or null if it can't be decoded. */
async function thumbnail(file) {
    try {
        const bitmap = await createImageBitmap(file);
        const scale = 144 / Math.max(bitmap.width, bitmap.height);
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(bitmap.width * scale));
        canvas.height = Math.max(1, Math.round(bitmap.height * scale));
        canvas.getContext("2d")?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        bitmap.close();
        return canvas.toDataURL("image/png");
    }
    catch {
        return null;
    }
}
async function showPreview(file) {
    const preview = byId("preview");
    if (!file) {
        preview.hidden = true;
        return;
    }
    byId("preview-name").textContent = file.name;
    byId("preview-size").textContent = formatSize(file.size);
    const image = byId("preview-image");
    // HEIC and other formats the browser can't decode get an icon instead of a picture.
    const url = await thumbnail(file);
    if (chosenFile() !== file)
        return;
    image.hidden = !url;
    // An SVG element has no `hidden` property: set the attribute.
    document.getElementById("preview-icon")?.toggleAttribute("hidden", Boolean(url));
    if (url)
        image.src = url;
    preview.hidden = false;
}
function chose() {
    clearErrors();
    status.textContent = "";
    withdrawRetry();
    resumable = false;
    setState(chosenFile() ? "chosen" : "idle");
    void showPreview(chosenFile());
}
/** Use files dropped or pasted as if chosen in the input (so the input stays the one source of the photo). */
function takeFiles(files) {
    const file = files?.[0];
    if (!file || uploading)
        return false;
    const transfer = new DataTransfer();
    transfer.items.add(file);
    photo.files = transfer.files;
    chose();
    return true;
}
engine.subscribe((event) => {
    if (event.type === "progress")
        showProgress(event.percent);
    else if (event.type === "step") {
        setState("uploading");
        status.textContent = STEPS[event.step];
        // The confirm can't be taken back once sent: no Cancel while it runs.
        cancel.hidden = event.step === "confirming";
    }
    else if (event.type === "wait") {
        if (event.wait.reason === "offline") {
            setState("offline");
            status.textContent = OFFLINE_MESSAGE;
        }
        else {
            status.textContent = `The connection dropped. Trying again in ${Math.round((event.wait.delayMs ?? 0) / 1000) || 1} s…`;
        }
    }
});
function reset() {
    engine.reset();
    resumable = false;
    busy(false);
    clearErrors();
    progressBox.hidden = true;
    status.textContent = "";
    withdrawRetry();
    setState(chosenFile() ? "chosen" : "idle");
    showResume();
}
async function run(upload) {
    clearErrors();
    withdrawRetry();
    announcedQuarter = 0;
    busy(true);
    setState("uploading");
    try {
        const { uploadId } = await upload();
        uploading = false;
        resumable = false;
        setState("done");
        cancel.hidden = true;
        status.textContent = "Upload complete. Taking you to your model…";
        window.location.assign(pageUrl(`/processing/${encodeURIComponent(uploadId)}`));
    }
    catch (caught) {
        busy(false);
        if (isAbort(caught)) {
            status.textContent = "Upload cancelled.";
            setState(chosenFile() ? "chosen" : "idle");
            progressBox.hidden = true;
            resumable = false;
            showResume();
            submit.focus();
            return;
        }
        const failure = caught;
        status.textContent = "";
        // A bar stuck at 0% says nothing: show it only if the photo itself got through.
        progressBox.hidden = !engine.state.uploaded;
        const { field, message } = describeFailure(failure, { maxBytes });
        if (field) {
            // New input is needed, not a retry of the same request.
            resumable = false;
            progressBox.hidden = true;
            fieldError(field, message);
            return;
        }
        resumable = true;
        setState("error");
        error.textContent = message;
        if (failure.code === "RATE_LIMITED") {
            // Asking again before the server's Retry-After only meets the same refusal.
            retryTimer = setTimeout(() => {
                offerRetry();
                status.textContent = "You can try again now.";
            }, (failure.retryAfter ?? 60) * 1000);
            // Nothing to press yet: the focus goes to the message itself.
            error.focus();
            return;
        }
        offerRetry();
        retry.focus();
    }
}
/** "Try again" resumes the failed attempt; it replaces "Upload" until the form is changed. */
function offerRetry() {
    retry.hidden = false;
    submit.hidden = true;
}
function withdrawRetry() {
    clearTimeout(retryTimer);
    retry.hidden = true;
    submit.hidden = false;
}
form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (uploading)
        return;
    clearErrors();
    if (!email.value.trim() || !email.checkValidity()) {
        fieldError("email", "Please enter a valid email address, like name@example.com.");
        return;
    }
    const file = chosenFile();
    const detected = file ? await detectType(file) : { type: "", recognised: false };
    const refusal = checkFile(file, maxBytes, detected);
    if (refusal || !file) {
        fieldError("photo", refusal ?? "Choose a photo to upload.");
        return;
    }
    progressBox.hidden = false;
    showProgress(0);
    void run(() => engine.start(file, email.value.trim()));
});
photo.addEventListener("change", chose);
// A changed email is a new upload: "Upload" again rather than a retry of the old one.
email.addEventListener("input", () => {
    if (retry.hidden && !submit.hidden)
        return;
    resumable = false;
    withdrawRetry();
    error.textContent = "";
});
retry.addEventListener("click", () => {
    if (resumable)
        void run(() => engine.retry());
});
cancel.addEventListener("click", () => engine.cancel());
for (const type of ["dragenter", "dragover"]) {
    dropZone.addEventListener(type, (event) => {
        event.preventDefault();
        if (!uploading)
            dropZone.classList.add("dragging");
    });
}
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    takeFiles(event.dataTransfer?.files);
});
document.addEventListener("paste", (event) => {
    if (takeFiles(event.clipboardData?.files))
        event.preventDefault();
});
// Say so as soon as the connection goes, not only when a request fails (a hanging PUT may take a while).
window.addEventListener("offline", () => {
    if (!uploading)
        return;
    setState("offline");
    status.textContent = OFFLINE_MESSAGE;
});
window.addEventListener("online", () => {
    if (!uploading || page.dataset["state"] !== "offline")
        return;
    setState("uploading");
    status.textContent = "You're back online. Continuing…";
});
// Leaving mid-upload loses it: ask first.
window.addEventListener("beforeunload", (event) => {
    if (!uploading)
        return;
    event.preventDefault();
    event.returnValue = "";
});
// Back to this page from the browser's cache: it must be a usable form again, not the finished upload.
window.addEventListener("pageshow", (event) => {
    if (event.persisted)
        reset();
});
showResume();
// A reload after the photo reached storage (the confirm not yet through): confirm it rather than lose it.
const pendingConfirm = engine.resumeConfirm();
if (pendingConfirm) {
    progressBox.hidden = true;
    void run(() => pendingConfirm);
}
