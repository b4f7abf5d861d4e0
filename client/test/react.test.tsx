// @vitest-environment happy-dom
import { act, cleanup, renderHook, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import {
  ApiError, CURRENT_JOB_KEY, PENDING_UPLOAD_KEY, SESSION_PREFIX, createClient, type JobStatus,
} from "../src/index.js";
import { useCurrentJob, useJob, useUpload } from "../src/react/index.js";
import { MemoryStorage, installStorages, jobStatus, jpeg, removeStorages, scriptedClient } from "./helpers.js";

// StrictMode at the root, as an app has it: a wrapper component above StrictMode would keep React from
// rehearsing the effects (it double-invokes them only below a StrictMode that is placed with the root).
const STRICT = { reactStrictMode: true } as const;

/** XMLHttpRequest for the PUT: records it, reports progress and answers `status`. */
class FakeXhr {
  static puts: { url: string; type: string | null; size: number }[] = [];
  static status = 200;
  /** While true, a PUT never finishes (until aborted). */
  static hold = false;
  status = 0;
  upload: { onprogress?: (event: ProgressEvent) => void; onload?: () => void } = {};
  onload?: () => void;
  onloadend?: () => void;
  onerror?: () => void;
  onabort?: () => void;
  onreadystatechange?: () => void;
  private url = "";
  private type: string | null = null;
  open(_method: string, url: string): void {
    this.url = url;
  }
  setRequestHeader(name: string, value: string): void {
    if (name === "Content-Type") this.type = value;
  }
  abort(): void {
    this.onabort?.();
    this.onloadend?.();
  }
  send(body: Blob): void {
    FakeXhr.puts.push({ url: this.url, type: this.type, size: body.size });
    if (FakeXhr.hold) return;
    setTimeout(() => {
      this.upload.onprogress?.({ lengthComputable: true, loaded: body.size / 2, total: body.size } as ProgressEvent);
      this.upload.onload?.();
      this.status = FakeXhr.status;
      this.onload?.();
      this.onloadend?.();
    }, 1);
  }
}

let local: MemoryStorage;
let session: MemoryStorage;
beforeEach(() => {
  local = new MemoryStorage();
  session = new MemoryStorage();
  installStorages({ local, session });
  FakeXhr.puts = [];
  FakeXhr.status = 200;
  FakeXhr.hold = false;
  globalThis.XMLHttpRequest = FakeXhr as unknown as typeof XMLHttpRequest;
});
afterEach(() => {
  cleanup();
  removeStorages();
});

describe("useUpload under StrictMode", () => {
  test("starts idle, then startUpload creates, PUTs, confirms, stores the session and returns the story's result", async () => {
    const { client, calls } = scriptedClient();
    const { result } = renderHook(() => useUpload({ client }), STRICT);
    expect(result.current.state).toMatchObject({ status: "idle", progress: 0, error: null });

    let outcome: Awaited<ReturnType<typeof result.current.startUpload>> = null;
    await act(async () => {
      outcome = await result.current.startUpload(jpeg(), "maya@example.com");
    });

    expect(outcome).toEqual({ uploadId: "job1", sessionToken: "token1" });
    expect(result.current.state).toMatchObject({ status: "done", progress: 100, error: null, uploadId: "job1" });
    expect(calls.create).toHaveLength(1);
    expect(FakeXhr.puts).toEqual([{ url: "https://storage/url1", type: "image/jpeg", size: 1234 }]);
    expect(calls.confirm).toEqual([{ id: "job1", token: "token1" }]);
    expect(local.getItem(`${SESSION_PREFIX}job1`)).toBe("token1");
    expect(local.getItem(CURRENT_JOB_KEY)).toBe("job1");
  });

  test("a failing confirm gives null and an error state; confirmUpload(uploadId) then succeeds and gives true", async () => {
    const down = Array.from({ length: 6 }, () => new ApiError(503, "SERVICE_UNAVAILABLE", "down"));
    const { client, calls } = scriptedClient({ confirm: down });
    const { result } = renderHook(() => useUpload({ client }), STRICT);

    let started: unknown;
    await act(async () => {
      started = await result.current.startUpload(jpeg(), "maya@example.com");
    });
    expect(started).toBeNull();
    expect(result.current.state).toMatchObject({ status: "error", uploadId: "job1", uploaded: true,
      error: { code: "SERVICE_UNAVAILABLE" } });
    expect(local.getItem(`${SESSION_PREFIX}job1`)).toBeNull();

    let confirmed = false;
    await act(async () => {
      confirmed = await result.current.confirmUpload("job1");
    });
    expect(confirmed).toBe(true);
    expect(result.current.state.status).toBe("done");
    expect(calls.create).toHaveLength(1);
    expect(FakeXhr.puts).toHaveLength(1);
    expect(local.getItem(`${SESSION_PREFIX}job1`)).toBe("token1");
  });

  test("a reload between the PUT and the confirm: the next mount confirms the kept attempt", async () => {
    session.setItem(PENDING_UPLOAD_KEY, JSON.stringify({ uploadId: "job7", sessionToken: "token7" }));
    const { client } = scriptedClient();
    const { result } = renderHook(() => useUpload({ client }), STRICT);

    await waitFor(() => expect(result.current.state.status).toBe("done"));
    expect(result.current.state.result).toMatchObject({ uploadId: "job7", sessionToken: "token7" });
    expect(local.getItem(`${SESSION_PREFIX}job7`)).toBe("token7");
    expect(session.getItem(PENDING_UPLOAD_KEY)).toBeNull();
  });

  test("a file that is not a photo gives null and an INVALID_FILE error, nothing sent", async () => {
    const { client, calls } = scriptedClient();
    const { result } = renderHook(() => useUpload({ client }), STRICT);
    let started: unknown = "unset";
    await act(async () => {
      started = await result.current.startUpload(new File(["hello"], "notes.txt", { type: "text/plain" }), "maya@example.com");
    });
    expect(started).toBeNull();
    expect(result.current.state.error).toMatchObject({ code: "INVALID_FILE" });
    expect(calls.create).toEqual([]);
  });

  test("the size limit is asked of the API when none is given", async () => {
    const { client, calls } = scriptedClient();
    const small = { ...client, limits: async () => ({ maxUploadBytes: 1000, fileTypes: [] }) };
    const { result } = renderHook(() => useUpload({ client: small }), STRICT);
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
    });
    await act(async () => {
      await result.current.startUpload(jpeg(2000), "maya@example.com");
    });
    expect(result.current.state.error).toMatchObject({ code: "INVALID_FILE" });
    expect(calls.create).toEqual([]);
  });

  test("cancelUpload during the PUT goes back to idle and withdraws the job", async () => {
    FakeXhr.hold = true;
    const { client, calls } = scriptedClient();
    const { result } = renderHook(() => useUpload({ client }), STRICT);
    let started: Promise<unknown> = Promise.resolve();
    act(() => {
      started = result.current.startUpload(jpeg(), "maya@example.com");
    });
    await waitFor(() => expect(result.current.state.status).toBe("uploading"));
    act(() => result.current.cancelUpload());
    expect(await started).toBeNull();
    expect(result.current.state.status).toBe("idle");
    expect(calls.cancel).toEqual([{ id: "job1", token: "token1" }]);
  });

  test("reset after an error goes back to idle", async () => {
    const { client } = scriptedClient({ create: [new ApiError(400, "VALIDATION_ERROR", "email: bad")] });
    const { result } = renderHook(() => useUpload({ client }), STRICT);
    await act(async () => {
      await result.current.startUpload(jpeg(), "nope");
    });
    expect(result.current.state.status).toBe("error");
    act(() => result.current.reset());
    expect(result.current.state).toMatchObject({ status: "idle", error: null });
  });
});

