"""Back, reload and recovery, in real Chromium against the real local stack: Back gives a usable form, the last
upload can be reopened, and the processing page polls with backoff, pauses while hidden and survives bad links."""

import json
import re

from tests.browser.conftest import PROCESSING_URL, set_timing, submit_upload
from tests.helpers import http, upload_body

STATUS_REQUEST = re.compile(r".*/api/upload/[a-z0-9]{24}$")


def upload(page, photo, email="maya@example.com"):
    submit_upload(page, photo, email)
    page.wait_for_url(PROCESSING_URL)
    return PROCESSING_URL.match(page.url).group(1)


def created_job(live_server):
    """A pending job made straight through the API, and its token."""
    status, body = http("POST", f"{live_server}/api/upload", data=json.dumps(upload_body()).encode(),
                        headers={"Content-Type": "application/json"})
    assert status == 201, body
    reply = json.loads(body)
    return reply["uploadId"], reply["sessionToken"]


def with_session(page, job_id, token):
    page.add_init_script(f"localStorage.setItem('3d-ultra-session-{job_id}', '{token}');"
                         f"localStorage.setItem('3d-ultra-current-job', '{job_id}');")


def status_requests(page):
    seen = []
    page.on("request", lambda request: seen.append(request.url) if STATUS_REQUEST.match(request.url) else None)
    return seen


def test_back_after_a_finished_upload_gives_a_usable_form_and_a_second_upload_works(bfcache_page, photo, db):
    page = bfcache_page
    page.add_init_script("addEventListener('pageshow', (e) => sessionStorage.setItem('restored', String(e.persisted)))")
    first = upload(page, photo)

    # A page restored from the back/forward cache fires no load event: wait for the navigation only.
    page.go_back(wait_until="commit")
    page.wait_for_url(re.compile(r".*/$"), wait_until="commit")
    # Right after the navigation commits, the restored document may not have its form yet.
    page.wait_for_function("() => { const form = document.getElementById('upload-page');"
                           " return form !== null && form.dataset.state !== 'done'; }")
    assert page.get_by_role("button", name="Upload").is_enabled()
    assert page.get_by_label("Email").is_enabled() and page.get_by_label("Photo").is_enabled()
    assert page.locator("#status").text_content() == ""
    assert page.get_by_role("link", name="Continue to your last upload").is_visible()
    print(f"\nBack restored from the back/forward cache: {page.evaluate('() => sessionStorage.restored')}")

    second = upload(page, photo, email="sam@example.com")
    assert second != first
    assert db.run("SELECT count(*) FROM uploads WHERE id IN (:a, :b) AND confirmed_at IS NOT NULL",
                  a=first, b=second) == [[2]]


def test_the_upload_page_offers_to_continue_to_the_last_upload_while_its_token_is_stored(page, photo):
    job_id = upload(page, photo)
    page.goto("/")
    page.get_by_role("link", name="Continue to your last upload").click()
    page.wait_for_url(re.compile(f".*/processing/{job_id}$"))
    page.locator("#job-status").filter(has_text="Waiting to be processed").wait_for()

    page.evaluate(f"() => localStorage.removeItem('3d-ultra-session-{job_id}')")
    page.goto("/")
    assert page.get_by_role("link", name="Continue to your last upload").is_hidden()


def test_leaving_in_the_middle_of_an_upload_asks_first(page, photo):
    page.route(re.compile(r".*/uploads/uploads/.*"), lambda route: None)  # the PUT hangs
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.goto("/")
    page.get_by_label("Email").fill("maya@example.com")
    page.get_by_label("Photo").set_input_files(str(photo))
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("status").filter(has_text="Uploading your photo").wait_for()

    page.close(run_before_unload=True)
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]


