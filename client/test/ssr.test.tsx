// Server rendering: the hooks render their initial state and fetch nothing.
import { renderToString } from "react-dom/server";
import { expect, test, vi } from "vitest";

import { useCurrentJob, useJob, useUpload } from "../src/react/index.js";

function Page() {
  const { state } = useUpload({ baseUrl: "http://127.0.0.1:8000" });
  const job = useJob("job1", { baseUrl: "http://127.0.0.1:8000" });
  const current = useCurrentJob();
  return <p>{state.status} {state.progress} {job.job === null ? "no job" : "job"} {current ?? "none"} {job.job?.progress ?? "-"} {typeof job.retry}</p>;
}

test("a page using the hooks renders on the server with the idle state and no request", () => {
  const fetch = vi.spyOn(globalThis, "fetch");
  expect(typeof (globalThis as { window?: unknown }).window).toBe("undefined");
  expect(renderToString(<Page />))
    .toBe("<p>idle<!-- --> <!-- -->0<!-- --> <!-- -->no job<!-- --> <!-- -->none<!-- --> <!-- -->-<!-- --> <!-- -->function</p>");
  expect(fetch).not.toHaveBeenCalled();
});
