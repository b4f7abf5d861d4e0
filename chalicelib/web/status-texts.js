// Built from client/src/status-texts.ts by `npm run build:web` in client/: edit the source, not this file.
// The processing page's words for each job status, in a module of their own that touches no document, so that
// tests can import it outside a browser.
// One entry per job status, as chalicelib/domain.py defines them: its label, and what it means for the person
// waiting. The type is the OpenAPI enum, so tsc refuses a status left out; tests/integration/test_lifecycle.py
// imports the built module (chalicelib/web/status-texts.js) and checks that this list, the domain's, the
// database's and the enum agree. A confirmed job is "pending" with confirmedAt set; a cancelled job's status
// answers 410 UPLOAD_CANCELLED (see MESSAGES in processing-page.ts).
export const STATUSES = {
    pending: {
        label: "Waiting to be processed",
        next: "We have your photo. It's waiting its turn to be turned into a 3D model. Keep this page open to "
            + "watch, or close it: we'll email you a link when your model is ready.",
    },
    processing: {
        label: "Being turned into 3D",
        next: "We're turning your photo into a 3D model. We'll also email you a link when it's ready.",
    },
    completed: { label: "Ready", next: "Your model is ready." },
    failed: { label: "Processing failed", next: "We couldn't build a model from this photo." },
    expired: { label: "Expired", next: "This upload expired before it was finished. Please upload your photo again." },
    cancelled: { label: "Cancelled", next: "This upload was cancelled. Please upload your photo again." },
};
