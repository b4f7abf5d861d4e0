// @3d-ultra/upload-client: the session store (story 3.6), a typed API client, the resilient upload engine and
// the job poller. Nothing here touches window or document on import: safe to import during server rendering.

export {
  CURRENT_JOB_KEY, SESSION_PREFIX, VIEW_PREFIX, clearSession, clearViewToken, getCurrentJob, getSession,
  getViewToken, resumableJob, sessionPersistence, setSessionErrorHandler, storeSession, storeViewToken,
  takeViewToken,
} from "./session.js";
export type { Persistence, SessionOptions, StorageErrorHandler, StorageFailure, StorageName } from "./session.js";
export { createClient, NETWORK_MESSAGE } from "./api.js";
export type {
  CallOptions, ClientOptions, Confirmed, CreateOptions, CreateUploadBody, ErrorContext, ErrorHandler, FetchLike,
  FileType, JobCallOptions, JobStatus, Limits, ReadJobOptions, RetryStarted, UploadClient, UploadCreated,
} from "./api.js";
export { ApiError, MissingSessionError, isAbort } from "./errors.js";
export type { ApiErrorOptions, ClientErrorCode, ErrorCode, ServerErrorCode } from "./errors.js";
export {
  IDLE_STATE, PENDING_UPLOAD_KEY, UploadEngine, checkFile, clearPendingUpload, getPendingUpload,
} from "./engine.js";
export type {
  EngineOptions, PendingUpload, UploadEvent, UploadListener, UploadResult, UploadState, UploadStatus, UploadStep,
  UploadWait,
} from "./engine.js";
export {
  ACTIVE_JOB_STATUSES, FINAL_JOB_STATUSES, INITIAL_POLL_STATE, JobPoller, STOPPING_CODES, documentVisibility,
  linkRefreshDelay,
} from "./poller.js";
export type { JobPollListener, JobPollState, JobPollerOptions, Visibility } from "./poller.js";
export { IMAGE_TYPES, decideType, detectType, isImageType, typeFromBytes } from "./filetype.js";
export type { DetectedType, PhotoFile } from "./filetype.js";
export { describeFailure, rateLimitMessage } from "./messages.js";
export type { FailureDescription, FormField } from "./messages.js";
export { isRetryable, nextPollDelay, parseRetryAfter } from "./retry.js";
export type { RetryWait, WaitReason } from "./retry.js";
export { putFile } from "./put.js";
export type { PutFile, PutRequest } from "./put.js";
export { randomId } from "./ids.js";
export { DEFAULT_TIMING, resolveTiming } from "./timing.js";
export type { Timing } from "./timing.js";
