// @3d-ultra/upload-client/react: the story's useUpload hook and useJob for the processing screen. Both render on
// the server (idle state, no polling) and survive React StrictMode's double effects: the engine lives as long as
// the component, its effects only attach and detach.

import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";

import { createClient, type ClientOptions, type UploadClient } from "../api.js";
import { IDLE_STATE, UploadEngine, type UploadState } from "../engine.js";
import { INITIAL_POLL_STATE, JobPoller, type JobPollState } from "../poller.js";
import { takeViewToken } from "../session.js";

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
}

export type UseUploadState = UploadState;

export interface UseUploadResult {
  state: UseUploadState;
  /** Check, create, PUT, confirm, store the session: the result, or null on failure (then see state.error). */
  startUpload: (file: File | Blob, email: string) => Promise<{ uploadId: string; sessionToken: string } | null>;
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

/** The story's upload hook. Navigation stays with your router: use the result, or state.result when done. */
export function useUpload(options: UseUploadOptions = {}): UseUploadResult {
  const client = useClient(options);
  const engine = useMemo(() => new UploadEngine({ client, maxBytes: options.maxBytes ?? null }), [client]);
  const subscribe = useCallback((onChange: () => void) => engine.subscribe(onChange), [engine]);
  const state = useSyncExternalStore(subscribe, () => engine.state, () => IDLE_STATE);
  const resumePending = options.resumePending ?? true;
  const askLimits = options.maxBytes === undefined;

  useEffect(() => {
    if (options.maxBytes !== undefined) engine.maxBytes = options.maxBytes;
  }, [engine, options.maxBytes]);

  useEffect(() => {
    const controller = new AbortController();
    if (askLimits) {
      client.limits({ signal: controller.signal }).then((limits) => {
        if (engine.maxBytes === null) engine.maxBytes = limits.maxUploadBytes;
      }, () => undefined);
    }
    if (resumePending) engine.resumeConfirm()?.catch(() => undefined);
    return () => {
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
  return { state, startUpload, confirmUpload, cancelUpload, reset };
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
    if (viewLink) takeViewToken(jobId, { onError: client.onError });
    const current = new JobPoller({ client, jobId, token });
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
