// Per-upload session tokens (story 3.6). localStorage keeps them across visits. Storage can throw (private
// mode, quota, disabled): the upload must still succeed, so a token that localStorage refuses is kept in this
// tab's sessionStorage, which lasts for the navigation to the processing page and its reloads. Failures are
// silent for the person and reach an onError hook (the story's "silent fail, log to Sentry"). Outside a browser
// (server rendering, Node) there is no storage: the getters return null and nothing is reported.

export const SESSION_PREFIX = "3d-ultra-session-";
export const CURRENT_JOB_KEY = "3d-ultra-current-job";
/** Where the read-only view credential of an emailed link is kept: `3d-ultra-view-{jobId}` (never as the session). */
export const VIEW_PREFIX = "3d-ultra-view-";

export type StorageName = "localStorage" | "sessionStorage";
/** Where a token is kept: "device" (localStorage, for later visits) or "tab" (this tab's sessionStorage). */
export type Persistence = "device" | "tab";

export interface StorageFailure {
  readonly source: "storage";
  readonly storage: StorageName;
  readonly operation: "read" | "write" | "remove";
  readonly key: string;
}

/** Told of every storage failure; `context` says which storage and what was tried. */
export type StorageErrorHandler = (error: unknown, context: StorageFailure) => void;

export interface SessionOptions {
  /** Told of storage failures instead of the handler set by setSessionErrorHandler. */
  onError?: StorageErrorHandler | undefined;
}

let defaultHandler: StorageErrorHandler | undefined;

/** Where storage failures go when a call names no onError of its own (e.g. your error reporter). */
export function setSessionErrorHandler(handler: StorageErrorHandler | undefined): void {
  defaultHandler = handler;
}

function report(options: SessionOptions | undefined, error: unknown, context: StorageFailure): void {
  const handler = options?.onError ?? defaultHandler;
  if (!handler) return;
  try {
    handler(error, context);
  } catch {
    // A failing reporter must not break the upload it reports on.
  }
}

/**
 * Run `action` on one storage. Returns `fallback` when there is no such storage (not a browser: silent) or when
 * it throws (reported).
 */
export function withStorage<T>(name: StorageName, operation: StorageFailure["operation"], key: string,
  action: (storage: Storage) => T, fallback: T, options?: SessionOptions): T {
  try {
    const storage = (globalThis as Partial<Record<StorageName, Storage>>)[name];
    if (storage === undefined || storage === null) return fallback;
    return action(storage);
  } catch (error) {
    report(options, error, { source: "storage", storage: name, operation, key });
    return fallback;
  }
}

const sessionKey = (jobId: string): string => `${SESSION_PREFIX}${jobId}`;

function write(name: StorageName, jobId: string, token: string, options?: SessionOptions): boolean {
  return withStorage(name, "write", sessionKey(jobId), (storage) => {
    storage.setItem(sessionKey(jobId), token);
    storage.setItem(CURRENT_JOB_KEY, jobId);
    return true;
  }, false, options);
}

/**
 * Remember a job's token and make it the current job. Returns "device" when it is kept for later visits, "tab"
 * when only this tab keeps it, and null when neither storage accepted it (or there is none).
 */
export function storeSession(jobId: string, token: string, options?: SessionOptions): Persistence | null {
  if (write("localStorage", jobId, token, options)) return "device";
  return write("sessionStorage", jobId, token, options) ? "tab" : null;
}

function read(key: string, options?: SessionOptions): string | null {
  return withStorage("localStorage", "read", key, (storage) => storage.getItem(key), null, options)
    || withStorage("sessionStorage", "read", key, (storage) => storage.getItem(key), null, options);
}

/** The stored token of a job, or null. */
export function getSession(jobId: string, options?: SessionOptions): string | null {
  return read(sessionKey(jobId), options);
}

/** The job the person worked on last, or null. */
export function getCurrentJob(options?: SessionOptions): string | null {
  return read(CURRENT_JOB_KEY, options);
}

/** Where a job's token is kept: "device", "tab", or null when it is not kept at all. */
export function sessionPersistence(jobId: string, options?: SessionOptions): Persistence | null {
  const key = sessionKey(jobId);
  if (withStorage("localStorage", "read", key, (storage) => storage.getItem(key), null, options)) return "device";
  if (withStorage("sessionStorage", "read", key, (storage) => storage.getItem(key), null, options)) return "tab";
  return null;
}

/** The current job if its token is still stored (so it can be reopened), or null. */
export function resumableJob(options?: SessionOptions): string | null {
  const jobId = getCurrentJob(options);
  return jobId && getSession(jobId, options) ? jobId : null;
}

/** Forget a job's token once the job is finished with; forget it as the current job too if it was. */
export function clearSession(jobId: string, options?: SessionOptions): void {
  for (const name of ["localStorage", "sessionStorage"] as const) {
    withStorage(name, "remove", sessionKey(jobId), (storage) => {
      storage.removeItem(sessionKey(jobId));
      if (storage.getItem(CURRENT_JOB_KEY) === jobId) storage.removeItem(CURRENT_JOB_KEY);
    }, undefined, options);
  }
}

const viewKey = (jobId: string): string => `${VIEW_PREFIX}${jobId}`;

/** Keep a job's view credential (from an emailed link) on this device; false when storage refused it. */
export function storeViewToken(jobId: string, token: string, options?: SessionOptions): boolean {
  const key = viewKey(jobId);
  return withStorage("localStorage", "write", key, (storage) => {
    storage.setItem(key, token);
    return true;
  }, false, options);
}

/** The stored view credential of a job, or null. */
export function getViewToken(jobId: string, options?: SessionOptions): string | null {
  const key = viewKey(jobId);
  return withStorage("localStorage", "read", key, (storage) => storage.getItem(key), null, options);
}

/** Forget a job's view credential. */
export function clearViewToken(jobId: string, options?: SessionOptions): void {
  const key = viewKey(jobId);
  withStorage("localStorage", "remove", key, (storage) => storage.removeItem(key), undefined, options);
}

/**
 * Take the view credential from an emailed link (`/processing/{jobId}#view=<token>`): keep it on this device,
 * remove it from the address bar (history.replaceState, so it is neither shared nor kept in the history), and
 * return it. Null outside a browser or when the address holds none. The token is returned even when storage
 * refuses it, so that the page can still show the job this once.
 */
export function takeViewToken(jobId: string, options?: SessionOptions): string | null {
  const win = (globalThis as { window?: Window }).window;
  if (!win?.location) return null;
  const hash = win.location.hash.replace(/^#/, "");
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("view");
  if (!token) return null;
  storeViewToken(jobId, token, options);
  params.delete("view");
  const rest = params.toString();
  try {
    win.history.replaceState(win.history.state, "",
      win.location.pathname + win.location.search + (rest ? `#${rest}` : ""));
  } catch {
    // A page whose history refuses the change still shows the job.
  }
  return token;
}
