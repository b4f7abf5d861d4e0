"""What the client package brought to the served pages, in real Chromium against the real local stack: a reload
between the PUT and the confirm confirms the job instead of losing it, and an origin without crypto.randomUUID
still sends an Idempotency-Key."""

import json
import re

from tests.browser.conftest import PROCESSING_URL, set_timing, submit_upload

CONFIRM = re.compile(r".*/api/upload/[a-z0-9]{24}/confirm$")
CREATE = re.compile(r".*/api/upload$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def job_row(db, job_id):
    return db.run("SELECT status, confirmed_at IS NOT NULL FROM uploads WHERE id = :id", id=job_id)


def test_a_reload_after_the_photo_reached_storage_confirms_the_job(page, photo, db):
    set_timing(page, retryDelaysMs=[10])

    def unavailable(route):
        route.fulfill(status=503, content_type="application/json", body=json.dumps(
            {"error": {"code": "SERVICE_UNAVAILABLE", "message": "The service is busy. Please try again."}}))

    page.route(CONFIRM, unavailable)
    submit_upload(page, photo)
    page.get_by_role("button", name="Try again").wait_for()
    pending = json.loads(page.evaluate("() => sessionStorage.getItem('3d-ultra-pending-upload')"))
    job_id = pending["uploadId"]
    assert job_row(db, job_id) == [["pending", False]]
    assert page.evaluate(f"() => localStorage.getItem('3d-ultra-session-{job_id}')") is None

    page.unroute(CONFIRM)
    page.reload()

    page.wait_for_url(PROCESSING_URL)
    assert PROCESSING_URL.match(page.url).group(1) == job_id
    page.locator("#job-status").filter(has_text="Waiting to be processed").wait_for()
    assert job_row(db, job_id) == [["pending", True]]
    assert page.evaluate(f"() => localStorage.getItem('3d-ultra-session-{job_id}')") == pending["sessionToken"]
    assert page.evaluate("() => sessionStorage.getItem('3d-ultra-pending-upload')") is None


def test_without_crypto_random_uuid_the_upload_still_sends_an_idempotency_key(page, photo, db):
    # What a phone sees on an insecure origin (http://192.168.x.x): getRandomValues, no randomUUID.
    page.add_init_script("Object.defineProperty(Crypto.prototype, 'randomUUID', { value: undefined });")
    keys = []
    page.on("request", lambda request: keys.append(request.headers.get("idempotency-key"))
            if request.method == "POST" and CREATE.match(request.url) else None)
    submit_upload(page, photo)

    page.wait_for_url(PROCESSING_URL)
    assert page.evaluate("() => typeof crypto.randomUUID") == "undefined"
    assert len(keys) == 1 and UUID4.match(keys[0]), keys
    assert job_row(db, PROCESSING_URL.match(page.url).group(1)) == [["pending", True]]
