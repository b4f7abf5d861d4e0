import { useJob } from "@3d-ultra/upload-client/react";

import { API_BASE } from "./config";

export function Processing({ jobId }: { jobId: string }) {
  const { job, error } = useJob(jobId, { baseUrl: API_BASE });
  return (
    <main>
      <h1>Processing</h1>
      <p data-testid="job">{jobId}</p>
      {job && <p role="status">{job.status}</p>}
      {error && <p role="alert">{error.message}</p>}
    </main>
  );
}
