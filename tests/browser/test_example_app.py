"""The example app (examples/react-vite, the package installed from its `npm pack` tarball), built by Vite and
served on an origin of its own, in real Chromium: against the API as `make dev` runs it (the page on a second
origin), and as `make prod-local` runs it (the page on its front-end origin, the API under its stage prefix)."""

import base64
import gzip
import json
import mimetypes
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.stack_fixtures import PROJECT_DIR, SECOND_ORIGIN

EXAMPLE_DIR = PROJECT_DIR / "examples" / "react-vite"
PROCESSING = re.compile(r"(.*)/processing/([a-z0-9]{24})$")
CONFIRM = re.compile(r".*/api/upload/[a-z0-9]{24}/confirm$")
# What the processing route shows of a confirmed job (its own status line; <model-viewer> has one inside too):
# make dev's tests run no worker (it stays pending); make prod-local's stack processes it.
FOLLOWED = ("pending", "processing", "completed")


def vite_build(api_base, out_dir, **env):
    """The example as a front-end team ships it, pointed at `api_base` at build time (VITE_API_BASE_URL)."""
    vite = EXAMPLE_DIR / "node_modules" / ".bin" / "vite"
    assert vite.exists(), f"{vite} is missing: run `make test` (it packs client/ and installs the example)"
    result = subprocess.run([str(vite), "build", "--outDir", str(out_dir), "--emptyOutDir", "--logLevel", "warn"],
                            cwd=EXAMPLE_DIR, env={**os.environ, "VITE_API_BASE_URL": api_base, **env},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(out_dir)


BUILDS = {}


def build_for(api_base, tmp_path_factory, **env):
    key = (api_base, tuple(sorted(env.items())))
    if key not in BUILDS:
        BUILDS[key] = vite_build(api_base, tmp_path_factory.mktemp("example-dist"), **env)
    return BUILDS[key]


def serve_from(dist, origin):
    """Answer the origin's requests from the build: its files, and index.html for every route (an SPA)."""

    def handle(route):
        path = route.request.url[len(origin):].split("?")[0]
        file = dist / path.lstrip("/")
        if not file.is_file():
            file = dist / "index.html"
        route.fulfill(status=200, body=file.read_bytes(),
                      content_type=mimetypes.guess_type(file.name)[0] or "application/octet-stream")

    return handle


def open_app(browser, api, origin, dist, **options):
    context = browser.new_context(viewport={"width": 1024, "height": 800}, **options)
    # A page Playwright serves comes from no address, so Chromium counts it as public and asks the user before it
    # reaches the test's API on loopback (Local Network Access). A deployed front end calling a public API is never
    # asked; granting it here is the user's "Allow".
    context.grant_permissions(["local-network-access"], origin=origin)
    context.route(f"{origin}/**", serve_from(dist, origin))
    page = context.new_page()
    page.origin = origin
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return context, page


def stack_for(request, name):
    if name == "make dev":
        return request.getfixturevalue("live_server"), SECOND_ORIGIN
    stack = request.getfixturevalue("prod_local")
    return stack["api"], stack["frontend"]


@pytest.fixture(params=["make dev", "make prod-local"])
def app_tab(request, browser, tmp_path_factory):
    """A tab whose origin (allowed by the API's and the bucket's CORS) serves the example built for that stack."""
    api, origin = stack_for(request, request.param)
    context, page = open_app(browser, api, origin, build_for(api, tmp_path_factory))
    yield page
    context.close()


def job_of(page):
    """The job id of the processing route the tab is on (on the app's own origin)."""
    origin, job_id = PROCESSING.fullmatch(page.url).groups()
    assert origin == page.origin
    return job_id


def submit(page, photo, email="maya@example.com"):
    page.goto(f"{page.origin}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Photo").set_input_files(str(photo))
    page.get_by_role("button", name="Upload").click()


def stored(page):
    return page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")


def test_an_upload_lands_on_the_processing_route_and_survives_a_reload_there(app_tab, photo):
    submit(app_tab, photo)
    app_tab.wait_for_url(PROCESSING, timeout=20000)
    job_id = job_of(app_tab)

    assert app_tab.locator("main > [role=status]").inner_text(timeout=10000) in FOLLOWED
    assert stored(app_tab)["3d-ultra-current-job"] == job_id
    assert set(stored(app_tab)) == {"3d-ultra-current-job", f"3d-ultra-session-{job_id}"}

    app_tab.reload()
    assert app_tab.get_by_test_id("job").inner_text() == job_id
    assert app_tab.locator("main > [role=status]").inner_text(timeout=10000) in FOLLOWED
    assert app_tab.errors == []


def test_a_failing_confirm_shows_its_message_and_try_again_then_confirms_the_same_job(app_tab, photo):
    failures = []

    def unavailable(route):
        failures.append(route.request.url)
        route.fulfill(status=503, content_type="application/json", body=json.dumps({"error": {
            "code": "SERVICE_UNAVAILABLE",
            "message": "The service is temporarily unavailable. Please try again in a moment."}}))

    app_tab.clock.install()  # the client's retry waits (1, 2, 4, 8, 16 s) pass when the test says so
    app_tab.route(CONFIRM, unavailable)
    submit(app_tab, photo)
    alert = app_tab.get_by_role("alert")
    deadline = time.monotonic() + 30
    while not alert.inner_text() and time.monotonic() < deadline:
        time.sleep(0.2)  # real time, for the refused confirm to come back
        app_tab.clock.run_for(5000)
    assert alert.inner_text() == "The service is temporarily unavailable. Please try again in a moment."
    assert len(failures) == 6 and stored(app_tab) == {}

    # "Try again" (the hook's retry()) has the focus and resumes the same job at its confirm.
    app_tab.unroute(CONFIRM)
    retry = app_tab.get_by_role("button", name="Try again")
    assert retry.evaluate("(button) => button === document.activeElement")
    app_tab.keyboard.press("Enter")
    app_tab.wait_for_url(PROCESSING, timeout=20000)
    job_id = job_of(app_tab)
    assert failures[0].endswith(f"/api/upload/{job_id}/confirm")
    assert stored(app_tab)["3d-ultra-current-job"] == job_id


def test_a_reload_between_the_put_and_the_confirm_resumes_the_confirm(app_tab, photo):
    held = []

    sent = []

    def hold_the_first(route):
        if held:
            sent.append(route.request.url)
            route.continue_()
        else:
            held.append(route)  # never answered, never sent on: the tab is reloaded while it waits

    app_tab.route(CONFIRM, hold_the_first)
    submit(app_tab, photo)
    app_tab.wait_for_function("() => sessionStorage.length > 0", timeout=20000)
    app_tab.wait_for_timeout(100)
    assert held and stored(app_tab) == {}

    app_tab.reload()
    app_tab.wait_for_url(PROCESSING, timeout=20000)
    job_id = job_of(app_tab)
    assert held[0].request.url.endswith(f"/api/upload/{job_id}/confirm")
    # Under StrictMode's double effects the resumed confirm is sent once (no second one answered 409).
    assert sent == [held[0].request.url]
    assert app_tab.locator("main > [role=status]").inner_text(timeout=10000) in FOLLOWED
    assert stored(app_tab)[f"3d-ultra-session-{job_id}"]


def test_without_crypto_random_uuid_the_upload_still_goes_through_with_an_idempotency_key(app_tab, photo):
    app_tab.add_init_script("delete Crypto.prototype.randomUUID;")
    keys = []
    app_tab.on("request", lambda request: request.method == "POST" and request.url.endswith("/api/upload")
               and keys.append(request.headers.get("idempotency-key")))

    submit(app_tab, photo)
    app_tab.wait_for_url(PROCESSING, timeout=20000)

    assert app_tab.evaluate("() => typeof crypto.randomUUID") == "undefined"
    assert len(keys) == 1 and keys[0] and len(keys[0]) >= 16
    assert app_tab.errors == []


STORAGE_PUT = re.compile(r".*/uploads/uploads/.*")
CREATE = re.compile(r".*/api/upload$")


@pytest.mark.parametrize("app_tab", ["make dev"], indirect=True)
def test_upload_form_has_no_axe_violations_in_any_state_and_works_from_the_keyboard(app_tab, photo, axe, screenshots):
    page = app_tab
    found = {}

    def look(state):
        found[state] = axe(page)
        screenshots(page, f"example-{state}")

    page.goto(f"{page.origin}/")
    page.get_by_label("Email").wait_for()
    look("idle")

    # Keyboard only: type the email, Tab to the photo, Tab to Upload, Enter.
    page.get_by_label("Email").focus()
    page.keyboard.type("not an email")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.type") == "file"
    page.get_by_label("Photo").set_input_files(str(photo))
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Upload"
    page.keyboard.press("Enter")
    page.get_by_text("Please enter a valid email address, like name@example.com.").wait_for()
    email = page.get_by_label("Email")
    assert email.get_attribute("aria-invalid") == "true"
    assert email.evaluate("(input) => input === document.activeElement")
    look("field-error")

    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("maya@example.com")
    page.route(STORAGE_PUT, lambda route: None)  # the PUT hangs: the form stays uploading
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="Uploading your photo").wait_for()
    assert page.get_by_label("Email").is_disabled()
    look("uploading")

    page.get_by_role("button", name="Cancel").focus()
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="Upload cancelled.").wait_for()
    page.wait_for_function("() => document.activeElement.textContent === 'Upload'")
    look("cancelled")
    page.unroute(STORAGE_PUT)

    page.clock.install()
    page.route(CREATE, lambda route: route.fulfill(status=503, content_type="application/json", body=json.dumps(
        {"error": {"code": "SERVICE_UNAVAILABLE",
                   "message": "The service is temporarily unavailable. Please try again in a moment."}})))
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="The connection dropped. Trying again").wait_for()
    look("waiting")
    alert = page.get_by_role("alert")
    deadline = time.monotonic() + 30
    while not alert.inner_text() and time.monotonic() < deadline:
        time.sleep(0.2)
        page.clock.run_for(5000)
    assert alert.inner_text() == "The service is temporarily unavailable. Please try again in a moment."
    page.wait_for_function("() => document.activeElement.textContent === 'Try again'")
    assert page.get_by_role("button", name="Start over").is_visible()
    look("error")

    # Start over, then an upload that goes through; the app's navigation is held so the finished form is seen.
    page.unroute(CREATE)
    page.get_by_role("button", name="Start over").click()
    page.wait_for_function("() => document.activeElement.type === 'email'")
    assert page.get_by_role("alert").inner_text() == ""
    look("started-over")
    page.get_by_label("Photo").set_input_files(str(photo))
    page.evaluate("() => { history.pushState = () => undefined; }")
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("status").filter(has_text="Upload complete.").wait_for(timeout=20000)
    assert page.get_by_role("progressbar", name="Upload progress").evaluate("(bar) => bar.value") == 100
    look("done")

    assert found == {state: [] for state in found}, found
    assert page.errors == []


