// The story's <UploadForm enableUpload onUploadComplete={...} />: email and photo, the upload with its progress,
// the errors next to their fields or for the whole form, and Cancel, "Try again" and "Start over", as the served
// upload page has them. Unstyled (class names per part, or none), built from native form controls so that the
// keyboard and screen readers work as they do on any form; the same markup renders on the server.

import { useEffect, useId, useRef, useState, type ChangeEvent, type FormEvent, type ReactNode } from "react";

import type { UploadStep } from "../engine.js";
import {
  EMAIL_MESSAGE, NO_FILE_MESSAGE, OFFLINE_MESSAGE, describeFailure, type FormField,
} from "../messages.js";
import { useUpload, type UseUploadOptions, type UseUploadResult } from "./index.js";

export interface UploadFormLabels {
  email: string;
  emailHelp: string;
  photo: string;
  photoHelp: string;
  submit: string;
  cancel: string;
  retry: string;
  startOver: string;
  progress: string;
  steps: Record<UploadStep, string>;
  /** While a step waits out the backoff before its next try. */
  retrying: (seconds: number) => string;
  offline: string;
  done: string;
  cancelled: string;
  /** After a refusal for too many uploads, once "Try again" is offered again. */
  retryReady: string;
  /** Shown when enableUpload is false. */
  disabled: string;
  invalidEmail: string;
  noFile: string;
}

export const DEFAULT_UPLOAD_FORM_LABELS: UploadFormLabels = Object.freeze({
  email: "Email",
  emailHelp: "We only use it to tell you when your model is ready.",
  photo: "Photo",
  photoHelp: "JPEG, PNG, WebP or HEIC.",
  submit: "Upload",
  cancel: "Cancel",
  retry: "Try again",
  startOver: "Start over",
  progress: "Upload progress",
  steps: Object.freeze({
    creating: "Preparing your upload…", uploading: "Uploading your photo…", confirming: "Checking your photo…",
  }),
  retrying: (seconds: number) => `The connection dropped. Trying again in ${seconds} s…`,
  offline: OFFLINE_MESSAGE,
  done: "Upload complete.",
  cancelled: "Upload cancelled.",
  retryReady: "You can try again now.",
  disabled: "Uploads are turned off right now.",
  invalidEmail: EMAIL_MESSAGE,
  noFile: NO_FILE_MESSAGE,
});

/** The parts a class name can be given to. */
export type UploadFormPart =
  | "root" | "field" | "label" | "input" | "help" | "fieldError" | "actions" | "button" | "submit" | "cancel"
  | "retry" | "startOver" | "progress" | "status" | "error" | "notice";

export interface UploadFormProps extends UseUploadOptions {
  /** Whether the form can upload (a feature flag, say). Default true; false shows the form disabled. */
  enableUpload?: boolean | undefined;
  /** Replace any of the texts (for another language, or your own words). */
  labels?: Partial<UploadFormLabels> | undefined;
  /** The form element's class (same as classNames.root). */
  className?: string | undefined;
  /** Class names per part; nothing is styled by the package. */
  classNames?: Partial<Record<UploadFormPart, string>> | undefined;
  /** Rendered at the end of the form: a node, or a function of the hook's result (render prop). */
  children?: ReactNode | ((upload: UseUploadResult) => ReactNode);
}

const join = (...names: (string | undefined)[]): string | undefined => names.filter(Boolean).join(" ") || undefined;

/** What the live region says: the step, each quarter of the PUT, a wait, or the outcome. */
function statusText(upload: UseUploadResult, labels: UploadFormLabels, notice: string | null): string {
  const { state } = upload;
  if (state.status === "waiting" && state.wait) {
    return state.wait.reason === "offline" ? labels.offline
      : labels.retrying(Math.round((state.wait.delayMs ?? 0) / 1000) || 1);
  }
  if (state.status === "uploading") {
    // Screen readers hear every quarter, not every percent.
    const quarter = Math.floor(state.progress / 25);
    return quarter > 0 && quarter < 4 ? `${labels.steps.uploading} ${quarter * 25}%` : labels.steps.uploading;
  }
  if (state.status === "creating" || state.status === "confirming") return labels.steps[state.status];
  if (state.status === "done") return labels.done;
  return notice ?? "";
}

