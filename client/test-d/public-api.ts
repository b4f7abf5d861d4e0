// Compile-time expectations of the published API, checked by `npm run typecheck:api` against the built package
// (dist/*.d.ts through the package's own exports map, as an app would see it).

import { expectTypeOf } from "expect-type";

import {
  ApiError, CURRENT_JOB_KEY, MissingSessionError, SESSION_PREFIX, UploadEngine, clearSession, createClient,
  getCurrentJob, getSession, getViewToken, storeSession, takeViewToken, VIEW_PREFIX,
  type ClientErrorCode, type ErrorCode, type JobPollState, type JobStatus, type Limits, type RetryStarted,
  type ServerErrorCode, type UploadClient,
  type UploadEvent, type UploadState,
} from "@3d-ultra/upload-client";
import {
  UploadForm, useCurrentJob, useJob, useUpload, type UploadFormProps, type UseJobResult, type UseUploadResult,
} from "@3d-ultra/upload-client/react";

// The story's session API, exactly.
expectTypeOf<typeof SESSION_PREFIX>().toEqualTypeOf<"3d-ultra-session-">();
expectTypeOf<typeof CURRENT_JOB_KEY>().toEqualTypeOf<"3d-ultra-current-job">();
expectTypeOf(storeSession).parameter(0).toEqualTypeOf<string>();
expectTypeOf(storeSession).parameter(1).toEqualTypeOf<string>();
storeSession("job1", "token1");
expectTypeOf(getSession).returns.toEqualTypeOf<string | null>();
expectTypeOf(getCurrentJob).returns.toEqualTypeOf<string | null>();
expectTypeOf(clearSession).returns.toEqualTypeOf<void>();

// createClient: baseUrl is required; every call is typed from the OpenAPI document.
const client = createClient({ baseUrl: "http://127.0.0.1:8000" });
expectTypeOf(client).toEqualTypeOf<UploadClient>();
// @ts-expect-error baseUrl is required
createClient({});
// @ts-expect-error only the accepted types can be declared
void client.createUpload({ email: "a@example.com", fileType: "image/gif", fileSize: 1 });
expectTypeOf(client.createUpload).returns.resolves.toHaveProperty("sessionToken").toEqualTypeOf<string>();
expectTypeOf(client.confirmUpload).parameters.toEqualTypeOf<[string, ({ token?: string | null | undefined; signal?: AbortSignal | undefined } | undefined)?]>();
expectTypeOf(client.getJob).returns.resolves.toEqualTypeOf<JobStatus>();
expectTypeOf<JobStatus["confirmedAt"]>().toEqualTypeOf<string | null>();
expectTypeOf(client.cancelUpload).returns.toEqualTypeOf<Promise<void>>();
expectTypeOf(client.limits).returns.resolves.toEqualTypeOf<Limits>();
expectTypeOf<Limits["fileTypes"]>().toEqualTypeOf<("image/jpeg" | "image/png" | "image/webp" | "image/heic")[]>();

// Error codes: the server's (generated) and the client's own, nothing else.
expectTypeOf<ApiError["code"]>().toEqualTypeOf<ErrorCode>();
expectTypeOf<ErrorCode>().toEqualTypeOf<ServerErrorCode | ClientErrorCode>();
expectTypeOf<"UPLOAD_CANCELLED">().toMatchTypeOf<ServerErrorCode>();
expectTypeOf<"INVALID_TOKEN">().toMatchTypeOf<ServerErrorCode>();
expectTypeOf<"NETWORK_ERROR" | "STALLED" | "NO_SESSION">().toMatchTypeOf<ClientErrorCode>();
// @ts-expect-error a code that exists nowhere
const unknownCode: ErrorCode = "HTTP_500";
void unknownCode;
expectTypeOf<MissingSessionError["code"]>().toEqualTypeOf<"NO_SESSION">();
expectTypeOf<MissingSessionError>().toMatchTypeOf<ApiError>();
expectTypeOf<ApiError["retryAfter"]>().toEqualTypeOf<number | null>();

// The engine's events are a discriminated union.
const engine = new UploadEngine({ client });
engine.subscribe((event: UploadEvent, state: UploadState) => {
  if (event.type === "progress") expectTypeOf(event.percent).toEqualTypeOf<number>();
  if (event.type === "wait") expectTypeOf(event.wait.reason).toEqualTypeOf<"offline" | "retry">();
  if (event.type === "error") expectTypeOf(event.error).toEqualTypeOf<ApiError>();
  expectTypeOf(state.error).toEqualTypeOf<ApiError | null>();
});

