// How long the client waits between tries. The defaults are the product's; a page (or a test) may set
// `globalThis.threeDUltraTiming = { ... }` before the modules load to change any of them.

export const TIMING = Object.freeze({
  // Waits before the 2nd..6th try of a step that failed on the network or a 5xx; then "Try again" is offered.
  retryDelaysMs: [1000, 2000, 4000, 8000, 16000],
  // An API request with no answer for this long is given up as a network error (and so retried).
  requestTimeoutMs: 30000,
  // A PUT that makes no progress for this long is aborted and retried.
  stallMs: 30000,
  // The processing page polls after 2 s, each wait 1.5 times the last, never more than 30 s apart.
  pollStartMs: 2000,
  pollFactor: 1.5,
  pollMaxMs: 30000,
  ...(globalThis.threeDUltraTiming || {}),
});
