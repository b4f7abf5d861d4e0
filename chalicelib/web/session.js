// Per-upload session tokens in localStorage (story 3.6). Storage can throw (private mode, quota, disabled):
// the upload must still succeed, so failures are reported to the console and never to the user.

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

/** Remember the token of a job and make it the current job. Returns false if storage refused. */
export function storeSession(jobId, token) {
  return attempt(() => {
    localStorage.setItem(`${SESSION_PREFIX}${jobId}`, token);
    localStorage.setItem(CURRENT_JOB_KEY, jobId);
    return true;
  }, false);
}

/** The stored token of a job, or null. */
export function getSession(jobId) {
  return attempt(() => localStorage.getItem(`${SESSION_PREFIX}${jobId}`), null);
}

/** The job the user worked on last, or null. */
export function getCurrentJob() {
  return attempt(() => localStorage.getItem(CURRENT_JOB_KEY), null);
}

/** Forget a job's token; forget it as the current job too if it was. */
export function clearSession(jobId) {
  attempt(() => {
    localStorage.removeItem(`${SESSION_PREFIX}${jobId}`);
    if (getCurrentJob() === jobId) localStorage.removeItem(CURRENT_JOB_KEY);
  });
}
