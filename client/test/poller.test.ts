import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import {
  ApiError, JobPoller, SESSION_PREFIX, createClient, linkRefreshDelay, type JobPollState, type JobStatus,
  type UploadClient, type Visibility,
} from "../src/index.js";
import { installStorages, jobStatus, removeStorages, type MemoryStorage } from "./helpers.js";

const job = (status: JobStatus["status"], fields: Partial<JobStatus> = {}): JobStatus => jobStatus(status, fields);

class FakeVisibility implements Visibility {
  hidden = false;
  private listeners = new Set<() => void>();
  isHidden = (): boolean => this.hidden;
  onChange = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
  set(hidden: boolean): void {
    this.hidden = hidden;
    for (const listener of this.listeners) listener();
  }
  get watched(): number {
    return this.listeners.size;
  }
}

let local: MemoryStorage | null;
beforeEach(() => {
  vi.useFakeTimers();
  ({ local } = installStorages());
  local?.setItem(`${SESSION_PREFIX}job1`, "token1");
});
afterEach(() => {
  vi.useRealTimers();
  removeStorages();
});

/** A poller whose getJob answers `answers` in turn (the last one again), recording the time of each poll. */
function pollerFor(answers: (JobStatus | ApiError)[], options: { online?: () => boolean } = {}) {
  const polledAt: number[] = [];
  const client = createClient({ baseUrl: "", timing: { pollStartMs: 2000, pollFactor: 1.5, pollMaxMs: 30000 } });
  const start = Date.now();
  const scripted = {
    ...client,
    getJob: async () => {
      polledAt.push(Date.now() - start);
      const answer = answers.length > 1 ? answers.shift() : answers[0];
      if (answer instanceof ApiError) throw answer;
      return answer ?? job("pending");
    },
  };
  const visibility = new FakeVisibility();
  let resumeOnline: (() => void) | undefined;
  const poller = new JobPoller({ client: scripted, jobId: "job1", visibility, isOnline: options.online,
    untilOnline: () => new Promise<void>((resolve) => { resumeOnline = resolve; }) });
  const states: JobPollState[] = [];
  poller.subscribe((state) => states.push(state));
  return { poller, polledAt, visibility, states, online: () => resumeOnline?.() };
}

