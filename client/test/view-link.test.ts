// @vitest-environment happy-dom
// The emailed link's view credential: taken from the address's fragment, kept on the device, never as a session.
import { afterEach, expect, test } from "vitest";

import {
  SESSION_PREFIX, VIEW_PREFIX, clearViewToken, getSession, getViewToken, takeViewToken,
} from "../src/index.js";
import { installStorages, removeStorages } from "./helpers.js";

afterEach(() => {
  removeStorages();
  window.history.replaceState(null, "", "/");
});

test("the link's #view= is kept as 3d-ultra-view-{jobId} and removed from the address bar", () => {
  const { local } = installStorages();
  window.history.replaceState(null, "", "/processing/job1?x=1#view=abc-123");
  expect(takeViewToken("job1")).toBe("abc-123");
  expect(VIEW_PREFIX).toBe("3d-ultra-view-");
  expect(local?.getItem("3d-ultra-view-job1")).toBe("abc-123");
  expect(local?.getItem(`${SESSION_PREFIX}job1`)).toBeNull();
  expect(getSession("job1")).toBeNull();
  expect(window.location.pathname + window.location.search + window.location.hash).toBe("/processing/job1?x=1");
  expect(getViewToken("job1")).toBe("abc-123");
  clearViewToken("job1");
  expect(getViewToken("job1")).toBeNull();
});

test("an address without a view credential is left alone", () => {
  installStorages();
  window.history.replaceState(null, "", "/processing/job1#other=1");
  expect(takeViewToken("job1")).toBeNull();
  expect(window.location.hash).toBe("#other=1");
});

test("storage refusing it still gives the token for this visit", () => {
  installStorages({ local: null });
  window.history.replaceState(null, "", "/processing/job1#view=abc");
  expect(takeViewToken("job1", { onError: () => undefined })).toBe("abc");
  expect(window.location.hash).toBe("");
});