def test_a_malformed_job_id_in_the_address_says_the_link_is_damaged(page, screenshots):
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    requests = status_requests(page)
    page.goto("/processing/%E0%A4%A")

    page.get_by_role("alert").filter(has_text="This page's address is incomplete or damaged").wait_for()
    assert page.get_by_role("link", name="Start a new upload").is_visible()
    assert errors == [] and requests == []
    screenshots(page, "processing-bad-link")


def test_a_missing_token_says_what_to_do_and_stops_polling(page, live_server):
    job_id, _ = created_job(live_server)
    set_timing(page, pollStartMs=100)
    requests = status_requests(page)
    page.goto(f"/processing/{job_id}")

    page.get_by_role("alert").filter(has_text="This device has no access to this upload. Open this page in the "
                                              "browser you uploaded from, or use the link in the email we send "
                                              "when your model is ready.").wait_for()
    page.wait_for_timeout(500)
    assert requests == []


def test_a_refused_token_is_forgotten(page, live_server):
    job_id, _ = created_job(live_server)
    with_session(page, job_id, "not-the-token")
    page.goto(f"/processing/{job_id}")

    page.get_by_role("alert").filter(has_text="This device's session for the upload was refused.").wait_for()
    assert page.evaluate(f"() => localStorage.getItem('3d-ultra-session-{job_id}')") is None


def test_a_hidden_tab_sends_no_requests_and_polls_at_once_when_shown_again(page, live_server):
    job_id, token = created_job(live_server)
    with_session(page, job_id, token)
    set_timing(page, pollStartMs=100, pollMaxMs=200)
    page.add_init_script("""
      let hidden = false;
      Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible') });
      Object.defineProperty(document, 'hidden', { get: () => hidden });
      window.setHidden = (value) => { hidden = value; document.dispatchEvent(new Event('visibilitychange')); };
    """)
    requests = status_requests(page)
    page.goto(f"/processing/{job_id}")
    page.locator("#job-status").filter(has_text="Waiting to be processed").wait_for()
    page.wait_for_function("() => document.querySelectorAll('#job-id').length && window.setHidden")
    page.wait_for_timeout(600)
    assert len(requests) >= 3  # polling every 100-200 ms while visible

    page.evaluate("() => setHidden(true)")
    page.wait_for_timeout(300)  # a poll already on the wire may still land
    before = len(requests)
    page.wait_for_timeout(2000)
    assert len(requests) == before
    assert page.locator("#processing-page").get_attribute("data-paused") == "true"

    page.evaluate("() => setHidden(false)")
    page.wait_for_timeout(150)
    assert len(requests) >= before + 1


def test_the_processing_page_polls_after_2_s_then_backs_off_to_30_s(page, live_server):
    job_id, token = created_job(live_server)
    with_session(page, job_id, token)
    # Time in the page moves only when the test moves it.
    page.clock.install(time=1_800_000_000_000)
    page.clock.pause_at(1_800_000_001_000)
    requests = status_requests(page)
    page.goto(f"/processing/{job_id}")
    main = page.locator("#processing-page")

    def next_wait(other_than=None):
        # Polled from here: the page's own animation frames and timers are frozen with its clock.
        for _ in range(200):
            value = main.get_attribute("data-next-poll-ms")
            if value and value != other_than:
                return int(value)
            page.wait_for_timeout(50)
        raise AssertionError(f"the page scheduled no poll after {other_than}")

    waits = []
    scheduled = next_wait()
    for _ in range(9):
        count = len(requests)
        page.clock.run_for(scheduled - 1)
        page.wait_for_timeout(100)
        assert len(requests) == count, f"polled before {scheduled} ms had passed"
        page.clock.run_for(1)
        waits.append(scheduled)
        scheduled = next_wait(other_than=str(scheduled) if scheduled != 30000 else None)
        assert len(requests) == count + 1
    assert waits == [2000, 3000, 4500, 6750, 10125, 15188, 22782, 30000, 30000]
    assert main.get_attribute("data-state") == "pending"
    print(f"\nprocessing page waits (ms): {waits}")