describe("following a job", () => {
  test("polls at once, then after 2 s, each wait half as long again, up to 30 s", async () => {
    const { poller, polledAt } = pollerFor([job("pending")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(100000);
    poller.stop();

    expect(polledAt.slice(0, 8)).toEqual([0, 2000, 5000, 9500, 16250, 26375, 41563, 64345]);
    expect(polledAt[8]! - polledAt[7]!).toBe(30000);
  });

  test("a change of status is news: processing is polled every 1.5 s", async () => {
    const { poller, polledAt, states } = pollerFor([job("pending"), job("pending"), job("pending"), job("processing")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(12000);
    poller.stop();

    expect(polledAt).toEqual([0, 2000, 5000, 9500, 11000]);
    expect(states.at(-1)?.job?.status).toBe("processing");
  });

  test("a final status stops the polling and keeps the token of a completed job", async () => {
    const { poller, polledAt, states, visibility } = pollerFor([job("processing"), job("completed")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(60000);

    expect(polledAt).toEqual([0, 1500]);
    expect(states.at(-1)).toMatchObject({ stopped: true, nextPollMs: null, job: { status: "completed" } });
    expect(local?.getItem(`${SESSION_PREFIX}job1`)).toBe("token1");
    expect(visibility.watched).toBe(0);
  });

  test("a 410 (cancelled or expired) stops the polling and forgets the token", async () => {
    const { poller, polledAt, states } = pollerFor([new ApiError(410, "UPLOAD_CANCELLED", "This upload was cancelled.")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(60000);

    expect(polledAt).toEqual([0]);
    expect(states.at(-1)).toMatchObject({ stopped: true, error: { code: "UPLOAD_CANCELLED" } });
    expect(local?.getItem(`${SESSION_PREFIX}job1`)).toBeNull();
  });

  test("no token on this device stops at once with NO_SESSION", async () => {
    local?.clear();
    const client = createClient({ baseUrl: "", fetch: async () => { throw new Error("nothing may be sent"); } });
    const poller = new JobPoller({ client, jobId: "job1", visibility: new FakeVisibility() });
    poller.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(poller.state).toMatchObject({ stopped: true, error: { code: "NO_SESSION" } });
  });

  test("a passing failure is shown while polling goes on", async () => {
    const { poller, states, polledAt } = pollerFor([new ApiError(503, "SERVICE_UNAVAILABLE", "down"), job("pending")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(states.at(-1)).toMatchObject({ stopped: false, error: { code: "SERVICE_UNAVAILABLE" }, nextPollMs: 2000 });
    await vi.advanceTimersByTimeAsync(2000);
    poller.stop();
    expect(polledAt).toEqual([0, 2000]);
    expect(states.at(-1)).toMatchObject({ error: null, job: { status: "pending" } });
  });

  test("no polls while the page is hidden; shown again, it looks at once and starts again from 2 s", async () => {
    const { poller, polledAt, visibility, states } = pollerFor([job("pending")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(6000);
    expect(polledAt).toEqual([0, 2000, 5000]);
    visibility.set(true);
    expect(states.at(-1)).toMatchObject({ paused: true, nextPollMs: null });
    await vi.advanceTimersByTimeAsync(120000);
    expect(polledAt).toHaveLength(3);

    visibility.set(false);
    await vi.advanceTimersByTimeAsync(2000);
    poller.stop();
    expect(polledAt.slice(3).map((at) => at - polledAt[3]!)).toEqual([0, 2000]);
  });

  test("offline, it waits for the network instead of polling", async () => {
    let online = false;
    const { poller, polledAt, states, online: comeBack } = pollerFor(
      [new ApiError(0, "NETWORK_ERROR", "offline"), job("pending")], { online: () => online });
    poller.start();
    await vi.advanceTimersByTimeAsync(60000);
    expect(polledAt).toHaveLength(1);
    expect(states.at(-1)).toMatchObject({ offline: true });

    online = true;
    comeBack();
    await vi.advanceTimersByTimeAsync(10);
    poller.stop();
    expect(polledAt).toHaveLength(2);
    expect(states.at(-1)).toMatchObject({ offline: false, job: { status: "pending" } });
  });
});

/** A poller over a client whose getJob and retryJob are given. */
function scripted(getJob: () => Promise<JobStatus>, retryJob: UploadClient["retryJob"] = async () => {
  throw new ApiError(409, "JOB_NOT_RETRYABLE", "no");
}, timing: Partial<UploadClient["timing"]> = {}) {
  const client = createClient({ baseUrl: "", timing: { pollStartMs: 2000, pollFactor: 1.5, pollMaxMs: 30000,
    pollProcessingMs: 1500, linkRefreshMs: 720000, ...timing } });
  const start = Date.now();
  const polledAt: number[] = [];
  const poller = new JobPoller({ client: { ...client, getJob: async () => {
    polledAt.push(Date.now() - start);
    return getJob();
  }, retryJob }, jobId: "job1", visibility: new FakeVisibility() });
  return { poller, polledAt };
}

const link = (name: string, expires = 900) =>
  `http://storage.test/b/${name}?X-Amz-Expires=${expires}&X-Amz-Signature=s${Date.now()}`;

describe("progress, preview and model", () => {
  test("while processing it polls every 1.5 s, and exposes progress, preview and model", async () => {
    const answers = [job("pending"), job("processing", { progress: 10 }), job("processing", { progress: 40,
      previewUrl: link("preview.jpg") }), job("processing", { progress: 80, previewUrl: link("preview.jpg") })];
    const { poller, polledAt, states } = pollerFor(answers);
    poller.start();
    await vi.advanceTimersByTimeAsync(2000 + 1500 * 4);
    poller.stop();
    expect(polledAt).toEqual([0, 2000, 3500, 5000, 6500, 8000]);
    expect(states.at(-1)?.job).toMatchObject({ status: "processing", progress: 80 });
    expect(states.at(-1)?.job?.previewUrl).toMatch(/preview\.jpg/);
  });

  test("a completed job's links are asked for again before they expire, and polling keeps on doing so", async () => {
    let n = 0;
    const { poller, polledAt } = scripted(async () => {
      n += 1;
      return job("completed", { progress: 100, previewUrl: link("p.jpg"), resultUrl: link(`model${n}.glb`) });
    });
    poller.start();
    await vi.advanceTimersByTimeAsync(60 * 60 * 1000);
    // 80 % of the links' 900 s: every 720 s, for the hour.
    expect(polledAt).toEqual([0, 720000, 1440000, 2160000, 2880000, 3600000]);
    expect(poller.state).toMatchObject({ stopped: true, job: { status: "completed" } });
    expect(poller.state.job?.resultUrl).toMatch(/model6\.glb/);
    poller.stop();
  });

  test("links that say they last less are asked for sooner; a job without links stops polling", async () => {
    expect(linkRefreshDelay({ previewUrl: null, resultUrl: link("m.glb", 60) }, 720000)).toBe(48000);
    expect(linkRefreshDelay({ previewUrl: "not a url", resultUrl: null }, 720000)).toBe(720000);
    expect(linkRefreshDelay({ previewUrl: null, resultUrl: null }, 720000)).toBeNull();
    const { poller, polledAt } = scripted(async () => job("failed", { errorMessage: "No object found." }));
    poller.start();
    await vi.advanceTimersByTimeAsync(60 * 60 * 1000);
    expect(polledAt).toEqual([0]);
    expect(poller.state).toMatchObject({ stopped: true, job: { errorMessage: "No object found." } });
  });

  test("retry: a failed job is processed again and followed to completed", async () => {
    const answers = [job("failed", { errorMessage: "No object found." }), job("processing", { attempt: 2, progress: 50 }),
      job("completed", { attempt: 2, progress: 100, resultUrl: link("m.glb") })];
    const retried: (string | null | undefined)[] = [];
    const { poller, polledAt } = scripted(async () => (answers.length > 1 ? answers.shift()! : answers[0]!),
      async (_id, options) => {
        retried.push(options?.token);
        return { jobId: "job1", status: "pending", attempt: 2 };
      });
    poller.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(poller.state).toMatchObject({ stopped: true, job: { status: "failed" } });

    let accepted: Promise<boolean> = Promise.resolve(false);
    accepted = poller.retry();
    expect(poller.state.retrying).toBe(true);
    expect(await accepted).toBe(true);
    expect(poller.state).toMatchObject({ stopped: false, retrying: false, job: { status: "pending", attempt: 2,
      errorMessage: null } });
    await vi.advanceTimersByTimeAsync(1500);
    expect(poller.state).toMatchObject({ stopped: true, job: { status: "completed", attempt: 2 } });
    // Followed again at once, then every 1.5 s while processing.
    expect(polledAt).toEqual([0, 10, 1510]);
    expect(retried).toEqual([undefined]);
    poller.stop();
  });

  test("a refused retry keeps the failed job and says why", async () => {
    const { poller } = scripted(async () => job("failed", { errorMessage: "No object found." }), async () => {
      throw new ApiError(409, "RETRY_LIMIT_REACHED", "This photo was tried as often as we allow.");
    });
    poller.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(await poller.retry()).toBe(false);
    expect(poller.state).toMatchObject({ stopped: true, retrying: false, error: null,
      retryError: { code: "RETRY_LIMIT_REACHED" }, job: { status: "failed" } });
  });
});

test("the view credential given is passed to every status request", async () => {
  local?.clear();
  const seen: unknown[] = [];
  const client = createClient({ baseUrl: "", timing: { pollStartMs: 10 } });
  const poller = new JobPoller({ client: { ...client, getJob: async (_id, options) => {
    seen.push(options?.viewToken);
    return job("completed", { progress: 100 });
  } }, jobId: "job1", viewToken: "view-1", visibility: new FakeVisibility() });
  poller.start();
  await vi.advanceTimersByTimeAsync(10);
  expect(seen).toEqual(["view-1"]);
  expect(poller.state).toMatchObject({ stopped: true, job: { status: "completed" } });
});
