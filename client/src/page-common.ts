// What the two served pages share: their settings from the page itself, and the client made from them. The
// library takes its base explicitly; only these page scripts read it from the HTML.

import { createClient, type UploadClient } from "./api.js";
import type { StorageFailure } from "./session.js";
import type { Timing } from "./timing.js";

function meta(name: string): string {
  const element = document.querySelector(`meta[name="${name}"]`);
  return (element?.getAttribute("content") ?? "").trim().replace(/\/+$/, "");
}

/** The API's base (`<meta name="3d-ultra-api-base">`): an origin plus stage, a path prefix, or "" for the root. */
export const apiBase = (): string => meta("3d-ultra-api-base");

/** The URL of one of the pages (`/processing/{jobId}`), under `<meta name="3d-ultra-page-base">`. */
export function pageUrl(path: string): string {
  return meta("3d-ultra-page-base") + path;
}

/** The pages' client; a test may set `globalThis.threeDUltraTiming` before the modules load to shorten waits. */
export function pageClient(): UploadClient {
  const timing = (globalThis as { threeDUltraTiming?: Partial<Timing> }).threeDUltraTiming;
  return createClient({
    baseUrl: apiBase(),
    timing,
    onError: (error: unknown, context: StorageFailure) => {
      console.error(`3d-ultra: ${context.storage} is unavailable:`, error);
    },
  });
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`3d-ultra: the page has no #${id}`);
  return element as T;
}
