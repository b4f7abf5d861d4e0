"""The upload page and the processing page, end to end in real Chromium against the real local stack."""

import json
import re
import time

import pytest

from tests.browser.conftest import PROCESSING_URL, RECORD_PROGRESS, set_timing, submit_upload
from tests.helpers import http
from tests.images import png_bytes

STORAGE_PUT = re.compile(r".*/uploads/uploads/.*")


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory):
    # Random pixels do not compress: about 1.5 MB, enough for upload progress to be seen.
    path = tmp_path_factory.mktemp("photos") / "noisy.png"
    path.write_bytes(png_bytes(700, 700, noise=True))
    return path


upload = submit_upload


def local_storage(page):
    return page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")


def job_row(db, job_id):
    return db.run("SELECT status, confirmed_at IS NOT NULL FROM uploads WHERE id = :id", id=job_id)


def test_the_full_flow_uploads_confirms_stores_the_session_and_shows_the_job(page, big_photo, db, screenshots):
    page.add_init_script(RECORD_PROGRESS)
    # A slow uplink (4 Mbit/s), so the progress bar has something to show on loopback.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 500_000})
    page.goto("/")
    assert page.locator("#progress").is_hidden()
    screenshots(page, "upload-page")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshots(page, "upload-page-phone")
    page.set_viewport_size({"width": 1024, "height": 800})
    page.get_by_label("Email").fill("maya@example.com")
    page.get_by_label("Photo").set_input_files(str(big_photo))
    page.get_by_role("button", name="Upload").click()

    page.wait_for_url(PROCESSING_URL, timeout=30_000)
    job_id = PROCESSING_URL.match(page.url).group(1)
    page.locator("#job-status").filter(has_text="Waiting to be processed").wait_for()
    screenshots(page, "processing-page")

    stored = local_storage(page)
    progress = json.loads(page.evaluate("() => sessionStorage.getItem('progress-seen') || '[]'"))
    assert progress[-1] == 100 and progress == sorted(progress)
    assert len({p for p in progress if 0 < p < 100}) >= 3, progress
    # Progress is announced at each quarter, not at every percent.
    announced = json.loads(page.evaluate("() => sessionStorage.getItem('status-seen') || '[]'"))
    assert [text for text in announced if "%" in text] == [
        "Uploading your photo… 25%", "Uploading your photo… 50%", "Uploading your photo… 75%"], announced
    assert announced[0] == "Preparing your upload…" and "Checking your photo…" in announced
    assert stored[f"3d-ultra-session-{job_id}"]
    assert stored["3d-ultra-current-job"] == job_id
    assert job_row(db, job_id) == [["pending", True]]
    assert page.locator("#job-id").text_content() == job_id
    print(f"\nprogress values seen: {progress}\nstatus announced: {announced}")


def test_a_second_upload_moves_the_current_job_and_keeps_the_first_session(page, photo):
    upload(page, photo)
    page.wait_for_url(PROCESSING_URL)
    first = PROCESSING_URL.match(page.url).group(1)
    first_token = local_storage(page)[f"3d-ultra-session-{first}"]

    upload(page, photo, email="sam@example.com")
    page.wait_for_url(lambda url: PROCESSING_URL.match(url) and not url.endswith(first))
    second = PROCESSING_URL.match(page.url).group(1)

    stored = local_storage(page)
    assert stored["3d-ultra-current-job"] == second
    assert stored[f"3d-ultra-session-{first}"] == first_token
    assert stored[f"3d-ultra-session-{second}"] not in ("", first_token)


@pytest.mark.parametrize("name, content, mime, message", [
    ("notes.txt", b"just text", "text/plain", "Please choose a JPEG, PNG, WebP or HEIC image."),
    ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (21 * 1024 * 1024), "image/png",
     "That photo is 21.0 MB; the limit is 20 MB."),
    # Named and typed as a PNG, but the server checks the bytes: refused here instead of after the upload.
    ("renamed.png", b"GIF89a" + b"\x00" * 64, "image/png",
     "This file doesn't look like a JPEG, PNG, WebP or HEIC photo inside. Please choose another photo."),
])
def test_a_non_image_or_oversized_file_is_refused_before_anything_is_sent(page, screenshots, tmp_path, name, content,
                                                                           mime, message):
    # From disk, as a person chooses it (and much faster than handing Playwright 21 MB to send).
    chosen = tmp_path / name
    chosen.write_bytes(content)
    sent = []
    page.on("request", lambda request: sent.append(request.url) if "/api/" in request.url else None)
    page.goto("/")
    page.get_by_label("Email").fill("maya@example.com")
    page.get_by_label("Photo").set_input_files(str(chosen))
    assert page.evaluate("() => document.getElementById('photo').files[0].type") == mime
    page.get_by_role("button", name="Upload").click()

    # The error is tied to the photo field, which gets the focus.
    photo_field = page.get_by_label("Photo")
    page.locator("#photo-error").filter(has_text=message).wait_for()
    assert photo_field.get_attribute("aria-invalid") == "true"
    assert "photo-error" in photo_field.get_attribute("aria-describedby")
    assert page.evaluate("() => document.activeElement.id") == "photo"
    screenshots(page, f"refused-{name.split('.')[0]}")
    assert sent == []


