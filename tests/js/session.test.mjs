import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import {
  CURRENT_JOB_KEY, SESSION_PREFIX, clearSession, getCurrentJob, getSession, resumableJob, sessionPersistence,
  storeSession,
} from "../../chalicelib/web/session.js";
import { MemoryStorage, installStorages } from "./storage.mjs";

const quietConsole = () => { console.error = () => {}; };

describe("session storage", () => {
  beforeEach(quietConsole);

  test("a stored session is kept on the device and becomes the current job", () => {
    const { local, session } = installStorages();
    assert.equal(storeSession("job1", "token1"), "device");
    assert.equal(local.getItem(`${SESSION_PREFIX}job1`), "token1");
    assert.equal(local.getItem(CURRENT_JOB_KEY), "job1");
    assert.equal(session.items.size, 0);
    assert.equal(getSession("job1"), "token1");
    assert.equal(sessionPersistence("job1"), "device");
    assert.equal(resumableJob(), "job1");
  });

  test("a full localStorage falls back to this tab's sessionStorage and says so", () => {
    const { session } = installStorages({ local: new MemoryStorage({ refuseWrites: true }) });
    assert.equal(storeSession("job1", "token1"), "tab");
    assert.equal(session.getItem(`${SESSION_PREFIX}job1`), "token1");
    assert.equal(getSession("job1"), "token1");
    assert.equal(sessionPersistence("job1"), "tab");
    assert.equal(getCurrentJob(), "job1");
  });

  test("a localStorage that cannot even be read still leaves the tab's copy usable", () => {
    installStorages({ local: null });
    assert.equal(storeSession("job1", "token1"), "tab");
    assert.equal(getSession("job1"), "token1");
    assert.equal(resumableJob(), "job1");
  });

  test("when no storage accepts the token, storing reports null and nothing throws", () => {
    installStorages({ local: null, session: new MemoryStorage({ refuseWrites: true }) });
    assert.equal(storeSession("job1", "token1"), null);
    assert.equal(getSession("job1"), null);
    assert.equal(sessionPersistence("job1"), null);
    assert.equal(resumableJob(), null);
  });

  test("clearing a finished job removes its token and the current job pointer, in both storages", () => {
    const { local, session } = installStorages();
    storeSession("job1", "token1");
    session.setItem(`${SESSION_PREFIX}job1`, "token1");
    storeSession("job2", "token2");
    clearSession("job1");
    assert.equal(getSession("job1"), null);
    assert.equal(local.getItem(CURRENT_JOB_KEY), "job2");
    clearSession("job2");
    assert.equal(local.items.size, 0);
    assert.equal(session.items.size, 0);
  });

  test("a current job whose token is gone is not offered for resuming", () => {
    const { local } = installStorages();
    local.setItem(CURRENT_JOB_KEY, "job9");
    assert.equal(getCurrentJob(), "job9");
    assert.equal(resumableJob(), null);
  });
});
