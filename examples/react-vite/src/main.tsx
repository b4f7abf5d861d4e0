import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { UploadForm, useCurrentJob } from "@3d-ultra/upload-client/react";

import { reportError } from "./analytics";
import { API_BASE } from "./config";
import { CustomUploadForm } from "./CustomUploadForm";
import { Processing } from "./Processing";

// The smallest router that does the job: three routes on the History API.
function navigate(to: string): void {
  if (location.pathname === to) return;
  history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

const handleUploadComplete = ({ uploadId }: { uploadId: string }) => navigate(`/processing/${uploadId}`);

function Upload() {
  const lastJob = useCurrentJob();
  return (
    <main>
      <h1>Upload your photo</h1>
      {lastJob && <p><a href={`/processing/${lastJob}`} onClick={(event) => {
        event.preventDefault();
        navigate(`/processing/${lastJob}`);
      }}>Continue your last upload</a></p>}
      {/* The story's line, with what a real app adds: where the API is and where unseen failures go. */}
      <UploadForm enableUpload onUploadComplete={handleUploadComplete} baseUrl={API_BASE} onError={reportError} />
    </main>
  );
}

function App() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const onPop = () => setPath(location.pathname);
    addEventListener("popstate", onPop);
    return () => removeEventListener("popstate", onPop);
  }, []);
  const job = /^\/processing\/([^/]+)$/.exec(path);
  if (job?.[1]) return <Processing jobId={job[1]} />;
  if (path === "/custom") return <main><h1>Upload your photo</h1><CustomUploadForm onUploadComplete={handleUploadComplete} /></main>;
  return <Upload />;
}

createRoot(document.getElementById("root")!).render(<StrictMode><App /></StrictMode>);
