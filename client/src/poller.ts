// Following a job for the processing screen: poll its status with backoff while it waits, briskly while it is
// processed, look again soon after a change, pause while the page is hidden (and look at once when it is shown),
// wait out offline spells, and stop on a final status or on an answer no later poll can change (410, no token, a
// token refused). A finished job's preview and model links expire: they are asked for afresh before they do. A
// failed job can be retried, and is then followed again.

import type { JobStatus, UploadClient } from "./api.js";
import { ApiError, isAbort, toApiError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { browserIsOnline, nextPollDelay, waitUntilOnline } from "./retry.js";
import { clearSession, clearViewToken } from "./session.js";

/** Statuses after which nothing changes any more (but a retry of a failed job). */
export const FINAL_JOB_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "expired", "cancelled"]);
/** Statuses during which the job is being worked on: polled every pollProcessingMs. */
export const ACTIVE_JOB_STATUSES: ReadonlySet<string> = new Set(["processing"]);
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
  /**
   * The status will not change: a final status, or a failure in STOPPING_CODES (or any 410). A finished job's
   * links are still fetched afresh before they expire while the poller runs.
   */
  readonly stopped: boolean;
  /** Polling waits for the page to be shown again. */
  readonly paused: boolean;
  /** Polling waits for the browser to be back online. */
  readonly offline: boolean;
  /** The wait before the next poll, while one is scheduled. */
  readonly nextPollMs: number | null;
  /** A retry (POST .../retry) is on its way. */
  readonly retrying: boolean;
  /** Why the last retry was refused (RETRY_LIMIT_REACHED, say); null once one is accepted. */
  readonly retryError: ApiError | null;
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
  /** The emailed link's view credential, used without a session token; default: the one stored on this device. */
  readonly viewToken?: string | null | undefined;
  readonly visibility?: Visibility | undefined;
  readonly isOnline?: (() => boolean) | undefined;
  readonly untilOnline?: ((signal?: AbortSignal) => Promise<void>) | undefined;
}

export const INITIAL_POLL_STATE: JobPollState = Object.freeze({
  job: null, error: null, stopped: false, paused: false, offline: false, nextPollMs: null, retrying: false,
  retryError: null,
});

/**
 * How long after they came a job's links should be asked for afresh: the shorter of `refreshMs` and 80 % of the
 * life a presigned link states (X-Amz-Expires); null when the job has no link.
 */