describe("useUpload's onUploadComplete, retry and busy under StrictMode", () => {
  const down = (n = 6) => Array.from({ length: n }, () => new ApiError(503, "SERVICE_UNAVAILABLE", "down"));
  const settle = () => act(async () => {
    await new Promise((resolve) => setTimeout(resolve, 20));
  });

  test("startUpload: onUploadComplete once with the job; busy while it runs, not after", async () => {
    FakeXhr.hold = true;
    const { client } = scriptedClient();
    const onUploadComplete = vi.fn();
    const { result } = renderHook(() => useUpload({ client, onUploadComplete }), STRICT);
    expect(result.current.state.busy).toBe(false);
    let started: Promise<unknown> = Promise.resolve();
    act(() => {
      started = result.current.startUpload(jpeg(), "maya@example.com");
    });
    await waitFor(() => expect(result.current.state.status).toBe("uploading"));
    expect(result.current.state.busy).toBe(true);
    FakeXhr.hold = false;
    act(() => result.current.cancelUpload());
    await started;
    expect(result.current.state.busy).toBe(false);

    await act(async () => {
      await result.current.startUpload(jpeg(), "maya@example.com");
    });
    await settle();
    expect(result.current.state).toMatchObject({ status: "done", busy: false });
    expect(onUploadComplete).toHaveBeenCalledTimes(1);
    expect(onUploadComplete).toHaveBeenCalledWith(expect.objectContaining({ uploadId: "job2", sessionToken: "token2" }));
  });

  test("busy while a step waits to be tried again", async () => {
    const { client } = scriptedClient({ create: down(1), timing: { retryDelaysMs: [200] } });
    const { result } = renderHook(() => useUpload({ client }), STRICT);
    act(() => {
      void result.current.startUpload(jpeg(), "maya@example.com");
    });
    await waitFor(() => expect(result.current.state.status).toBe("waiting"));
    expect(result.current.state.busy).toBe(true);
    act(() => result.current.cancelUpload());
  });

  test("retry after a failed create resumes the same attempt: one key, one job, onUploadComplete once", async () => {
    const { client, calls } = scriptedClient({ create: down() });
    const onUploadComplete = vi.fn();
    const { result } = renderHook(() => useUpload({ client, onUploadComplete }), STRICT);
    await act(async () => {
      expect(await result.current.startUpload(jpeg(), "maya@example.com")).toBeNull();
    });
    expect(result.current.state).toMatchObject({ status: "error", step: "creating", busy: false });

    let retried: unknown;
    await act(async () => {
      retried = await result.current.retry();
    });
    expect(retried).toEqual({ uploadId: "job1", sessionToken: "token1" });
    expect(new Set(calls.create.map(({ key }) => key)).size).toBe(1);
    expect(calls.confirm).toEqual([{ id: "job1", token: "token1" }]);
    await settle();
    expect(onUploadComplete).toHaveBeenCalledTimes(1);
    expect(onUploadComplete.mock.calls[0]?.[0]).toMatchObject({ uploadId: "job1" });
  });

  test("retry after a failed PUT PUTs again to the same job without creating another", async () => {
    FakeXhr.status = 500;
    const { client, calls } = scriptedClient();
    const onUploadComplete = vi.fn();
    const { result } = renderHook(() => useUpload({ client, onUploadComplete }), STRICT);
    await act(async () => {
      await result.current.startUpload(jpeg(), "maya@example.com");
    });
    expect(result.current.state).toMatchObject({ status: "error", uploadId: "job1", uploaded: false,
      error: { code: "STORAGE_UNAVAILABLE" } });
    FakeXhr.status = 200;
    await act(async () => {
      await result.current.retry();
    });
    expect(result.current.state).toMatchObject({ status: "done", uploadId: "job1" });
    expect(calls.create).toHaveLength(1);
    expect(FakeXhr.puts.length).toBe(7);
    await settle();
    expect(onUploadComplete).toHaveBeenCalledTimes(1);
  });

  test("retry with nothing to retry gives null and sends nothing", async () => {
    const { client, calls } = scriptedClient();
    const { result } = renderHook(() => useUpload({ client }), STRICT);
    let retried: unknown = "unset";
    await act(async () => {
      retried = await result.current.retry();
    });
    expect(retried).toBeNull();
    expect(calls.create).toEqual([]);
  });

  test("a confirm resumed after a reload is sent once under StrictMode's double effects", async () => {
    session.setItem(PENDING_UPLOAD_KEY, JSON.stringify({ uploadId: "job7", sessionToken: "token7" }));
    const { client, calls } = scriptedClient();
    const { result } = renderHook(() => useUpload({ client }), STRICT);
    await waitFor(() => expect(result.current.state.status).toBe("done"));
    await settle();
    expect(calls.confirm).toEqual([{ id: "job7", token: "token7" }]);
  });

  test("a confirm resumed after a reload is reported once", async () => {
    session.setItem(PENDING_UPLOAD_KEY, JSON.stringify({ uploadId: "job7", sessionToken: "token7" }));
    const { client, calls } = scriptedClient();
    const onUploadComplete = vi.fn();
    const { result } = renderHook(() => useUpload({ client, onUploadComplete }), STRICT);

    await waitFor(() => expect(result.current.state.status).toBe("done"));
    await settle();
    expect(calls.confirm).toEqual([{ id: "job7", token: "token7" }]);
    expect(onUploadComplete).toHaveBeenCalledTimes(1);
    expect(onUploadComplete).toHaveBeenCalledWith(expect.objectContaining({ uploadId: "job7", sessionToken: "token7" }));
  });

  test("confirmUpload after a failed confirm: reported once, and not again when confirmed a second time", async () => {
    const { client, calls } = scriptedClient({ confirm: down() });
    const onUploadComplete = vi.fn();
    const { result } = renderHook(() => useUpload({ client, onUploadComplete }), STRICT);
    await act(async () => {
      await result.current.startUpload(jpeg(), "maya@example.com");
    });
    expect(onUploadComplete).not.toHaveBeenCalled();
    await act(async () => {
      expect(await result.current.confirmUpload("job1")).toBe(true);
    });
    await act(async () => {
      expect(await result.current.confirmUpload("job1")).toBe(true);
    });
    await settle();
    expect(calls.confirm.length).toBe(8);
    expect(onUploadComplete).toHaveBeenCalledTimes(1);
  });

  test("the newest onUploadComplete given is the one called", async () => {
    const { client } = scriptedClient();
    const first = vi.fn();
    const second = vi.fn();
    const { result, rerender } = renderHook(({ done }) => useUpload({ client, onUploadComplete: done }),
      { ...STRICT, initialProps: { done: first } });
    rerender({ done: second });
    await act(async () => {
      await result.current.startUpload(jpeg(), "maya@example.com");
    });
    expect(first).not.toHaveBeenCalled();
    expect(second).toHaveBeenCalledTimes(1);
  });
});

