import { useEffect, useState, type FormEvent } from "react";
import { useUpload } from "@3d-ultra/upload-client/react";

import { API_BASE } from "./config";

interface Props {
  onUploadComplete: (result: { uploadId: string; sessionToken: string }) => void;
}

export function UploadForm({ onUploadComplete }: Props) {
  const { state, startUpload, confirmUpload, cancelUpload, reset } = useUpload({ baseUrl: API_BASE });
  const [email, setEmail] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const busy = state.status === "creating" || state.status === "uploading" || state.status === "confirming";
  // The photo is in storage and only the confirm failed: it can be retried without uploading again.
  const unconfirmed = state.status === "error" && state.uploaded ? state.uploadId : null;

  // Also a confirm the hook resumed after a reload, or one retried with confirmUpload: go on once it is done.
  useEffect(() => {
    if (state.status === "done" && state.result) onUploadComplete(state.result);
  }, [state.status, state.result, onUploadComplete]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!file) return;
    const result = await startUpload(file, email);
    if (result) onUploadComplete(result);
  }

  return (
    <form onSubmit={submit}>
      <label>Email <input type="email" required value={email} onChange={(e) => setEmail(e.target.value)} /></label>
      <label>Photo <input type="file" accept="image/*" required
        onChange={(e) => setFile(e.target.files?.[0] ?? null)} /></label>
      <button type="submit" disabled={busy}>Upload</button>
      {busy && <button type="button" onClick={cancelUpload}>Cancel</button>}
      <p role="status">{state.status} {state.progress}%</p>
      {state.error && <p role="alert">{state.error.message}</p>}
      {unconfirmed && <button type="button" onClick={() => void confirmUpload(unconfirmed)}>Try again</button>}
      {state.status === "error" && <button type="button" onClick={reset}>Start over</button>}
    </form>
  );
}