POSTHOG = "https://posthog.example.test"


@pytest.mark.parametrize("stack", ["make dev"])
def test_a_storage_refusing_the_token_reaches_posthog_error_tracking(request, stack, browser, tmp_path_factory, photo):
    """The example built with a PostHog key: the client's onError (storage refusing the session token) becomes a
    $exception event at the PostHog host, carrying where it happened and never the token."""
    api, origin = stack_for(request, stack)
    dist = build_for(api, tmp_path_factory, VITE_POSTHOG_KEY="phc_example_test", VITE_POSTHOG_HOST=POSTHOG)
    # posthog-js drops events from browsers that look like bots (HeadlessChrome, navigator.webdriver): this tab
    # presents itself as the Chrome a person uses.
    probe = browser.new_page()
    user_agent = probe.evaluate("() => navigator.userAgent").replace("HeadlessChrome", "Chrome")
    probe.close()
    context, page = open_app(browser, api, origin, dist, user_agent=user_agent)
    bodies = []

    def capture(route):
        body = route.request.post_data_buffer or b""
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        text = body.decode("utf-8", "replace")
        if text.startswith("data="):  # posthog-js's base64 form encoding
            text = base64.b64decode(parse_qs(text)["data"][0]).decode("utf-8", "replace")
        bodies.append(text)
        route.fulfill(status=200, content_type="application/json", body="{}")

    context.route(f"{POSTHOG}/**", capture)
    # localStorage refuses the session token: the upload goes on (kept for the tab) and onError is told.
    page.add_init_script("Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false });")
    page.add_init_script("""
        const setItem = Storage.prototype.setItem;
        Storage.prototype.setItem = function (key, value) {
          if (this === window.localStorage && key.startsWith('3d-ultra-session-')) {
            throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
          }
          return setItem.call(this, key, value);
        };
    """)
    try:
        submit(page, photo)
        page.wait_for_url(PROCESSING, timeout=20000)
        job_id = job_of(page)
        token = page.evaluate(f"() => sessionStorage.getItem('3d-ultra-session-{job_id}')")
        assert token
        deadline = time.monotonic() + 20
        while not any("$exception" in body for body in bodies) and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        events = [body for body in bodies if "$exception" in body]
        assert events, bodies
        assert "QuotaExceededError" in events[0] and f"3d-ultra-session-{job_id}" in events[0]
        assert token not in "".join(bodies)
    finally:
        context.close()


