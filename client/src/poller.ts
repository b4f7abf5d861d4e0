// Following a job for the processing screen: poll its status with backoff, look again soon after a change, pause
// while the page is hidden (and look at once when it is shown), wait out offline spells, and stop for good on a
// final status or on an answer no later poll can change (410, no token, a token refused).

import type { JobStatus, UploadClient } from "./api.js";
import { ApiError, isAbort, toApiError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { browserIsOnline, nextPollDelay, waitUntilOnline } from "./retry.js";
import { clearSession } from "./session.js";

/** Statuses after which nothing changes any more. */
export const FINAL_JOB_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "expired", "cancelled"]);
/** Failures that end the polling: the job or its token can never be read again from this device. */
export const STOPPING_CODES: ReadonlySet<string> = new Set([
  "NO_SESSION", "MISSING_TOKEN", "INVALID_TOKEN", "UPLOAD_NOT_FOUND", "UPLOAD_EXPIRED", "UPLOAD_CANCELLED",
]);
// These mean the stored token can never work again: forget it.
const DEAD_TOKEN = new Set(["INVALID_TOKEN", "UPLOAD_NOT_FOUND", "UPLOAD_EXPIRED", "UPLOAD_CANCELLED"]);

export interface JobPollState {
  readonly job: JobStatus | null;
  /** The last failure: a passing one while polling goes on, or the one that stopped it. */
  readonly error: ApiError | null;
  /** No more polls: a final status, or a failure in STOPPING_CODES (or any 410). */
  readonly stopped: boolean;
  /** Polling waits for the page to be shown again. */
  readonly paused: boolean;
  /** Polling waits for the browser to be back online. */
  readonly offline: boolean;
  /** The wait before the next poll, while one is scheduled. */
  readonly nextPollMs: number | null;
}

/** Whether the page is visible, and news when that changes (default: the document, where there is one). */
export interface Visibility {
  isHidden(): boolean;
  onChange(listener: () => void): () => void;
}

export interface JobPollerOptions {
  readonly client: UploadClient;
  readonly jobId: string;
  /** The job's token; default: the one stored on this device. */
  readonly token?: string | null | undefined;
  readonly visibility?: Visibility | undefined;
  readonly isOnline?: (() => boolean) | undefined;
  readonly untilOnline?: ((signal?: AbortSignal) => Promise<void>) | undefined;
}

export const INITIAL_POLL_STATE: JobPollState = Object.freeze({
  job: null, error: null, stopped: false, paused: false, offline: false, nextPollMs: null,
});

/** The document's visibility, or a page that is always visible outside a browser. */
export function documentVisibility(): Visibility {
  const doc = (globalThis as { document?: Document }).document;
  if (!doc) return { isHidden: () => false, onChange: () => () => undefined };
  return {
    isHidden: () => doc.visibilityState === "hidden",
    onChange: (listener) => {
      doc.addEventListener("visibilitychange", listener);
      return () => doc.removeEventListener("visibilitychange", listener);
    },
  };
}

export type JobPollListener = (state: JobPollState) => void;

export class JobPoller {
  private readonly options: JobPollerOptions;
  private readonly visibility: Visibility;
  private readonly listeners = new Listeners<JobPollListener>();
  private current: JobPollState = INITIAL_POLL_STATE;
  private delay: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inFlight = false;
  private lastStatus: string | null = null;
  private controller: AbortController | null = null;
  private unwatch: (() => void) | null = null;

  constructor(options: JobPollerOptions) {
    this.options = options;
    this.visibility = options.visibility ?? documentVisibility();
    this.delay = options.client.timing.pollStartMs;
  }

  get state(): JobPollState {
    return this.current;
  }

  subscribe(listener: JobPollListener): () => void {
    return this.listeners.add(listener);
  }

  /** Poll now, then with backoff until stopped. */
  start(): void {
    if (this.controller) return;
    this.controller = new AbortController();
    this.unwatch = this.visibility.onChange(() => this.visibilityChanged());
    void this.poll();
  }

  /** Stop polling and listening (the state stays as it was). */
  stop(): void {
    this.controller?.abort();
    this.controller = null;
    this.clearTimer();
    this.unwatch?.();
    this.unwatch = null;
  }

  private set(change: Partial<JobPollState>): void {
    this.current = Object.freeze({ ...this.current, ...change });
    this.listeners.notify(this.current);
  }

  private get active(): boolean {
    return this.controller !== null && !this.current.stopped;
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private end(change: Partial<JobPollState>): void {
    this.stop();
    this.set({ ...change, stopped: true, nextPollMs: null, paused: false, offline: false });
  }

  private visibilityChanged(): void {
    if (!this.active) return;
    if (this.visibility.isHidden()) {
      this.clearTimer();
      this.set({ paused: true, nextPollMs: null });
    } else if (this.current.paused) {
      this.delay = this.options.client.timing.pollStartMs;
      this.set({ paused: false });
      if (!this.inFlight) void this.poll();
    }
  }

  private schedule(): void {
    if (!this.active) return;
    if (this.visibility.isHidden()) {
      this.set({ paused: true, nextPollMs: null });
      return;
    }
    const delay = this.delay;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.set({ nextPollMs: null });
      void this.poll();
    }, delay);
    const { pollFactor, pollMaxMs } = this.options.client.timing;
    this.delay = nextPollDelay(delay, { factor: pollFactor, maxMs: pollMaxMs });
    this.set({ nextPollMs: delay });
  }

  private async poll(): Promise<void> {
    const controller = this.controller;
    if (!controller || !this.active) return;
    if (this.visibility.isHidden()) {
      this.schedule();
      return;
    }
    const { client, jobId, token } = this.options;
    const sessionOptions = { onError: client.onError };
    this.inFlight = true;
    try {
      const job = await client.getJob(jobId, { token, signal: controller.signal });
      if (controller.signal.aborted) return;
      // A change of status is news: look again soon.
      if (this.lastStatus !== null && job.status !== this.lastStatus) this.delay = client.timing.pollStartMs;
      this.lastStatus = job.status;
      if (FINAL_JOB_STATUSES.has(job.status)) {
        // A job that is over for good has no use for its token (the set also holds statuses newer servers send).
        if (job.status !== "completed" && job.status !== "failed") clearSession(jobId, sessionOptions);
        this.end({ job, error: null });
        return;
      }
      this.set({ job, error: null, offline: false });
    } catch (caught) {
      if (isAbort(caught) || controller.signal.aborted) return;
      const error = toApiError(caught);
      if (STOPPING_CODES.has(error.code) || error.status === 410) {
        if (DEAD_TOKEN.has(error.code)) clearSession(jobId, sessionOptions);
        this.end({ error });
        return;
      }
      if (error.code === "NETWORK_ERROR" && !(this.options.isOnline ?? browserIsOnline)()) {
        this.set({ error, offline: true });
        this.inFlight = false;
        try {
          await (this.options.untilOnline ?? waitUntilOnline)(controller.signal);
        } catch {
          return;
        }
        this.delay = client.timing.pollStartMs;
        this.set({ offline: false });
        void this.poll();
        return;
      }
      // A passing failure (network, 5xx): say so and keep trying.
      this.set({ error });
    } finally {
      this.inFlight = false;
    }
    this.schedule();
  }
}
