// Retrying a step by itself: which failures are worth another try, the backoff between tries, and waiting
// out an offline spell without using up tries. No DOM here, so it runs under Node's test runner too.

/** A network failure, a timeout or a server error: trying the same request again may well succeed. */
export function isRetryable(error) {
  if (!error || error.name === "AbortError") return false;
  return error.status === 0 || error.status === 408 || error.status >= 500;
}

/** Wait `ms`, or reject with an AbortError as soon as `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      if (signal) signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(timer);
      reject(abortError());
    }
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
  });
}

export function abortError() {
  return new DOMException("Upload cancelled", "AbortError");
}

function browserIsOnline() {
  return !(globalThis.navigator && globalThis.navigator.onLine === false);
}

/** Resolve on the browser's next `online` event; reject with an AbortError if `signal` aborts first. */
export function waitUntilOnline(signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortError());
    const done = () => {
      globalThis.removeEventListener("online", done);
      if (signal) signal.removeEventListener("abort", stop);
      resolve();
    };
    const stop = () => {
      globalThis.removeEventListener("online", done);
      reject(abortError());
    };
    globalThis.addEventListener("online", done);
    if (signal) signal.addEventListener("abort", stop, { once: true });
  });
}

/**
 * Run `action` until it succeeds. A retryable failure is retried after the next of `delays`; when they run out
 * the last failure is thrown. While the browser is offline nothing is tried and no try is used up: the next
 * try starts on `online`. `onWait({reason: "offline" | "retry", delayMs, error})` lets the page say why it waits.
 */
export async function withRetry(action, {
  delays, signal, onWait = () => {}, isOnline = browserIsOnline, untilOnline = waitUntilOnline, wait = sleep,
}) {
  let failures = 0;
  for (;;) {
    try {
      return await action();
    } catch (error) {
      if (!isRetryable(error) || (signal && signal.aborted)) throw error;
      if (!isOnline()) {
        onWait({ reason: "offline", error });
        await untilOnline(signal);
        continue;
      }
      if (failures >= delays.length) throw error;
      const delayMs = delays[failures];
      failures += 1;
      onWait({ reason: "retry", delayMs, error });
      await wait(delayMs, signal);
    }
  }
}

/** The processing page's next wait: `factor` times the last, capped at `maxMs`. */
export function nextPollDelay(previousMs, { factor, maxMs }) {
  return Math.min(Math.round(previousMs * factor), maxMs);
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or null if absent or unreadable. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined || String(value).trim() === "") return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
