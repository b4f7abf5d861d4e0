// The same upload on the hooks alone, for an app that draws its own form: useUpload's onUploadComplete (also for a
// confirm resumed after a reload), state.busy and retry() ("Try again" at the step that failed, same job).
import { useState, type FormEvent } from "react";
import { useUpload } from "@3d-ultra/upload-client/react";

import { reportError } from "./analytics";
import { API_BASE } from "./config";

interface Props {
  onUploadComplete: (result: { uploadId: string; sessionToken: string }) => void;
}

export function CustomUploadForm({ onUploadComplete }: Props) {
  const { state, startUpload, retry, cancelUpload, reset } = useUpload({
    baseUrl: API_BASE, onError: reportError, onUploadComplete,
  });
  const [email, setEmail] = useState("");
  const [file, setFile] = useState<File | null>(null);

  function submit(event: FormEvent) {
    event.preventDefault();
    if (file) void startUpload(file, email);
  }

  return (
    <form onSubmit={submit}>
      <label>Email <input type="email" required value={email} onChange={(e) => setEmail(e.target.value)} /></label>
      <label>Photo <input type="file" accept="image/*" required
        onChange={(e) => setFile(e.target.files?.[0] ?? null)} /></label>
      <button type="submit" disabled={state.busy}>Upload</button>
      {state.busy && <button type="button" onClick={cancelUpload}>Cancel</button>}
      <p role="status">{state.status} {state.progress}%</p>
      {state.error && <p role="alert">{state.error.message}</p>}
      {state.status === "error" && <button type="button" onClick={() => void retry()}>Try again</button>}
      {state.status === "error" && <button type="button" onClick={reset}>Start over</button>}
    </form>
  );
}
