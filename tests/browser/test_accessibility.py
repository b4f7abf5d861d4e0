"""axe-core on both pages in every state, each state also photographed at desktop width and at 390 px."""

import json
import re

import pytest

from tests.browser.conftest import set_timing
from tests.helpers import http, upload_body
from tests.images import png_bytes

STORAGE_PUT = re.compile(r".*/uploads/uploads/.*")
CREATE = re.compile(r".*/api/upload$")


@pytest.fixture
def look(axe, screenshots):
    """Check the page with axe-core and photograph it at 1024 px and 390 px; return the violations."""
    found = {}

    def check(page, state):
        found[state] = axe(page)
        screenshots(page, f"{state}-desktop")
        page.set_viewport_size({"width": 390, "height": 844})
        screenshots(page, f"{state}-390")
        found[state] += [v for v in axe(page) if v not in found[state]]
        page.set_viewport_size({"width": 1024, "height": 800})

    check.found = found
    return check


def fill(page, photo=None):
    page.goto("/")
    page.get_by_label("Email").fill("maya@example.com")
    page.get_by_label("Photo").set_input_files(
        {"name": "portrait.png", "mimeType": "image/png", "buffer": photo or png_bytes(320, 240)})
    page.locator("#preview-image").wait_for()


def test_the_upload_page_has_no_violations_in_any_state(page, look):
    page.goto("/")
    look(page, "upload-idle")

    page.get_by_label("Email").fill("not an email")
    page.get_by_role("button", name="Upload").click()
    page.locator("#email-error").filter(has_text="Please enter a valid email address").wait_for()
    look(page, "upload-field-error")

    fill(page)
    look(page, "upload-file-chosen")

    page.route(STORAGE_PUT, lambda route: None)  # the PUT hangs: the page stays uploading
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("status").filter(has_text="Uploading your photo").wait_for()
    look(page, "upload-uploading")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("status").filter(has_text="Upload cancelled.").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "submit"
    look(page, "upload-cancelled")
    page.unroute(STORAGE_PUT)

    # The navigation to the processing page is called off: the page stays on "done".
    page.route(re.compile(r".*/processing/.*"), lambda route: route.abort("aborted"))
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("status").filter(has_text="Upload complete. Taking you to your model").wait_for()
    look(page, "upload-done")

    assert look.found == {state: [] for state in look.found}, look.found


def test_the_upload_page_has_no_violations_when_the_server_keeps_failing(page, look):
    set_timing(page, retryDelaysMs=[50, 50])
    page.route(CREATE, lambda route: route.fulfill(status=503, content_type="application/json", body=json.dumps(
        {"error": {"code": "SERVICE_UNAVAILABLE",
                   "message": "The service is temporarily unavailable. Please try again in a moment."}})))
    fill(page)
    page.get_by_role("button", name="Upload").click()

    page.get_by_role("alert").filter(has_text="The service is temporarily unavailable.").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "retry"
    look(page, "upload-error")
    # The pages follow the system's dark mode: its colours must hold up too.
    page.emulate_media(color_scheme="dark")
    look(page, "upload-error-dark")
    assert look.found == {"upload-error": [], "upload-error-dark": []}, look.found


def test_the_processing_page_has_no_violations_in_any_state(page, live_server, look):
    status, body = http("POST", f"{live_server}/api/upload", data=json.dumps(upload_body()).encode(),
                        headers={"Content-Type": "application/json"})
    assert status == 201, body
    job = json.loads(body)

    page.goto(f"/processing/{job['uploadId']}")
    page.get_by_role("alert").filter(has_text="This device has no access to this upload.").wait_for()
    look(page, "processing-no-token")

    page.goto("/processing/%E0%A4%A")
    page.get_by_role("alert").filter(has_text="incomplete or damaged").wait_for()
    look(page, "processing-bad-link")

    page.evaluate(f"""() => {{
      localStorage.setItem('3d-ultra-session-{job['uploadId']}', '{job['sessionToken']}');
      localStorage.setItem('3d-ultra-current-job', '{job['uploadId']}');
    }}""")
    page.goto(f"/processing/{job['uploadId']}")
    page.locator("#job-status").filter(has_text="Waiting to be processed").wait_for()
    look(page, "processing-pending")

    page.goto("/")
    page.get_by_role("link", name="Continue to your last upload").wait_for()
    look(page, "upload-continue")

    assert http("DELETE", f"{live_server}/api/upload/{job['uploadId']}",
                headers={"X-Session-Token": job["sessionToken"]})[0] == 204
    page.goto(f"/processing/{job['uploadId']}")
    page.get_by_role("alert").filter(has_text="This upload was cancelled.").wait_for()
    look(page, "processing-cancelled")

    assert look.found == {state: [] for state in look.found}, look.found
