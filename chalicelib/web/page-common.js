// Built from client/src/page-common.ts by `npm run build:web` in client/: edit the source, not this file.
// What the two served pages share: their settings from the page itself, and the client made from them. The
// library takes its base explicitly; only these page scripts read it from the HTML.
import { createClient } from "./api.js";
function meta(name) {
    const element = document.querySelector(`meta[name="${name}"]`);
    return (element?.getAttribute("content") ?? "").trim().replace(/\/+$/, "");
}
/** The API's base (`<meta name="3d-ultra-api-base">`): an origin plus stage, a path prefix, or "" for the root. */
export const apiBase = () => meta("3d-ultra-api-base");
/** The URL of one of the pages (`/processing/{jobId}`), under `<meta name="3d-ultra-page-base">`. */
export function pageUrl(path) {
    return meta("3d-ultra-page-base") + path;
}
/** The pages' client; a test may set `globalThis.threeDUltraTiming` before the modules load to shorten waits. */
export function pageClient() {
    const timing = globalThis.threeDUltraTiming;
    return createClient({
        baseUrl: apiBase(),
        timing,
        onError: (error, context) => {
            console.error(`3d-ultra: ${context.storage} is unavailable:`, error);
        },
    });
}
export function byId(id) {
    const element = document.getElementById(id);
    if (!element)
        throw new Error(`3d-ultra: the page has no #${id}`);
    return element;
}