/** The story's upload form. Navigate from onUploadComplete (called once per job, a resumed confirm included). */
export function UploadForm({
  enableUpload = true, labels: givenLabels, className, classNames = {}, children, ...options
}: UploadFormProps): ReactNode {
  const labels: UploadFormLabels = { ...DEFAULT_UPLOAD_FORM_LABELS, ...givenLabels };
  const upload = useUpload(options);
  const { state } = upload;
  const id = useId();
  const ids = {
    email: `${id}-email`, emailHelp: `${id}-email-help`, emailError: `${id}-email-error`,
    photo: `${id}-photo`, photoHelp: `${id}-photo-help`, photoError: `${id}-photo-error`,
    progress: `${id}-progress`, disabled: `${id}-disabled`,
  };
  const [email, setEmail] = useState("");
  const [file, setFile] = useState<File | null>(null);
  // An error found before anything was sent (the form's own checks).
  const [invalid, setInvalid] = useState<{ field: FormField; message: string } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  // "Try again" resumes the failed attempt; changing the email or the photo makes it a new upload instead.
  const [withdrawn, setWithdrawn] = useState(false);
  // Asking again before a 429's Retry-After only meets the same refusal.
  const [held, setHeld] = useState(false);
  const [focus, setFocus] = useState<"email" | "photo" | "submit" | "retry" | "error" | null>(null);
  const refs = {
    email: useRef<HTMLInputElement>(null), photo: useRef<HTMLInputElement>(null),
    submit: useRef<HTMLButtonElement>(null), retry: useRef<HTMLButtonElement>(null),
    error: useRef<HTMLParagraphElement>(null),
  };

  const failure = state.status === "error" ? describeFailure(state.error, { maxBytes: options.maxBytes ?? null }) : null;
  const fieldError = invalid ?? (failure?.field ? { field: failure.field, message: failure.message } : null);
  const formError = failure && !failure.field ? failure.message : null;
  const canRetry = Boolean(formError) && !withdrawn && !held && state.error?.code !== "NO_SESSION";
  const disabled = !enableUpload || state.busy;
  const showProgress = state.busy ? state.step !== "creating" || state.uploaded
    : state.status === "done" || (state.status === "error" && state.uploaded);

  // Focus goes where the person has to act next: the field to correct, "Try again", or the message.
  useEffect(() => {
    if (state.status !== "error" || !failure) return undefined;
    setWithdrawn(false);
    if (failure.field) {
      setFocus(failure.field);
      return undefined;
    }
    if (state.error?.code !== "RATE_LIMITED") {
      setFocus("retry");
      return undefined;
    }
    setHeld(true);
    setFocus("error");
    const timer = setTimeout(() => {
      setHeld(false);
      setNotice(labels.retryReady);
    }, (state.error.retryAfter ?? 60) * 1000);
    return () => clearTimeout(timer);
    // Once per failure: the error object is new for each one.
  }, [state.error]);

  useEffect(() => {
    if (!focus) return;
    const target = refs[focus].current;
    if (target && !(target as HTMLInputElement).disabled) {
      target.focus();
      setFocus(null);
    }
  });

  function check(): File | null {
    if (!email.trim() || refs.email.current?.checkValidity() === false) {
      setInvalid({ field: "email", message: labels.invalidEmail });
      setFocus("email");
      return null;
    }
    if (!file) {
      setInvalid({ field: "photo", message: labels.noFile });
      setFocus("photo");
      return null;
    }
    return file;
  }

  function submit(event: FormEvent<HTMLFormElement>): void {
    event.preventDefault();
    if (disabled) return;
    setInvalid(null);
    setNotice(null);
    setHeld(false);
    const chosen = check();
    if (chosen) void upload.startUpload(chosen, email.trim());
  }

  function changed(): void {
    setInvalid(null);
    setNotice(null);
    if (state.status === "error") setWithdrawn(true);
  }

  function cancel(): void {
    upload.cancelUpload();
    setNotice(labels.cancelled);
    setFocus("submit");
  }

  function retry(): void {
    setNotice(null);
    void upload.retry();
  }

  function startOver(): void {
    upload.reset();
    setInvalid(null);
    setNotice(null);
    setWithdrawn(false);
    setHeld(false);
    setFile(null);
    if (refs.photo.current) refs.photo.current.value = "";
    setFocus("email");
  }

  const errorFor = (field: FormField): string => (fieldError?.field === field ? fieldError.message : "");
  const describedBy = (...names: string[]): string => [...(enableUpload ? [] : [ids.disabled]), ...names].join(" ");

  return (
    <form className={join(classNames.root, className)} noValidate onSubmit={submit} aria-busy={state.busy}>
      {!enableUpload && <p id={ids.disabled} className={classNames.notice}>{labels.disabled}</p>}
      <div className={classNames.field}>
        <label htmlFor={ids.email} className={classNames.label}>{labels.email}</label>
        <input ref={refs.email} id={ids.email} name="email" type="email" autoComplete="email" required
          className={classNames.input} value={email} disabled={disabled}
          aria-invalid={errorFor("email") ? true : undefined}
          aria-describedby={describedBy(ids.emailHelp, ids.emailError)}
          onChange={(event: ChangeEvent<HTMLInputElement>) => {
            setEmail(event.target.value);
            changed();
          }} />
        <p id={ids.emailHelp} className={classNames.help}>{labels.emailHelp}</p>
        <p id={ids.emailError} className={classNames.fieldError}>{errorFor("email")}</p>
      </div>
      <div className={classNames.field}>
        <label htmlFor={ids.photo} className={classNames.label}>{labels.photo}</label>
        <input ref={refs.photo} id={ids.photo} name="photo" type="file" required className={classNames.input}
          accept="image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif" disabled={disabled}
          aria-invalid={errorFor("photo") ? true : undefined}
          aria-describedby={describedBy(ids.photoHelp, ids.photoError)}
          onChange={(event: ChangeEvent<HTMLInputElement>) => {
            setFile(event.target.files?.[0] ?? null);
            changed();
          }} />
        <p id={ids.photoHelp} className={classNames.help}>{labels.photoHelp}</p>
        <p id={ids.photoError} className={classNames.fieldError}>{errorFor("photo")}</p>
      </div>
      <div className={classNames.actions}>
        {!canRetry && (
          <button ref={refs.submit} type="submit" disabled={disabled}
            className={join(classNames.button, classNames.submit)}>{labels.submit}</button>
        )}
        {state.busy && state.step !== "confirming" && (
          // The confirm can't be taken back once sent: no Cancel while it runs.
          <button type="button" onClick={cancel} className={join(classNames.button, classNames.cancel)}>
            {labels.cancel}
          </button>
        )}
        {canRetry && (
          <button ref={refs.retry} type="button" onClick={retry} disabled={!enableUpload}
            className={join(classNames.button, classNames.retry)}>{labels.retry}</button>
        )}
        {state.status === "error" && (
          <button type="button" onClick={startOver} className={join(classNames.button, classNames.startOver)}>
            {labels.startOver}
          </button>
        )}
      </div>
      {showProgress && (
        <div className={classNames.progress}>
          <label htmlFor={ids.progress}>{labels.progress}</label>
          <progress id={ids.progress} max={100} value={state.progress} />
          <span aria-hidden="true">{state.progress}%</span>
        </div>
      )}
      <p role="status" aria-live="polite" className={classNames.status}>{statusText(upload, labels, notice)}</p>
      <p ref={refs.error} role="alert" tabIndex={-1} className={classNames.error}>{formError ?? ""}</p>
      {typeof children === "function" ? children(upload) : children}
    </form>
  );
}
