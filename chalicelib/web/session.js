// Per-upload session tokens (story 3.6). localStorage keeps them across visits. Storage can throw (private
// mode, quota, disabled): the upload must still succeed, so a token that localStorage refuses is kept in this
// tab's sessionStorage, which lasts for the navigation to the processing page and its reloads, and the caller
// is told the job can't be reopened later. Failures are reported to the console.

export const SESSION_PREFIX = "3d-ultra-session-";
export const CURRENT_JOB_KEY = "3d-ultra-current-job";

function attempt(action, fallback) {
  try {
    return action();
  } catch (error) {
    console.error("3d-ultra: localStorage is unavailable:", error);
    return fallback;
  }
}

function quietly(action, fallback) {
  try {
    return action();
  } catch {
    return fallback;
  }
}

function write(storage, jobId, token) {
  storage.setItem(`${SESSION_PREFIX}${jobId}`, token);
  storage.setItem(CURRENT_JOB_KEY, jobId);
}

/**
 * Remember the token of a job and make it the current job. Returns "device" when it is kept for later visits,
 * "tab" when only this tab keeps it, and null when neither storage accepted it.
 */
export function storeSession(jobId, token) {
  if (attempt(() => { write(globalThis.localStorage, jobId, token); return true; }, false)) return "device";
  return quietly(() => { write(globalThis.sessionStorage, jobId, token); return "tab"; }, null);
}

/** The stored token of a job, or null. */
export function getSession(jobId) {
  const key = `${SESSION_PREFIX}${jobId}`;
  return attempt(() => globalThis.localStorage.getItem(key), null)
    || quietly(() => globalThis.sessionStorage.getItem(key), null);
}

/** Where a job's token is kept: "device", "tab", or null when it is not kept at all. */
export function sessionPersistence(jobId) {
  const key = `${SESSION_PREFIX}${jobId}`;
  if (quietly(() => globalThis.localStorage.getItem(key), null)) return "device";
  if (quietly(() => globalThis.sessionStorage.getItem(key), null)) return "tab";
  return null;
}

/** The job the user worked on last, or null. */
export function getCurrentJob() {
  return attempt(() => globalThis.localStorage.getItem(CURRENT_JOB_KEY), null)
    || quietly(() => globalThis.sessionStorage.getItem(CURRENT_JOB_KEY), null);
}

/** The last job if its token is still stored (so it can be reopened), or null. */
export function resumableJob() {
  const jobId = getCurrentJob();
  return jobId && getSession(jobId) ? jobId : null;
}

/** Forget a job's token, once the job is finished with; forget it as the current job too if it was. */
export function clearSession(jobId) {
  for (const storage of ["localStorage", "sessionStorage"]) {
    quietly(() => {
      const store = globalThis[storage];
      store.removeItem(`${SESSION_PREFIX}${jobId}`);
      if (store.getItem(CURRENT_JOB_KEY) === jobId) store.removeItem(CURRENT_JOB_KEY);
    });
  }
}
