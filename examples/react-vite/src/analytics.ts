// Error tracking for the failures the person is not shown (a storage that refuses the session token, say): the
// client's onError goes to PostHog's error tracking when the build names a project key (VITE_POSTHOG_KEY), and
// nowhere otherwise. posthog-js is then loaded on its own (a separate chunk), so a build without a key does not
// carry it. Only the error and where it happened are sent: the context names the storage, the operation and the
// key (a job id), never a token.
import type { ErrorContext } from "@3d-ultra/upload-client";

const KEY: string | undefined = import.meta.env.VITE_POSTHOG_KEY;
const HOST: string = import.meta.env.VITE_POSTHOG_HOST ?? "https://eu.i.posthog.com";

const posthog = KEY
  ? import("posthog-js").then(({ default: client }) => {
    client.init(KEY, { api_host: HOST, autocapture: false, capture_pageview: false });
    return client;
  })
  : null;

export function reportError(error: unknown, context: ErrorContext): void {
  void posthog?.then((client) => client.captureException(error, { ...context, library: "@3d-ultra/upload-client" }));
}