describe("useCurrentJob under StrictMode", () => {
  test("the stored current job whose token is kept; null without one; follows an upload in this tab", async () => {
    const { client } = scriptedClient();
    const { result } = renderHook(() => ({ current: useCurrentJob(), upload: useUpload({ client }) }),
      STRICT);
    expect(result.current.current).toBeNull();
    await act(async () => {
      await result.current.upload.startUpload(jpeg(), "maya@example.com");
    });
    expect(result.current.current).toBe("job1");
  });

  test("a current job whose token is gone is not offered", () => {
    local.setItem(CURRENT_JOB_KEY, "job9");
    const { result } = renderHook(() => useCurrentJob(), STRICT);
    expect(result.current).toBeNull();
    local.setItem(`${SESSION_PREFIX}job9`, "token9");
    act(() => {
      window.dispatchEvent(new Event("storage"));
    });
    expect(result.current).toBe("job9");
  });
});

describe("useJob under StrictMode", () => {
  const job = (status: JobStatus["status"], fields: Partial<JobStatus> = {}): JobStatus => jobStatus(status, fields);

  test("follows the job until a final status", async () => {
    const answers = [job("pending"), job("completed")];
    const { client } = scriptedClient({ timing: { pollStartMs: 5 } });
    const polling = { ...client, getJob: async () => answers.length > 1 ? answers.shift()! : answers[0]! };
    const { result } = renderHook(() => useJob("job1", { client: polling }), STRICT);
    expect(result.current).toMatchObject({ job: null, stopped: false });

    await waitFor(() => expect(result.current).toMatchObject({ stopped: true, job: { status: "completed" } }));
  });

  test("stops on 410 with the error", async () => {
    const { client } = scriptedClient();
    const polling = { ...client, getJob: async () => { throw new ApiError(410, "UPLOAD_CANCELLED", "cancelled"); } };
    const { result } = renderHook(() => useJob("job1", { client: polling }), STRICT);
    await waitFor(() => expect(result.current).toMatchObject({ stopped: true, error: { code: "UPLOAD_CANCELLED" } }));
  });

  test("exposes progress, preview, model and the failure's message", async () => {
    let polls = 0;
    const { client } = scriptedClient({ timing: { pollStartMs: 5, pollProcessingMs: 200 } });
    const polling = { ...client, getJob: async () => (polls += 1) <= 3
      ? job("processing", { progress: 30, previewUrl: "http://storage.test/p.jpg" })
      : job("failed", { previewUrl: "http://storage.test/p.jpg", errorMessage: "We couldn't find an object." }) };
    const { result } = renderHook(() => useJob("job1", { client: polling }), STRICT);
    await waitFor(() => expect(result.current.job).toMatchObject({ progress: 30, previewUrl: "http://storage.test/p.jpg" }));
    await waitFor(() => expect(result.current).toMatchObject({ stopped: true,
      job: { status: "failed", errorMessage: "We couldn't find an object." } }));
  });

  test("retry processes a failed job again and follows it to completed", async () => {
    let attempt = 1;
    const { client } = scriptedClient({ timing: { pollStartMs: 5, pollProcessingMs: 5 } });
    const retries: string[] = [];
    const polling = {
      ...client,
      getJob: async () => attempt === 1 ? job("failed", { errorMessage: "No object." })
        : job("completed", { attempt: 2, progress: 100, resultUrl: "http://storage.test/m.glb?X-Amz-Expires=900" }),
      retryJob: async (id: string) => {
        retries.push(id);
        attempt = 2;
        return { jobId: id, status: "pending" as const, attempt: 2 };
      },
    };
    const { result } = renderHook(() => useJob("job1", { client: polling }), STRICT);
    await waitFor(() => expect(result.current).toMatchObject({ stopped: true, job: { status: "failed" } }));
    let accepted = false;
    await act(async () => {
      accepted = await result.current.retry();
    });
    expect(accepted).toBe(true);
    expect(retries).toEqual(["job1"]);
    await waitFor(() => expect(result.current).toMatchObject({ stopped: true,
      job: { status: "completed", attempt: 2, resultUrl: "http://storage.test/m.glb?X-Amz-Expires=900" } }));
  });

  test("a refused retry says why and keeps the failed job", async () => {
    const { client } = scriptedClient({ timing: { pollStartMs: 5 } });
    const polling = { ...client, getJob: async () => job("failed", { errorMessage: "No object." }),
      retryJob: async () => { throw new ApiError(409, "RETRY_LIMIT_REACHED", "Tried as often as we allow."); } };
    const { result } = renderHook(() => useJob("job1", { client: polling }), STRICT);
    await waitFor(() => expect(result.current.stopped).toBe(true));
    await act(async () => {
      expect(await result.current.retry()).toBe(false);
    });
    expect(result.current).toMatchObject({ retryError: { code: "RETRY_LIMIT_REACHED" }, job: { status: "failed" } });
  });

  test("an emailed link's view credential is kept, taken out of the address, and used to read the job", async () => {
    const { local } = installStorages();
    window.history.replaceState(null, "", "/processing/job1#view=view-token-1");
    const seen: (string | null)[] = [];
    const fetch = async (_url: string, init: RequestInit) => {
      seen.push((init.headers as Record<string, string>)["X-View-Token"] ?? null);
      return new Response(JSON.stringify(job("completed", { progress: 100 })), { status: 200 });
    };
    const client = createClient({ baseUrl: "", fetch });
    const { result } = renderHook(() => useJob("job1", { client }), STRICT);
    await waitFor(() => expect(result.current.job?.status).toBe("completed"));
    expect(local?.getItem("3d-ultra-view-job1")).toBe("view-token-1");
    expect(local?.getItem(`${SESSION_PREFIX}job1`)).toBeNull();
    expect(window.location.hash).toBe("");
    expect(seen.every((token) => token === "view-token-1")).toBe(true);
    window.history.replaceState(null, "", "/");
  });

  test("no job id, no polling", async () => {
    const { client } = scriptedClient();
    let polls = 0;
    const polling = { ...client, getJob: async () => { polls += 1; return job("pending"); } };
    const { result } = renderHook(() => useJob(null, { client: polling }), STRICT);
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
    });
    expect(polls).toBe(0);
    expect(result.current.job).toBeNull();
  });
});
