// @3d-ultra/upload-client/react: the story's UploadForm and useUpload hook, useJob for the processing screen and
// useCurrentJob for "continue your last upload". All render on the server (idle state, no polling, no storage)
// and survive React StrictMode's double effects: the engine lives as long as the component, its effects only
// attach and detach.

import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";

import { createClient, type ClientOptions, type UploadClient } from "../api.js";
import { IDLE_STATE, UploadEngine, type UploadResult, type UploadState, type UploadStatus } from "../engine.js";
import { Listeners } from "../listeners.js";
import { INITIAL_POLL_STATE, JobPoller, type JobPollState } from "../poller.js";
import { resumableJob, takeViewToken, type StorageErrorHandler } from "../session.js";

export interface ClientChoice {
  /** A client made with createClient (shared by several components). */
  client?: UploadClient | undefined;
  /** Else one is made for this base (see createClient); default "" (the page's own origin). */
  baseUrl?: string | undefined;
  /** Used only when the hook makes its own client. */
  timing?: ClientOptions["timing"];
  onError?: ClientOptions["onError"];
}

export interface UseUploadOptions extends ClientChoice {
  /** The largest photo; default: asked of the API (GET /api/upload/limits) when the component mounts. */
  maxBytes?: number | undefined;
  /**
   * Confirm, on mount, an upload this tab put in storage but did not confirm (a reload between the PUT and the
   * confirm). Default true; state then goes to "confirming" and on to "done" with state.result.
   */
  resumePending?: boolean | undefined;
  /**
   * Called once per job when it is confirmed and its session stored, however it got there: startUpload, retry,
   * confirmUpload, or the confirm resumed on mount after a reload. Navigate from here. The latest function given
   * is called (no need to memoise it).
   */
  onUploadComplete?: ((result: UploadResult) => void) | undefined;
}

export interface UseUploadState extends UploadState {
  /** True while work is under way: creating, uploading, confirming, or waiting to try one of them again. */
  readonly busy: boolean;
}

const BUSY: ReadonlySet<UploadStatus> = new Set<UploadStatus>(["creating", "uploading", "confirming", "waiting"]);

export interface UseUploadResult {
  state: UseUploadState;
  /** Check, create, PUT, confirm, store the session: the result, or null on failure (then see state.error). */
  startUpload: (file: File | Blob, email: string) => Promise<{ uploadId: string; sessionToken: string } | null>;
  /**
   * "Try again" after a failure: resumes the same job at the step that failed (no second job, no second PUT once
   * the photo is in storage). The result, or null on failure (or when there is nothing to retry).
   */
  retry: () => Promise<{ uploadId: string; sessionToken: string } | null>;
  /** Confirm a job whose photo is in storage (after a failed confirm, or a reload): true once confirmed. */
  confirmUpload: (uploadId: string) => Promise<boolean>;
  /** Stop the upload; a job not yet confirming is withdrawn. */
  cancelUpload: () => void;
  /** Back to idle. */
  reset: () => void;
}

function useClient({ client, baseUrl, timing, onError }: ClientChoice): UploadClient {
  // timing and onError are read when the client is made: passing new objects each render must not remake it.
  return useMemo(() => client ?? createClient({ baseUrl: baseUrl ?? "", timing, onError }),
    [client, baseUrl]);
}

/** The story's upload hook. Navigation stays with your router: use onUploadComplete (or the result). */
export function useUpload(options: UseUploadOptions = {}): UseUploadResult {
  const client = useClient(options);
  const engine = useMemo(() => new UploadEngine({ client, maxBytes: options.maxBytes ?? null }), [client]);
  const subscribe = useCallback((onChange: () => void) => engine.subscribe(onChange), [engine]);
  const engineState = useSyncExternalStore(subscribe, () => engine.state, () => IDLE_STATE);
  const state = useMemo(() => Object.freeze({ ...engineState, busy: BUSY.has(engineState.status) }), [engineState]);
  const resumePending = options.resumePending ?? true;
  const askLimits = options.maxBytes === undefined;
  const onUploadComplete = useRef(options.onUploadComplete);
  onUploadComplete.current = options.onUploadComplete;
  // The jobs already reported: a ref outlives StrictMode's rehearsal of unmounting, so none is reported twice.
  const completed = useRef(new Set<string>());

  useEffect(() => {
    if (options.maxBytes !== undefined) engine.maxBytes = options.maxBytes;
  }, [engine, options.maxBytes]);

  useEffect(() => engine.subscribe((event) => {
    if (event.type !== "done") return;
    notifyCurrentJob();
    if (completed.current.has(event.result.uploadId)) return;
    completed.current.add(event.result.uploadId);
    onUploadComplete.current?.(event.result);
  }), [engine]);

  useEffect(() => {
    const controller = new AbortController();
    // Started after the effects have settled: StrictMode mounts, unmounts and mounts again at once, and a confirm
    // sent by the first mount (then aborted) could still reach the server and be answered 409 for the second.
    const timer = setTimeout(() => {
      if (askLimits) {
        client.limits({ signal: controller.signal }).then((limits) => {
          if (engine.maxBytes === null) engine.maxBytes = limits.maxUploadBytes;
        }, () => undefined);
      }
      if (resumePending) engine.resumeConfirm()?.catch(() => undefined);
    }, 0);
    return () => {
      clearTimeout(timer);
      controller.abort();
      engine.detach();
    };
  }, [client, engine, askLimits, resumePending]);

  const startUpload = useCallback(async (file: File | Blob, email: string) => {
    try {
      const { uploadId, sessionToken } = await engine.start(file, email);
      return { uploadId, sessionToken };
    } catch {
      return null;
    }
  }, [engine]);
  const retry = useCallback(async () => {
    try {
      const { uploadId, sessionToken } = await engine.retry();
      return { uploadId, sessionToken };
    } catch {
      return null;
    }
  }, [engine]);
  const confirmUpload = useCallback(async (uploadId: string) => {
    try {
      await engine.confirm(uploadId);
      return true;
    } catch {
      return false;
    }
  }, [engine]);
  const cancelUpload = useCallback(() => engine.cancel(), [engine]);
  const reset = useCallback(() => engine.reset(), [engine]);
  return { state, startUpload, retry, confirmUpload, cancelUpload, reset };
}

