// @vitest-environment happy-dom
// useCurrentJob under server rendering: the server's HTML (renderToString) is hydrated on a client whose storage
// holds a resumable job. The first client render must match the server's (null), with no recoverable error or
// warning, and the stored job shows right after.
import { useState, type ReactElement } from "react";
import { act } from "@testing-library/react";
import { hydrateRoot } from "react-dom/client";
import { renderToString } from "react-dom/server";
import { afterEach, beforeEach, expect, test, vi } from "vitest";

import { CURRENT_JOB_KEY, SESSION_PREFIX, resumableJob } from "../src/index.js";
import { useCurrentJob } from "../src/react/index.js";
import { MemoryStorage, installStorages, removeStorages } from "./helpers.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

function Continue({ jobId }: { jobId: string | null }) {
  return jobId ? <a href={`/processing/${jobId}`}>Continue your last upload</a> : <p>No upload yet</p>;
}
function WithHook() {
  return <Continue jobId={useCurrentJob()} />;
}
// What an app writes without the hook: storage read during render, so the client's first render differs.
function ReadsStorageInRender() {
  const [jobId] = useState(() => resumableJob());
  return <Continue jobId={jobId} />;
}

let local: MemoryStorage;
beforeEach(() => {
  local = new MemoryStorage();
  installStorages({ local });
});
afterEach(removeStorages);

async function serverThenHydrate(Page: () => ReactElement) {
  // The server has no storage: what it renders is what a server would.
  removeStorages();
  const html = renderToString(<Page />);
  installStorages({ local });
  local.setItem(CURRENT_JOB_KEY, "job42");
  local.setItem(`${SESSION_PREFIX}job42`, "token42");
  const container = document.createElement("div");
  container.innerHTML = html;
  document.body.append(container);
  const recoverable = vi.fn();
  const consoleError = vi.spyOn(console, "error").mockImplementation(() => undefined);
  const consoleWarn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
  const root = await act(async () => hydrateRoot(container, <Page />, { onRecoverableError: recoverable }));
  const problems = [...recoverable.mock.calls, ...consoleError.mock.calls, ...consoleWarn.mock.calls];
  const after = container.innerHTML;
  act(() => root.unmount());
  container.remove();
  return { html, after, problems };
}

test("the server renders null, hydration matches it without a warning, then the stored job shows", async () => {
  const { html, after, problems } = await serverThenHydrate(WithHook);
  expect(html).toBe("<p>No upload yet</p>");
  expect(problems).toEqual([]);
  expect(after).toBe('<a href="/processing/job42">Continue your last upload</a>');
});

test("the check catches a mismatch: storage read during render is reported on hydration", async () => {
  const { problems } = await serverThenHydrate(ReadsStorageInRender);
  expect(problems.length).toBeGreaterThan(0);
});