export function linkRefreshDelay(job: Pick<JobStatus, "previewUrl" | "resultUrl">, refreshMs: number): number | null {
  const links = [job.previewUrl, job.resultUrl].filter((url): url is string => typeof url === "string" && url !== "");
  if (!links.length) return null;
  let delay = refreshMs;
  for (const link of links) {
    let seconds = Number.NaN;
    try {
      seconds = Number(new URL(link).searchParams.get("X-Amz-Expires") ?? Number.NaN);
    } catch {
      // Not a URL we can read: keep refreshMs.
    }
    if (Number.isFinite(seconds) && seconds > 0) delay = Math.min(delay, seconds * 800);
  }
  return delay;
}

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
  private lastProgress: number | null = null;
  /** When the links of a finished job should be asked for again (Date.now() time), or null. */
  private refreshAt: number | null = null;
  private controller: AbortController | null = null;
  private unwatch: (() => void) | null = null;
  /** start() was called and stop() was not: a retry follows the job again. */
  private wanted = false;

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
    this.wanted = true;
    this.begin();
  }

  /** Stop polling and listening (the state stays as it was). */
  stop(): void {
    this.wanted = false;
    this.halt();
  }

  /**
   * Process a failed job again (POST .../retry), then follow it as from the start. True once the API accepted
   * it; false when it refused (state.retryError says why) or a retry is already on its way.
   */
  async retry(): Promise<boolean> {
    if (this.current.retrying) return false;
    const { client, jobId, token } = this.options;
    this.set({ retrying: true, retryError: null });
    try {
      const started = await client.retryJob(jobId, { token });
      this.halt();
      this.delay = client.timing.pollStartMs;
      this.lastStatus = started.status;
      this.lastProgress = null;
      this.refreshAt = null;
      const job = this.current.job && {
        ...this.current.job, status: started.status, attempt: started.attempt, progress: null, resultUrl: null,
        errorMessage: null,
      };
      this.set({ job, error: null, stopped: false, retrying: false, nextPollMs: null });
      if (this.wanted) this.begin();
      return true;
    } catch (caught) {
      this.set({ retrying: false, retryError: toApiError(caught) });
      return false;
    }
  }

  private begin(): void {
    if (this.controller) return;
    this.controller = new AbortController();
    this.unwatch = this.visibility.onChange(() => this.visibilityChanged());
    void this.poll();
  }

  private halt(): void {
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
    return this.controller !== null;
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private end(change: Partial<JobPollState>): void {
    this.halt();
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
      if (this.inFlight) return;
      // A finished job whose links are still good waits for their time; anything else is looked at at once.
      if (this.refreshAt !== null && Date.now() < this.refreshAt) this.schedule();
      else void this.poll();
    }
  }

  private schedule(): void {
    if (!this.active) return;
    if (this.visibility.isHidden()) {
      this.set({ paused: true, nextPollMs: null });
      return;
    }
    const { pollFactor, pollMaxMs, pollProcessingMs } = this.options.client.timing;
    let delay: number;
    if (this.refreshAt !== null && Date.now() < this.refreshAt) {
      delay = this.refreshAt - Date.now();
    } else if (!this.current.error && this.lastStatus !== null && ACTIVE_JOB_STATUSES.has(this.lastStatus)) {
      delay = pollProcessingMs;
    } else {
      delay = this.delay;
      this.delay = nextPollDelay(delay, { factor: pollFactor, maxMs: pollMaxMs });
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.set({ nextPollMs: null });
      void this.poll();
    }, delay);
    this.set({ nextPollMs: delay });
  }

  private async poll(): Promise<void> {
    const controller = this.controller;
    if (!controller || !this.active) return;
    if (this.visibility.isHidden()) {
      this.schedule();
      return;
    }
    const { client, jobId, token, viewToken } = this.options;
    const sessionOptions = { onError: client.onError };
    this.inFlight = true;
    try {
      const job = await client.getJob(jobId, { token, viewToken, signal: controller.signal });
      if (controller.signal.aborted) return;
      // A change of status or of progress is news: look again soon.
      if ((this.lastStatus !== null && job.status !== this.lastStatus)
        || (this.lastProgress !== null && job.progress !== this.lastProgress)) this.delay = client.timing.pollStartMs;
      this.lastStatus = job.status;
      this.lastProgress = job.progress ?? null;
      this.refreshAt = null;
      if (FINAL_JOB_STATUSES.has(job.status)) {
        const kept = job.status === "completed" || job.status === "failed";
        // A job that is over for good has no use for its token (the set also holds statuses newer servers send).
        if (!kept) clearSession(jobId, sessionOptions);
        const refresh = kept ? linkRefreshDelay(job, client.timing.linkRefreshMs) : null;
        if (refresh === null) {
          this.end({ job, error: null });
          return;
        }
        // Its links expire: ask for fresh ones before they do.
        this.refreshAt = Date.now() + refresh;
        this.set({ job, error: null, offline: false, stopped: true });
      } else {
        this.set({ job, error: null, offline: false, stopped: false });
      }
    } catch (caught) {
      if (isAbort(caught) || controller.signal.aborted) return;
      const error = toApiError(caught);
      if (STOPPING_CODES.has(error.code) || error.status === 410) {
        if (DEAD_TOKEN.has(error.code)) {
          clearSession(jobId, sessionOptions);
          clearViewToken(jobId, sessionOptions);
        }
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