@pytest.fixture
def jobs_tab(browser, jobs_server, tmp_path_factory):
    """A tab on the second origin serving the example built for jobs_server (whose worker processes jobs)."""
    dist = build_for(jobs_server["url"], tmp_path_factory)
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    context.grant_permissions(["local-network-access"], origin=SECOND_ORIGIN)
    context.route(f"{SECOND_ORIGIN}/**", serve_from(dist, SECOND_ORIGIN))
    page = context.new_page()
    page.origin = SECOND_ORIGIN
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()
    jobs_server["control"].reset()


def test_the_example_follows_one_job_to_its_model_with_progress_and_preview(jobs_tab, jobs_server, photo,
                                                                             screenshots):
    jobs_server["control"].set(delay=0.6)
    submit(jobs_tab, photo)
    jobs_tab.wait_for_url(PROCESSING, timeout=20000)
    status = jobs_tab.locator("main > [role=status]")

    jobs_tab.get_by_role("progressbar", name="Progress").wait_for(timeout=30000)
    jobs_tab.get_by_role("img", name="Your photo").wait_for(timeout=30000)
    jobs_tab.wait_for_function("() => document.querySelector('img[alt=\"Your photo\"]').naturalWidth > 0")
    assert status.inner_text() == "processing"
    screenshots(jobs_tab, "example-processing")

    jobs_tab.wait_for_function("() => document.querySelector('model-viewer')?.loaded === true", timeout=60000)
    assert status.inner_text() == "completed"
    assert jobs_tab.get_by_role("link", name="Download the model").get_attribute("href").startswith("http")
    screenshots(jobs_tab, "example-completed")
    assert jobs_tab.errors == []


def test_the_example_retries_a_failed_job_to_completed(jobs_tab, jobs_server, photo):
    jobs_server["control"].set(mode="fail", delay=0.05)
    submit(jobs_tab, photo)
    jobs_tab.wait_for_url(PROCESSING, timeout=20000)
    status = jobs_tab.locator("main > [role=status]")
    jobs_tab.get_by_role("button", name="Try again").wait_for(timeout=60000)
    assert status.inner_text() == "failed"

    jobs_server["control"].set(mode="ok")
    jobs_tab.get_by_role("button", name="Try again").click()
    jobs_tab.wait_for_function("() => document.querySelector('model-viewer')?.loaded === true", timeout=60000)
    assert status.inner_text() == "completed"
    assert jobs_tab.errors == []