// The story's UseUploadResult, and retry() ("Try again" at the failed step of the same job).
expectTypeOf<keyof UseUploadResult>()
  .toEqualTypeOf<"state" | "startUpload" | "retry" | "confirmUpload" | "cancelUpload" | "reset">();
expectTypeOf<UseUploadResult["retry"]>()
  .toEqualTypeOf<() => Promise<{ uploadId: string; sessionToken: string } | null>>();
expectTypeOf<UseUploadResult["state"]["busy"]>().toEqualTypeOf<boolean>();
expectTypeOf(useUpload).returns.toEqualTypeOf<UseUploadResult>();
expectTypeOf<UseUploadResult["state"]["status"]>()
  .toEqualTypeOf<"idle" | "creating" | "uploading" | "waiting" | "confirming" | "done" | "error">();
expectTypeOf<UseUploadResult["state"]["progress"]>().toEqualTypeOf<number>();
expectTypeOf<UseUploadResult["state"]["error"]>().toEqualTypeOf<ApiError | null>();
expectTypeOf<UseUploadResult["startUpload"]>().parameters.toEqualTypeOf<[File | Blob, string]>();
expectTypeOf<UseUploadResult["startUpload"]>().returns
  .toEqualTypeOf<Promise<{ uploadId: string; sessionToken: string } | null>>();
expectTypeOf<UseUploadResult["confirmUpload"]>().toEqualTypeOf<(uploadId: string) => Promise<boolean>>();
expectTypeOf<UseUploadResult["cancelUpload"]>().toEqualTypeOf<() => void>();
expectTypeOf<UseUploadResult["reset"]>().toEqualTypeOf<() => void>();
useUpload();
useUpload({ baseUrl: "http://127.0.0.1:8000" });
useUpload({ client });
// @ts-expect-error the base is a string
useUpload({ baseUrl: 8000 });
expectTypeOf(useJob).parameter(0).toEqualTypeOf<string | null | undefined>();
expectTypeOf(useJob).returns.toHaveProperty("job").toEqualTypeOf<JobStatus | null>();

// The processing screen's fields, typed from the OpenAPI document.
expectTypeOf<JobStatus["progress"]>().toEqualTypeOf<number | null>();
expectTypeOf<JobStatus["previewUrl"]>().toEqualTypeOf<string | null>();
expectTypeOf<JobStatus["resultUrl"]>().toEqualTypeOf<string | null>();
expectTypeOf<JobStatus["errorMessage"]>().toEqualTypeOf<string | null>();
expectTypeOf<JobStatus["attempt"]>().toEqualTypeOf<number>();
expectTypeOf(client.retryJob).returns.resolves.toEqualTypeOf<RetryStarted>();
expectTypeOf<RetryStarted["status"]>().toEqualTypeOf<"pending" | "processing">();
void client.getJob("job1", { viewToken: "v" });
// @ts-expect-error the view credential reads a job; it never confirms, cancels or retries one
void client.retryJob("job1", { viewToken: "v" });
expectTypeOf<typeof VIEW_PREFIX>().toEqualTypeOf<"3d-ultra-view-">();
expectTypeOf(takeViewToken).returns.toEqualTypeOf<string | null>();
expectTypeOf(getViewToken).returns.toEqualTypeOf<string | null>();

// useJob: the poller's state and a retry.
expectTypeOf(useJob).returns.toEqualTypeOf<UseJobResult>();
expectTypeOf<UseJobResult>().toMatchTypeOf<JobPollState>();
expectTypeOf<UseJobResult["retry"]>().toEqualTypeOf<() => Promise<boolean>>();
expectTypeOf<UseJobResult["retrying"]>().toEqualTypeOf<boolean>();
expectTypeOf<UseJobResult["retryError"]>().toEqualTypeOf<ApiError | null>();
useJob("job1", { viewLink: false });

// onUploadComplete({ uploadId, sessionToken }), on the hook and on the story's form.
useUpload({ baseUrl: "", onUploadComplete: ({ uploadId, sessionToken }) => void [uploadId, sessionToken] });
expectTypeOf<Parameters<NonNullable<UploadFormProps["onUploadComplete"]>>[0]>()
  .toMatchTypeOf<{ uploadId: string; sessionToken: string }>();
expectTypeOf<UploadFormProps["enableUpload"]>().toEqualTypeOf<boolean | undefined>();
UploadForm({ enableUpload: true, onUploadComplete: () => undefined });
UploadForm({ client, labels: { submit: "Hochladen" }, classNames: { root: "card", input: "field" } });
// @ts-expect-error only the form's parts take a class name
UploadForm({ classNames: { wrapper: "x" } });
expectTypeOf(useCurrentJob).returns.toEqualTypeOf<string | null>();
