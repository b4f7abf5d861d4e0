"""The upload page on bad networks, in real Chromium against the real local stack: drops, offline spells, server
errors, stalls, refused URLs and rate limits, each recovered by itself (or with one click where it must)."""

import json
import re
import time

from tests.browser.conftest import PROCESSING_URL, set_timing, submit_upload

STORAGE_PUT = re.compile(r".*/uploads/uploads/.*")
CREATE = re.compile(r".*/api/upload$")


start_upload = submit_upload


def job_row(db, job_id):
    return db.run("SELECT status, confirmed_at IS NOT NULL, file_type FROM uploads WHERE id = :id", id=job_id)


def record_creates(page):
    """Every create request's Idempotency-Key, in order."""
    keys = []
    page.on("request", lambda request: keys.append(request.headers.get("idempotency-key"))
            if request.method == "POST" and CREATE.match(request.url) else None)
    return keys


def wait_until(page, condition, timeout=15.0):
    """Wait for a condition on what the route handlers saw (they run only while Playwright is waited on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def test_a_network_drop_mid_put_and_ten_seconds_offline_finish_by_themselves(page, photo, db, screenshots, axe):
    puts = []

    def drop_the_first_put(route):
        if route.request.method != "PUT":
            return route.continue_()
        puts.append(route.request.url)
        if len(puts) == 1:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route(STORAGE_PUT, drop_the_first_put)
    start_upload(page, photo)
    # The request is cut in flight, then the whole browser goes offline (set_offline alone would not cut it).
    wait_until(page, lambda: puts)
    page.context.set_offline(True)

    page.get_by_role("status").filter(has_text="You're offline. We'll continue when you're back.").wait_for()
    screenshots(page, "upload-offline")
    assert axe(page) == []
    page.wait_for_timeout(10_000)
    assert not PROCESSING_URL.match(page.url)
    assert page.get_by_role("button", name="Try again").is_hidden()
    page.context.set_offline(False)

    page.wait_for_url(PROCESSING_URL, timeout=30_000)
    job_id = PROCESSING_URL.match(page.url).group(1)
    assert job_row(db, job_id) == [["pending", True, "image/png"]]
    assert len(puts) >= 2 and all(job_id in url for url in puts)


def test_a_503_on_create_is_retried_with_the_same_key_and_finishes_without_a_click(page, photo, db):
    answered = []

    def unavailable_once(route):
        if route.request.method != "POST" or answered:
            return route.continue_()
        answered.append(503)
        route.fulfill(status=503, content_type="application/json", body=json.dumps(
            {"error": {"code": "SERVICE_UNAVAILABLE", "message": "The service is temporarily unavailable."}}))

    keys = record_creates(page)
    page.route(CREATE, unavailable_once)
    start_upload(page, photo)

    page.wait_for_url(PROCESSING_URL, timeout=30_000)
    job_id = PROCESSING_URL.match(page.url).group(1)
    assert answered == [503]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    assert job_row(db, job_id) == [["pending", True, "image/png"]]


def test_a_stalled_put_is_aborted_after_the_stall_timeout_and_finished_on_retry(page, photo, db):
    set_timing(page, stallMs=1500)
    held = []

    def stall_the_first_put(route):
        if route.request.method != "PUT":
            return route.continue_()
        if not held:
            held.append(route)  # never answered: the connection hangs
        else:
            route.continue_()

    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url) if request.method == "PUT" else None)
    page.route(STORAGE_PUT, stall_the_first_put)
    started = time.monotonic()
    start_upload(page, photo)

    page.wait_for_url(PROCESSING_URL, timeout=30_000)
    elapsed = time.monotonic() - started
    job_id = PROCESSING_URL.match(page.url).group(1)
    assert len(held) == 1 and len(failed) == 1 and job_id in failed[0]
    assert elapsed >= 1.5
    assert job_row(db, job_id) == [["pending", True, "image/png"]]


def test_a_refused_url_is_replaced_by_replaying_the_key_and_a_second_refusal_offers_try_again(page, photo, db,
                                                                                                screenshots):
    tampered = []

    def change_the_signed_type(route):
        # Storage really refuses these: the Content-Type no longer matches the signature.
        if route.request.method == "PUT" and len(tampered) < 2:
            tampered.append(route.request.url)
            return route.continue_(headers={**route.request.headers, "content-type": "image/jpeg"})
        route.continue_()

    keys = record_creates(page)
    page.route(STORAGE_PUT, change_the_signed_type)
    start_upload(page, photo)

    page.get_by_role("alert").filter(has_text="We couldn't upload your photo. Let's try again!").wait_for()
    retry = page.get_by_role("button", name="Try again")
    assert retry.is_visible()
    assert page.evaluate("() => document.activeElement.id") == "retry"
    screenshots(page, "upload-storage-refused")
    retry.click()

    page.wait_for_url(PROCESSING_URL)
    job_id = PROCESSING_URL.match(page.url).group(1)
    assert len(tampered) == 2 and all(job_id in url for url in tampered)
    # Each refused URL was replaced by replaying the one key: one job throughout.
    assert len(keys) == 3 and len(set(keys)) == 1
    assert job_row(db, job_id) == [["pending", True, "image/png"]]


def test_a_429_shows_the_wait_in_minutes_and_offers_try_again_only_after_retry_after(page, photo, db,
                                                                                      screenshots, axe):
    limited = []

    def rate_limited_once(route):
        if route.request.method != "POST" or limited:
            return route.continue_()
        limited.append(time.monotonic())
        route.fulfill(status=429, content_type="application/json", headers={"Retry-After": "3"}, body=json.dumps(
            {"error": {"code": "RATE_LIMITED",
                       "message": "Too many uploads right now. Please try again in 1 minutes."}}))

    keys = record_creates(page)
    page.route(CREATE, rate_limited_once)
    start_upload(page, photo)

    page.get_by_role("alert").filter(
        has_text="Too many uploads right now. Please try again in 1 minute.").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "error"
    screenshots(page, "upload-rate-limited")
    assert axe(page) == []
    # Longer than the first automatic retry would wait (1 s), shorter than Retry-After (3 s).
    page.wait_for_timeout(1500)
    assert len(keys) == 1
    assert page.get_by_role("button", name="Try again").is_hidden()

    page.get_by_role("button", name="Try again").wait_for(timeout=10_000)
    assert time.monotonic() - limited[0] >= 3
    assert len(keys) == 1
    page.get_by_role("button", name="Try again").click()
    page.wait_for_url(PROCESSING_URL)
    job_id = PROCESSING_URL.match(page.url).group(1)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert job_row(db, job_id) == [["pending", True, "image/png"]]


def test_going_offline_while_the_put_hangs_is_said_at_once_and_coming_back_too(page, photo):
    page.route(STORAGE_PUT, lambda route: None)  # the PUT hangs, so no request fails to tell the page
    start_upload(page, photo)
    status = page.get_by_role("status")
    status.filter(has_text="Uploading your photo").wait_for()

    page.context.set_offline(True)
    status.filter(has_text="You're offline. We'll continue when you're back.").wait_for()
    page.context.set_offline(False)
    status.filter(has_text="You're back online. Continuing…").wait_for()
    assert page.get_by_role("button", name="Cancel").is_visible()
