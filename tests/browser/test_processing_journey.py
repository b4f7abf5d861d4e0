"""One job followed to the end on the served pages, in real Chromium, with a worker and the reference processing
service turning the photo into a preview and a GLB (tests/stack_fixtures.py `jobs_server`): the progress bar,
the preview, the model in the 3D viewer, the download link; a failed job retried to completed; the emailed
link's view credential in a fresh browser; axe-core and screenshots (light and dark, 1024 px and 390 px) in
every new state."""

import json
import re
import time
import uuid

import pytest

from tests.browser.conftest import PROCESSING_URL, RECORD_PROGRESS, set_timing, submit_upload
from tests.helpers import http

STATUS = re.compile(r".*/api/upload/[a-z0-9]{24}$")
CSP_VIOLATION = re.compile(r"Content Security Policy|Refused to", re.IGNORECASE)
# Every CSP violation the page meets, as the browser reports it to the page.
RECORD_CSP = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => window.cspViolations.push({
  directive: event.effectiveDirective, blocked: event.blockedURI, sample: event.sample, source: event.sourceFile,
  line: event.lineNumber,
}), true);
"""


@pytest.fixture
def jobs(jobs_server):
    """The processing service back to its defaults after each test."""
    yield jobs_server
    jobs_server["control"].reset()


@pytest.fixture
def tab(browser, jobs_server):
    """A tab on jobs_server's origin, recording the console (CSP violations are reported there)."""
    context = browser.new_context(base_url=jobs_server["url"], viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.console_messages = []
    page.errors = []
    page.on("console", lambda message: page.console_messages.append((message.type, message.text)))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.add_init_script(RECORD_CSP)
    yield page
    context.close()


@pytest.fixture
def look(axe, screenshots):
    """axe-core and a screenshot of the page in each scheme and width; the violations by state."""
    found = {}

    def check(page, state):
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for width, height in ((1024, 800), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                name = f"{state}-{scheme}-{'desktop' if width == 1024 else '390'}"
                found[name] = axe(page)
                screenshots(page, name)
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 1024, "height": 800})

    check.found = found
    return check


def csp_violations(page):
    return [text for kind, text in page.console_messages if CSP_VIOLATION.search(text)] + page.evaluate(
        "() => window.cspViolations")


def wait_for_model(page, timeout=60_000):
    page.wait_for_function("() => document.getElementById('processing-page').dataset.model === 'shown'",
                           timeout=timeout)


def test_one_job_from_upload_to_its_model_on_the_served_pages(tab, jobs, photo, look):
    jobs["control"].set(delay=0.6)  # about 7 s of processing: time to see the bar move
    set_timing(tab, pollProcessingMs=300, linkRefreshMs=3000)
    tab.add_init_script(RECORD_PROGRESS)
    submit_upload(tab, photo)
    tab.wait_for_url(PROCESSING_URL, timeout=20_000)

    bar = tab.get_by_role("progressbar", name="Building your model")
    bar.wait_for(timeout=30_000)
    tab.wait_for_function("() => Number(document.getElementById('progress').value) > 0", timeout=30_000)
    tab.locator("#preview-image").wait_for()
    tab.wait_for_function("() => document.getElementById('preview-image').naturalWidth > 0", timeout=10_000)
    assert tab.locator("#processing-page > #status").inner_text() == (
        "We're turning your photo into a 3D model. We'll also email you a link when it's ready.")
    assert tab.get_by_role("img", name="The photo you uploaded").is_visible()
    look(tab, "processing-progress")

    tab.locator("#processing-page[data-state='completed']").wait_for(timeout=60_000)
    wait_for_model(tab)
    assert not bar.is_visible()
    assert tab.locator("#processing-page > #status").inner_text() == "Your model is ready."
    seen = tab.evaluate("() => JSON.parse(sessionStorage.getItem('progress-seen') || '[]')")
    assert any(0 < value < 100 for value in seen), seen
    download = tab.get_by_role("link", name="Download the model (GLB)")
    href = download.get_attribute("href")
    status, body = http("GET", href)
    assert status == 200 and body[:4] == b"glTF", (status, body[:16])
    # The 3D view draws the model: its canvas is not blank.
    assert tab.evaluate("""() => {
      const viewer = document.getElementById('model');
      return viewer.loaded === true && viewer.modelIsVisible === true;
    }""")
    assert tab.get_by_role("link", name="Upload another photo").is_visible()
    look(tab, "processing-completed")

    # Left open, the page asks for fresh links before they expire (here after 3 s instead of 12 min): the download
    # link changes, the 3D view keeps the model it shows.
    tab.wait_for_function("(old) => document.getElementById('download').href !== old", arg=href, timeout=20_000)
    assert tab.locator("#processing-page").get_attribute("data-model") == "shown"
    assert http("GET", download.get_attribute("href"))[0] == 200

    # A refresh the server cannot answer is a passing failure: the model stays, the page says it keeps trying.
    tab.route(STATUS, lambda route: route.fulfill(status=503, content_type="application/json", body=json.dumps(
        {"error": {"code": "SERVICE_UNAVAILABLE", "message": "The service is temporarily unavailable."}})))
    tab.locator("#error").filter(has_text="We'll keep trying.").wait_for(timeout=20_000)
    assert tab.locator("#processing-page").get_attribute("data-state") == "completed"
    assert tab.locator("#result").is_visible()
    tab.unroute(STATUS)

    violations = csp_violations(tab)
    assert violations == [] and tab.errors == [], json.dumps(violations, indent=1)
    assert look.found == {state: [] for state in look.found}, look.found