const currentJobListeners = new Listeners<() => void>();

/** Tell every useCurrentJob that this tab changed the stored session (storage events only reach other tabs). */
function notifyCurrentJob(): void {
  currentJobListeners.notify();
}

export interface UseCurrentJobOptions {
  /** Told of storage failures (see setSessionErrorHandler for the default). */
  onError?: StorageErrorHandler | undefined;
}

/**
 * The job of "continue your last upload" (story 5.7): the current job if its token is still stored, else null.
 * Server rendering and hydration render null (so server and client agree), then the stored value; it follows
 * uploads made in this tab (useUpload) and changes made in other tabs.
 */
export function useCurrentJob(options: UseCurrentJobOptions = {}): string | null {
  const onError = useRef(options.onError);
  onError.current = options.onError;
  // Read storage once per change, not on every render (a refusing storage would report each time).
  const cached = useRef<{ value: string | null } | null>(null);
  const read = useCallback(() => resumableJob({ onError: (error, context) => onError.current?.(error, context) }), []);
  const subscribe = useCallback((onChange: () => void) => {
    const refresh = (): void => {
      const value = read();
      if (cached.current?.value === value) return;
      cached.current = { value };
      onChange();
    };
    const off = currentJobListeners.add(refresh);
    const target = typeof window === "undefined" ? null : window;
    target?.addEventListener("storage", refresh);
    refresh();
    return () => {
      off();
      target?.removeEventListener("storage", refresh);
    };
  }, [read]);
  const getSnapshot = (): string | null => (cached.current ??= { value: read() }).value;
  return useSyncExternalStore(subscribe, getSnapshot, () => null);
}

export interface UseJobOptions extends ClientChoice {
  /** The job's token; default: the one stored on this device (or else the view credential of an emailed link). */
  token?: string | null | undefined;
  /**
   * Take the view credential from the address (`#view=<token>`, the emailed link's), keep it on this device and
   * remove it from the address bar, before the first poll. Default true.
   */
  viewLink?: boolean | undefined;
}

export interface UseJobResult extends JobPollState {
  /** Process a failed job again and follow it from the start: true once accepted (else see retryError). */
  retry: () => Promise<boolean>;
}

/**
 * The job's status for the processing screen (job.progress, job.previewUrl, job.resultUrl, job.errorMessage):
 * polled with backoff while it waits and briskly while it is processed, paused while the page is hidden, stopped
 * on a final status or an answer no poll can change (410, no token); a finished job's links are fetched afresh
 * before they expire. Nothing is fetched during server rendering or while jobId is null.
 */
export function useJob(jobId: string | null | undefined, options: UseJobOptions = {}): UseJobResult {
  const client = useClient(options);
  const token = options.token;
  const viewLink = options.viewLink ?? true;
  const [state, setState] = useState<JobPollState>(INITIAL_POLL_STATE);
  const poller = useRef<JobPoller | null>(null);

  useEffect(() => {
    setState(INITIAL_POLL_STATE);
    if (!jobId) return undefined;
    // Given to the poller too, so that a link whose credential storage refused still shows the job this once.
    const viewToken = viewLink ? takeViewToken(jobId, { onError: client.onError }) : null;
    const current = new JobPoller({ client, jobId, token, viewToken });
    poller.current = current;
    const unsubscribe = current.subscribe(setState);
    current.start();
    return () => {
      unsubscribe();
      current.stop();
      if (poller.current === current) poller.current = null;
    };
  }, [client, jobId, token, viewLink]);
  const retry = useCallback(async () => poller.current?.retry() ?? false, []);
  return useMemo(() => ({ ...state, retry }), [state, retry]);
}

export { DEFAULT_UPLOAD_FORM_LABELS, UploadForm } from "./UploadForm.js";
export type { UploadFormLabels, UploadFormPart, UploadFormProps } from "./UploadForm.js";
