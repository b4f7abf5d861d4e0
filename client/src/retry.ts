// Retrying a step by itself: which failures are worth another try, the backoff between tries, and waiting out
// an offline spell without using up tries. No DOM here: it runs under Node too.

import { ApiError, abortError, isAbort } from "./errors.js";

// Failures without an HTTP answer that another try may well cure.
const TRANSIENT = new Set<string>(["NETWORK_ERROR", "STALLED", "STORAGE_UNREACHABLE"]);

/** A network failure, a stall, a timeout or a server error: trying the same request again may well succeed. */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof ApiError) || isAbort(error)) return false;
  if (error.status === 0) return TRANSIENT.has(error.code);
  return error.status === 408 || error.status >= 500;
}

/** Wait `ms`, or reject with an AbortError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface EventTargetLike {
  addEventListener?: (type: string, listener: () => void) => void;
  removeEventListener?: (type: string, listener: () => void) => void;
  navigator?: { onLine?: boolean };
}

/** False only when a browser says it is offline. */
export function browserIsOnline(): boolean {
  return (globalThis as EventTargetLike).navigator?.onLine !== false;
}

/** Resolve on the browser's next `online` event (at once where there is no such event); reject on abort. */
export function waitUntilOnline(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const target = globalThis as EventTargetLike;
    if (typeof target.addEventListener !== "function") {
      resolve();
      return;
    }
    const done = (): void => {
      target.removeEventListener?.("online", done);
      signal?.removeEventListener("abort", stop);
      resolve();
    };
    const stop = (): void => {
      target.removeEventListener?.("online", done);
      reject(abortError());
    };
    target.addEventListener("online", done);
    signal?.addEventListener("abort", stop, { once: true });
  });
}

export type WaitReason = "offline" | "retry";

export interface RetryWait {
  readonly reason: WaitReason;
  /** For "retry": the wait before the next try. */
  readonly delayMs: number | null;
  readonly error: ApiError;
}

export interface RetryOptions {
  delays: readonly number[];
  signal?: AbortSignal | undefined;
  onWait?: ((wait: RetryWait) => void) | undefined;
  isOnline?: () => boolean;
  untilOnline?: (signal?: AbortSignal) => Promise<void>;
  wait?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Run `action` until it succeeds. A retryable failure is retried after the next of `delays`; when they run out
 * the last failure is thrown. While the browser is offline nothing is tried and no try is used up: the next try
 * starts on `online`.
 */
export async function withRetry<T>(action: () => Promise<T>, {
  delays, signal, onWait, isOnline = browserIsOnline, untilOnline = waitUntilOnline, wait = sleep,
}: RetryOptions): Promise<T> {
  let failures = 0;
  for (;;) {
    try {
      return await action();
    } catch (error) {
      if (!isRetryable(error) || signal?.aborted) throw error;
      const failure = error as ApiError;
      if (!isOnline()) {
        onWait?.({ reason: "offline", delayMs: null, error: failure });
        await untilOnline(signal);
        continue;
      }
      const delayMs = delays[failures];
      if (delayMs === undefined) throw error;
      failures += 1;
      onWait?.({ reason: "retry", delayMs, error: failure });
      await wait(delayMs, signal);
    }
  }
}

/** The next poll's wait: `factor` times the last, capped at `maxMs`. */
export function nextPollDelay(previousMs: number, { factor, maxMs }: { factor: number; maxMs: number }): number {
  return Math.min(Math.round(previousMs * factor), maxMs);
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or null if absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value === null || value === undefined || value.trim() === "") return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
