import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import {
  ApiError, JobPoller, SESSION_PREFIX, createClient, type JobPollState, type JobStatus, type Visibility,
} from "../src/index.js";
import { installStorages, removeStorages, type MemoryStorage } from "./helpers.js";

const job = (status: JobStatus["status"]): JobStatus => ({ jobId: "job1", status, fileType: "image/jpeg", fileSize: 10,
  createdAt: "2026-11-28T18:00:00Z", confirmedAt: "2026-11-28T18:00:05Z", updatedAt: "2026-11-28T18:00:05Z", attempt: 1, progress: null, previewUrl: null, resultUrl: null,
  errorMessage: null, resultsDeletedAt: null });

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

  test("a change of status is news: the next poll comes 2 s later again", async () => {
    const { poller, polledAt, states } = pollerFor([job("pending"), job("pending"), job("pending"), job("processing")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(12000);
    poller.stop();

    expect(polledAt).toEqual([0, 2000, 5000, 9500, 11500]);
    expect(states.at(-1)?.job?.status).toBe("processing");
  });

  test("a final status stops the polling and keeps the token of a completed job", async () => {
    const { poller, polledAt, states, visibility } = pollerFor([job("processing"), job("completed")]);
    poller.start();
    await vi.advanceTimersByTimeAsync(60000);

    expect(polledAt).toEqual([0, 2000]);
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
