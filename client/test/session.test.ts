import { afterEach, describe, expect, test, vi } from "vitest";

import {
  CURRENT_JOB_KEY, SESSION_PREFIX, clearSession, getCurrentJob, getSession, resumableJob, sessionPersistence,
  setSessionErrorHandler, storeSession,
} from "../src/index.js";
import { MemoryStorage, installStorages, removeStorages } from "./helpers.js";

afterEach(() => {
  removeStorages();
  setSessionErrorHandler(undefined);
});

describe("the story's session store", () => {
  test("the story's names and keys", () => {
    expect(SESSION_PREFIX).toBe("3d-ultra-session-");
    expect(CURRENT_JOB_KEY).toBe("3d-ultra-current-job");
  });

  test("a stored session is kept on the device and becomes the current job", () => {
    const { local, session } = installStorages();
    expect(storeSession("job1", "token1")).toBe("device");
    expect(local?.getItem(`${SESSION_PREFIX}job1`)).toBe("token1");
    expect(local?.getItem(CURRENT_JOB_KEY)).toBe("job1");
    expect(session?.items.size).toBe(0);
    expect(getSession("job1")).toBe("token1");
    expect(getCurrentJob()).toBe("job1");
    expect(sessionPersistence("job1")).toBe("device");
    expect(resumableJob()).toBe("job1");
  });

  test("a full localStorage falls back to this tab's sessionStorage and tells onError, not the console", () => {
    const { session } = installStorages({ local: new MemoryStorage(true) });
    const onError = vi.fn();
    const consoleError = vi.spyOn(console, "error");
    expect(storeSession("job1", "token1", { onError })).toBe("tab");

    expect(session?.getItem(`${SESSION_PREFIX}job1`)).toBe("token1");
    expect(getSession("job1")).toBe("token1");
    expect(sessionPersistence("job1")).toBe("tab");
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ name: "QuotaExceededError" });
    expect(onError.mock.calls[0]?.[1]).toEqual({ source: "storage", storage: "localStorage", operation: "write",
      key: `${SESSION_PREFIX}job1` });
    expect(consoleError).not.toHaveBeenCalled();
  });

  test("a localStorage that cannot even be read reaches the handler set for the whole app", () => {
    installStorages({ local: null });
    const reported: string[] = [];
    setSessionErrorHandler((_, context) => reported.push(`${context.storage} ${context.operation}`));
    expect(storeSession("job1", "token1")).toBe("tab");
    expect(getSession("job1")).toBe("token1");
    expect(reported).toEqual(["localStorage write", "localStorage read"]);
  });

  test("a reporter that throws does not break the call it reports on", () => {
    installStorages({ local: null });
    expect(storeSession("job1", "token1", { onError: () => { throw new Error("reporter down"); } })).toBe("tab");
  });

  test("when no storage accepts the token, storing gives null and nothing throws", () => {
    installStorages({ local: null, session: new MemoryStorage(true) });
    expect(storeSession("job1", "token1")).toBeNull();
    expect(getSession("job1")).toBeNull();
    expect(sessionPersistence("job1")).toBeNull();
    expect(resumableJob()).toBeNull();
  });

  test("outside a browser every function is silent: getters give null, nothing is reported or printed", () => {
    removeStorages();
    const onError = vi.fn();
    const consoleError = vi.spyOn(console, "error");
    setSessionErrorHandler(onError);
    expect(storeSession("job1", "token1")).toBeNull();
    expect(getSession("job1")).toBeNull();
    expect(getCurrentJob()).toBeNull();
    clearSession("job1");
    expect(onError).not.toHaveBeenCalled();
    expect(consoleError).not.toHaveBeenCalled();
  });

  test("clearSession removes the job's token and the current-job key only when it names that job", () => {
    const { local, session } = installStorages();
    storeSession("job1", "token1");
    session?.setItem(`${SESSION_PREFIX}job1`, "token1");
    storeSession("job2", "token2");
    clearSession("job1");
    expect(getSession("job1")).toBeNull();
    expect(local?.getItem(CURRENT_JOB_KEY)).toBe("job2");
    clearSession("job2");
    expect(local?.items.size).toBe(0);
    expect(session?.items.size).toBe(0);
  });

  test("a current job whose token is gone is not offered for resuming", () => {
    const { local } = installStorages();
    local?.setItem(CURRENT_JOB_KEY, "job9");
    expect(getCurrentJob()).toBe("job9");
    expect(resumableJob()).toBeNull();
  });
});
