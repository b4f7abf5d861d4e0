// Built from client/src/timing.ts by `npm run build:web` in client/: edit the source, not this file.
// How long the client waits between tries. The defaults are the product's; createClient({ timing }) changes any
// of them (tests shorten them; a page may too).
export const DEFAULT_TIMING = Object.freeze({
    retryDelaysMs: Object.freeze([1000, 2000, 4000, 8000, 16000]),
    requestTimeoutMs: 30000,
    stallMs: 30000,
    pollStartMs: 2000,
    pollFactor: 1.5,
    pollMaxMs: 30000,
    pollProcessingMs: 1500,
    // The API's links last 15 minutes (RESULT_LINK_SECONDS in app.py): ask again well before.
    linkRefreshMs: 12 * 60 * 1000,
});
/** The defaults with `overrides` applied (unknown keys and undefined values are ignored). */
export function resolveTiming(overrides = {}) {
    const timing = { ...DEFAULT_TIMING };
    for (const key of Object.keys(DEFAULT_TIMING)) {
        const value = overrides[key];
        if (value !== undefined)
            timing[key] = value;
    }
    return Object.freeze(timing);
}
