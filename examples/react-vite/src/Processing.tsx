import { useEffect } from "react";
import { useJob } from "@3d-ultra/upload-client/react";

import { API_BASE } from "./config";

// The processing route: useJob follows the job (progress, preview, model, fresh links, the emailed link's
// view credential); <model-viewer> shows the model; retry() processes a failed job again.
export function Processing({ jobId }: { jobId: string }) {
  const { job, error, retry, retrying, retryError } = useJob(jobId, { baseUrl: API_BASE });
  // The viewer's own bundle (three.js included, ~1 MB) defines <model-viewer>: loaded once there is a model. (Its
  // lib/ typings do not compile under this app's strict settings; JSX gets the element from model-viewer.d.ts.)
  const hasModel = Boolean(job?.resultUrl);
  useEffect(() => {
    if (hasModel) void import("@google/model-viewer/dist/model-viewer.min.js");
  }, [hasModel]);
  return (
    <main>
      <h1>Processing</h1>
      <p data-testid="job">{jobId}</p>
      {job && <p role="status">{job.status}</p>}
      {job?.status === "processing" && (
        <progress aria-label="Progress" max={100} {...(job.progress === null ? {} : { value: job.progress })} />
      )}
      {job?.previewUrl && <img src={job.previewUrl} alt="Your photo" width={160} />}
      {job?.resultUrl && (
        <>
          <model-viewer src={job.resultUrl} alt="Your 3D model" camera-controls style={{ width: "100%", height: 320 }} />
          <a href={job.resultUrl} download>Download the model</a>
        </>
      )}
      {job?.status === "failed" && (
        <>
          <p>{job.errorMessage}</p>
          <button type="button" onClick={() => void retry()} disabled={retrying}>Try again</button>
        </>
      )}
      {(error ?? retryError) && <p role="alert">{(error ?? retryError)?.message}</p>}
    </main>
  );
}
