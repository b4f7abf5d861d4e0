import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

import { Processing } from "./Processing";
import { UploadForm } from "./UploadForm";

// The smallest router that does the job: two routes on the History API.
function navigate(to: string): void {
  if (location.pathname === to) return;
  history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

function App() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const onPop = () => setPath(location.pathname);
    addEventListener("popstate", onPop);
    return () => removeEventListener("popstate", onPop);
  }, []);
  const job = /^\/processing\/([^/]+)$/.exec(path);
  return job?.[1] ? <Processing jobId={job[1]} /> : <UploadForm onUploadComplete={({ uploadId }) =>
    navigate(`/processing/${uploadId}`)} />;
}

createRoot(document.getElementById("root")!).render(<StrictMode><App /></StrictMode>);