def test_a_failed_job_says_why_and_try_again_takes_it_to_completed(tab, jobs, photo, look):
    jobs["control"].set(mode="fail", delay=0.05)
    set_timing(tab, pollProcessingMs=300, pollStartMs=300)
    submit_upload(tab, photo)
    tab.wait_for_url(PROCESSING_URL, timeout=20_000)

    tab.locator("#processing-page[data-state='failed']").wait_for(timeout=60_000)
    failure = tab.locator("#processing-page > #status").inner_text()
    assert failure == "We couldn't turn this photo into a 3D model. Try again, or upload another photo.", failure
    retry = tab.get_by_role("button", name="Try again")
    assert retry.is_visible() and tab.get_by_role("link", name="Upload another photo").is_visible()
    look(tab, "processing-failed")

    jobs["control"].set(mode="ok")
    retried = []
    tab.on("request", lambda request: request.method == "POST" and request.url.endswith("/retry")
           and retried.append(request.headers))
    retry.click()
    tab.locator("#processing-page[data-state='completed']").wait_for(timeout=60_000)
    wait_for_model(tab)
    assert len(retried) == 1 and retried[0]["content-type"] == "application/json"
    assert not tab.locator("#failed").is_visible()
    violations = csp_violations(tab)
    assert violations == [] and tab.errors == [], json.dumps(violations, indent=1)
    assert look.found == {state: [] for state in look.found}, look.found


def test_the_emailed_link_shows_the_model_in_a_fresh_browser_with_empty_storage(browser, tab, jobs, local_stack,
                                                                              live_server, photo, look):
    # The job, completed on the uploader's device; the worker sends its email to the stack's mail server. Its link
    # opens the stack's own pages (FRONTEND_URL, the first allowed origin: live_server's).
    email = f"link-{uuid.uuid4().hex[:8]}@example.com"
    set_timing(tab, pollProcessingMs=300)
    submit_upload(tab, photo, email=email)
    tab.wait_for_url(PROCESSING_URL, timeout=20_000)
    job_id = PROCESSING_URL.fullmatch(tab.url).group(1)
    tab.locator("#processing-page[data-state='completed']").wait_for(timeout=60_000)
    deadline = time.monotonic() + 30
    while not local_stack.mail.received(to=email) and time.monotonic() < deadline:
        time.sleep(0.2)
    [message] = local_stack.mail.received(to=email)
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https?://\S+/processing/" + job_id + r"#view=[\w-]+", text).group(0)
    view_token = link.split("#view=")[1]

    # Another device: nothing stored, only the emailed link with its view credential in the fragment.
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    try:
        other = context.new_page()
        messages = []
        other.on("console", lambda message: messages.append(message.text))
        sent = []
        other.on("request", lambda request: STATUS.fullmatch(request.url) and sent.append(
            {k: v for k, v in request.headers.items() if k in ("x-view-token", "x-session-token")}))
        other.goto(link)
        other.locator("#processing-page[data-state='completed']").wait_for(timeout=30_000)
        wait_for_model(other)
        assert sent and all(h == {"x-view-token": view_token} for h in sent), sent
        assert other.url.endswith(f"/processing/{job_id}")  # the credential is off the address bar
        stored = other.evaluate("() => Object.fromEntries(Object.entries(localStorage))")
        assert stored == {f"3d-ultra-view-{job_id}": view_token}
        # A reload (the address has no fragment any more) keeps showing the model, from the stored credential.
        other.reload()
        wait_for_model(other)
        assert not [m for m in messages if CSP_VIOLATION.search(m)]
        look(other, "processing-view-link")
    finally:
        context.close()
    assert look.found == {state: [] for state in look.found}, look.found

    # The credential only reads: confirm, cancel and retry refuse it.
    api = link.split("/processing/")[0]
    for method, path in (("POST", "/confirm"), ("DELETE", ""), ("POST", "/retry")):
        status, body = http(method, f"{api}/api/upload/{job_id}{path}", data=b"{}" if method == "POST" else None,
                            headers={"Content-Type": "application/json", "X-View-Token": view_token})
        assert status in (401, 403), (method, path, status, body)


def test_a_fresh_browser_without_the_link_says_it_has_no_access(browser, jobs, live_server):
    status, body = http("POST", f"{jobs['url']}/api/upload", data=json.dumps(
        {"email": "maya@example.com", "fileType": "image/png", "fileSize": 68}).encode(),
        headers={"Content-Type": "application/json"})
    assert status == 201, body
    job_id = json.loads(body)["uploadId"]
    context = browser.new_context(base_url=jobs["url"])
    try:
        page = context.new_page()
        page.goto(f"/processing/{job_id}")
        page.get_by_role("alert").filter(has_text="This device has no access to this upload.").wait_for()
        # A link whose credential the API refuses says so in the API's words about the link, and is forgotten.
        page.goto("about:blank")  # else only the fragment changes, and the page is not loaded again
        page.goto(f"{jobs['url']}/processing/{job_id}#view=not-the-right-one")
        page.get_by_role("alert").filter(has_text="This link is not valid for this upload.").wait_for()
        assert page.evaluate("() => localStorage.length") == 0
    finally:
        context.close()