def test_the_processing_page_without_a_stored_token_says_so(page, screenshots):
    page.goto("/processing/zzzzzzzzzzzzzzzzzzzzzzzz")

    page.get_by_role("alert").filter(
        has_text="This device has no access to this upload. Open this page in the browser you uploaded from, "
                 "or use the link in the email we send when your model is ready.").wait_for()
    assert page.get_by_role("link", name="Start a new upload").is_visible()
    screenshots(page, "processing-no-token")


def test_the_processing_page_with_a_wrong_token_says_it_was_refused(page, photo, screenshots):
    upload(page, photo)
    page.wait_for_url(PROCESSING_URL)
    job_id = PROCESSING_URL.match(page.url).group(1)
    page.evaluate(f"() => localStorage.setItem('3d-ultra-session-{job_id}', 'not-the-token')")

    page.reload()

    page.get_by_role("alert").filter(
        has_text="This device's session for the upload was refused. Please start a new upload.").wait_for()
    screenshots(page, "processing-wrong-token")


def test_a_local_storage_that_refuses_keeps_the_session_for_this_tab_and_says_it_cannot_be_reopened(page, photo,
                                                                                                    db, screenshots):
    page.add_init_script("""
      const setItem = Storage.prototype.setItem;
      Storage.prototype.setItem = function (key, value) {
        if (this === window.localStorage) throw new DOMException('quota', 'QuotaExceededError');
        return setItem.call(this, key, value);
      };
    """)

    upload(page, photo)

    page.wait_for_url(PROCESSING_URL)
    job_id = PROCESSING_URL.match(page.url).group(1)
    page.locator("#job-status").filter(has_text="Waiting to be processed").wait_for()
    assert page.locator("#notice").text_content().startswith(
        "This browser wouldn't let us save your upload, so you can't reopen this page later.")
    screenshots(page, "processing-tab-only-session")
    assert job_row(db, job_id) == [["pending", True]]
    assert local_storage(page) == {}
    assert any(kind == "error" and "localStorage is unavailable" in text for kind, text in page.console_messages)


def test_the_whole_upload_works_by_keyboard_alone(page, photo, screenshots):
    response = page.goto("/")
    # The page itself is never stored, so Back and reload always run it fresh (or restore it, see pageshow).
    assert response.headers["cache-control"] == "no-store"
    page.locator("#max-size").filter(has_text="20").wait_for()  # the page's module has run
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "email"
    page.keyboard.type("maya@example.com")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "photo"
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(photo))
    page.locator("#preview-name").filter(has_text="portrait.png").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "submit"
    screenshots(page, "upload-keyboard-focus")
    page.keyboard.press("Enter")

    page.wait_for_url(PROCESSING_URL)


def test_cancel_once_the_job_exists_cancels_it_on_the_server_once(page, photo, db, screenshots):
    page.route(STORAGE_PUT, lambda route: None)  # the PUT hangs: the job exists, its photo is on its way
    cancels = []
    page.on("request", lambda request: cancels.append(request.url) if request.method == "DELETE" else None)
    submit_upload(page, photo)
    page.get_by_role("status").filter(has_text="Uploading your photo").wait_for()

    with page.expect_response(lambda response: response.request.method == "DELETE") as answer:
        page.get_by_role("button", name="Cancel").click()
    page.get_by_role("status").filter(has_text="Upload cancelled.").wait_for()

    assert answer.value.status == 204
    job_id = cancels[0].rsplit("/", 1)[1]
    assert job_row(db, job_id) == [["cancelled", False]]
    page.wait_for_timeout(500)
    assert len(cancels) == 1
    screenshots(page, "upload-cancelled-on-the-server")


def test_the_processing_page_stops_polling_when_the_job_is_cancelled_and_offers_a_new_upload(
        page, live_server, screenshots):
    status, body = http("POST", f"{live_server}/api/upload", json.dumps(
        {"email": "maya@example.com", "fileType": "image/png", "fileSize": 68}).encode(),
        {"Content-Type": "application/json"})
    job = json.loads(body)
    polls = []
    page.on("request", lambda request: polls.append(time.monotonic())
            if request.method == "GET" and request.url.endswith(f"/api/upload/{job['uploadId']}") else None)
    set_timing(page, pollStartMs=200, pollFactor=1, pollMaxMs=200)
    page.add_init_script(f"localStorage.setItem('3d-ultra-session-{job['uploadId']}', '{job['sessionToken']}')")
    page.goto(f"/processing/{job['uploadId']}")
    page.get_by_text("Your photo hasn't arrived yet").wait_for()

    cancelled = http("DELETE", f"{live_server}/api/upload/{job['uploadId']}",
                     headers={"X-Session-Token": job["sessionToken"]})

    page.get_by_role("alert").filter(has_text="This upload was cancelled. Please start a new upload.").wait_for()
    assert (status, cancelled) == (201, (204, b""))
    assert page.get_by_role("link", name="Start a new upload").is_visible()
    assert page.evaluate(f"() => localStorage.getItem('3d-ultra-session-{job['uploadId']}')") is None
    seen = len(polls)
    page.wait_for_timeout(1000)
    assert len(polls) == seen  # five polling periods later, nothing more was asked
    screenshots(page, "processing-cancelled")
